//! The rewrite of a module: which imports stay, where every function moves,
//! and the sections re-encoded with the answers appended.

use wasm_encoder::reencode::{Error as ReencodeError, Reencode};
use wasm_encoder::ValType;
use wasmparser::TypeRef;

use super::answers::{check_signature, Answer, ANSWERS, RANDOM};
use super::{Config, SettleError, Survey, PROXY_WORLD};

/// The rewrite: kept imports first (then a `get-random-u64` import if a
/// seed needs one the module lacks), the module's own functions next, the
/// answers last; every function index is mapped accordingly.
pub(super) struct Settler<'a> {
    /// Old function index to new.
    map: Vec<u32>,
    /// Per imported function, in order: answered inside (so not imported).
    answered: Vec<bool>,
    /// Answers to append, each with its type index.
    answers: Vec<(Answer, u32)>,
    /// The new index of `get-random-u64`, if a seed needs it.
    pub(super) random: Option<u32>,
    /// A `get-random-u64` import to add.
    added_random: Option<AddedRandom>,
    pub(super) config: Option<Config<'a>>,
    /// The new index of `cabi_realloc`, for the configuration.
    pub(super) realloc: u32,
    /// The passive segment holding the configuration.
    pub(super) config_segment: u32,
    data_count_written: bool,
    data_written: bool,
    pub(super) code_written: bool,
}

/// The `get-random-u64` import a seed adds when the module has none.
struct AddedRandom {
    /// `wasi:random/random` at the seed's own WASI version (the module's
    /// metadata describes that version's world).
    module: String,
    /// The type index of `() -> i64`.
    ty: u32,
    /// Whether that type is appended (the module has none).
    new_type: bool,
}

impl<'a> Settler<'a> {
    pub(super) fn plan(
        survey: &Survey,
        config: Option<Config<'a>>,
    ) -> Result<Settler<'a>, SettleError> {
        let mut kept = Vec::new();
        let mut answered = Vec::new();
        for (index, import) in survey.imports.iter().enumerate() {
            let answer = ANSWERS
                .iter()
                .find(|(interface, name, _)| {
                    (*interface, *name) == (import.interface(), &import.name)
                })
                .map(|(_, _, answer)| *answer)
                // Without a configuration, the service's stays an import (and fails below).
                .filter(|a| {
                    config.is_some() || !matches!(a, Answer::Config | Answer::HostVerifies)
                });
            match answer {
                Some(answer) => {
                    check_signature(survey, import, answer)?;
                    answered.push((index, answer, import.ty));
                }
                None if PROXY_WORLD.contains(&import.interface())
                    || import.module.starts_with("[export]") =>
                {
                    kept.push(index)
                }
                None => return Err(SettleError::Unsettled(import.describe())),
            }
        }

        let seed = answered.iter().find(|(_, a, _)| *a == Answer::Seed);
        let has_random = kept.iter().position(|&i| {
            let import = &survey.imports[i];
            (import.interface(), import.name.as_str()) == RANDOM
        });
        let (random, added_random) = match (seed, has_random) {
            (None, _) => (None, None),
            (Some(_), Some(k)) => (Some(k as u32), None),
            (Some((seed, _, _)), None) => {
                let version = survey.imports[*seed].module.split_once('@').map(|(_, v)| v);
                let u64_type = survey.types.iter().position(|t| {
                    t.as_ref().is_some_and(|f| {
                        f.params().is_empty() && f.results() == [wasmparser::ValType::I64]
                    })
                });
                let added = AddedRandom {
                    module: match version {
                        Some(v) => format!("{}@{v}", RANDOM.0),
                        None => RANDOM.0.to_string(),
                    },
                    ty: u64_type.unwrap_or(survey.types.len()) as u32,
                    new_type: u64_type.is_none(),
                };
                (Some(kept.len() as u32), Some(added))
            }
        };

        let first_own = kept.len() as u32 + u32::from(added_random.is_some());
        let mut map = vec![0; survey.imports.len() + survey.defined as usize];
        for (new, &old) in kept.iter().enumerate() {
            map[old] = new as u32;
        }
        for own in 0..survey.defined {
            map[survey.imports.len() + own as usize] = first_own + own;
        }
        for (n, (old, _, _)) in answered.iter().enumerate() {
            map[*old] = first_own + survey.defined + n as u32;
        }
        let uses_config = answered.iter().any(|(_, a, _)| *a == Answer::Config);
        let realloc = match survey.realloc {
            Some(old) => map.get(old as usize).copied().ok_or_else(|| {
                SettleError::Malformed(format!(
                    "cabi_realloc is function {old}, which does not exist"
                ))
            })?,
            None if uses_config => return Err(SettleError::NoAllocator),
            None => 0,
        };
        let mut dropped = vec![false; survey.imports.len()];
        for (old, _, _) in &answered {
            dropped[*old] = true;
        }
        Ok(Settler {
            map,
            answered: dropped,
            answers: answered.iter().map(|(_, a, ty)| (*a, *ty)).collect(),
            random,
            added_random,
            config: config.filter(|_| uses_config),
            realloc,
            config_segment: survey.segments,
            data_count_written: false,
            data_written: false,
            code_written: false,
        })
    }

    fn passive_config(&mut self, data: &mut wasm_encoder::DataSection) {
        if let Some(config) = self.config {
            data.passive(config.json.bytes());
        }
        self.data_written = true;
    }
}

impl Reencode for Settler<'_> {
    type Error = SettleError;

    fn function_index(&mut self, func: u32) -> Result<u32, ReencodeError<SettleError>> {
        self.map.get(func as usize).copied().ok_or_else(|| {
            ReencodeError::UserError(SettleError::Malformed(format!("no function {func}")))
        })
    }

    fn parse_type_section(
        &mut self,
        types: &mut wasm_encoder::TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> Result<(), ReencodeError<SettleError>> {
        wasm_encoder::reencode::utils::parse_type_section(self, types, section)?;
        if self.added_random.as_ref().is_some_and(|r| r.new_type) {
            types.ty().function([], [ValType::I64]);
        }
        Ok(())
    }

    fn parse_import_section(
        &mut self,
        imports: &mut wasm_encoder::ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> Result<(), ReencodeError<SettleError>> {
        let mut func = 0usize;
        for import in section.into_imports() {
            let import = import?;
            if let TypeRef::Func(_) = import.ty {
                func += 1;
                if self.answered.get(func - 1) == Some(&true) {
                    continue;
                }
            }
            let ty = self.entity_type(import.ty)?;
            imports.import(import.module, import.name, ty);
        }
        if let Some(random) = &self.added_random {
            let ty = wasm_encoder::EntityType::Function(random.ty);
            imports.import(&random.module, RANDOM.1, ty);
        }
        Ok(())
    }

    fn parse_function_section(
        &mut self,
        functions: &mut wasm_encoder::FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> Result<(), ReencodeError<SettleError>> {
        wasm_encoder::reencode::utils::parse_function_section(self, functions, section)?;
        for (_, ty) in &self.answers {
            functions.function(*ty);
        }
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> Result<(), ReencodeError<SettleError>> {
        wasm_encoder::reencode::utils::parse_code_section(self, code, section)?;
        for (answer, _) in self.answers.clone() {
            code.function(&answer.body(self));
        }
        self.code_written = true;
        Ok(())
    }

    fn data_count(&mut self, count: u32) -> Result<u32, ReencodeError<SettleError>> {
        self.data_count_written = true;
        Ok(count + u32::from(self.config.is_some()))
    }

    fn parse_data_section(
        &mut self,
        data: &mut wasm_encoder::DataSection,
        section: wasmparser::DataSectionReader<'_>,
    ) -> Result<(), ReencodeError<SettleError>> {
        wasm_encoder::reencode::utils::parse_data_section(self, data, section)?;
        self.passive_config(data);
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        _after: Option<wasm_encoder::SectionId>,
        before: Option<wasm_encoder::SectionId>,
    ) -> Result<(), ReencodeError<SettleError>> {
        use wasm_encoder::SectionId;
        let Some(config) = self.config else {
            return Ok(());
        };
        // memory.init needs a data count section, which precedes the code.
        let past_count = matches!(before, None | Some(SectionId::Code | SectionId::Data));
        if past_count && !self.data_count_written {
            module.section(&wasm_encoder::DataCountSection {
                count: self.config_segment + 1,
            });
            self.data_count_written = true;
        }
        if before.is_none() && !self.data_written {
            let mut data = wasm_encoder::DataSection::new();
            data.passive(config.json.bytes());
            module.section(&data);
            self.data_written = true;
        }
        Ok(())
    }
}
