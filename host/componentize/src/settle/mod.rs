//! A core module's imports beyond the `wasi:http/proxy` world, answered
//! inside the module itself, before it becomes a component.
//!
//! Rust's std on wasm32-wasip2 imports more than the proxy world gives
//! (environment variables, exit, terminals, the hash-map seed) although our
//! components never need them: a proxy host cannot instantiate a component
//! that imports them, and answering them from a second component costs
//! every request more core instances (a pooling host allows 1,000 at once).
//! So each such import becomes a function of the module, with the answer a
//! host without a terminal or environment would give. The edge service's
//! configuration is settled the same way, its text a passive data segment:
//! the configured service is one component of three core modules (ours, and
//! the shim and fixups wit-component adds), which is the fewest a component
//! whose imports return lists can have.

mod answers;
mod rewrite;
#[cfg(test)]
mod tests;

use wasm_encoder::reencode::{Error as ReencodeError, Reencode};
use wasmparser::{Parser, Payload, TypeRef};

use rewrite::Settler;

/// The interfaces of the `wasi:http/proxy` world (any 0.2 version): what a
/// settled module may still import.
pub const PROXY_WORLD: &[&str] = &[
    "wasi:io/poll",
    "wasi:io/error",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/stdin",
    "wasi:http/types",
    "wasi:http/outgoing-handler",
];

/// The interface the edge service reads its configuration from
/// (`wit/registry.wit`).
pub const CONFIG_INTERFACE: &str = "ocirelay:registry/service-config";

/// The edge service's configuration, settled into its module.
#[derive(Debug, Clone, Copy)]
pub struct Config<'a> {
    /// The configuration's JSON text, as `service-config.config` returns it.
    pub json: &'a str,
    /// What `service-config.host-verifies-downloads` returns: true only
    /// under ocirelay's own host (a written `.wasm` may run anywhere).
    pub host_verifies: bool,
}

/// Why a module could not be settled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettleError {
    /// The bytes are not a core module wasmparser and wasm-encoder accept.
    #[error("not a well-formed core module: {0}")]
    Malformed(String),
    /// An import this module answers has another shape than WASI gives it.
    #[error("the import {import} has type {found}, not {expected}")]
    Signature {
        import: String,
        found: String,
        expected: String,
    },
    /// An import neither the proxy world gives nor this module answers.
    #[error("the import {0} is neither in the wasi:http/proxy world nor one ocirelay answers")]
    Unsettled(String),
    /// The configuration needs the module's allocator to hand its text over.
    #[error("the module exports no cabi_realloc to place the configuration in")]
    NoAllocator,
    /// Answers are functions: a module without functions of its own has no
    /// section to put them in.
    #[error("the module has no function or code section")]
    NoFunctions,
}

/// `module` (a core module) with its imports beyond the proxy world
/// answered inside it, and with `config` (the edge service's) when given;
/// an error names an import it can neither keep nor answer.
pub fn settle(module: &[u8], config: Option<Config<'_>>) -> Result<Vec<u8>, SettleError> {
    let survey = Survey::of(module)?;
    let mut settler = Settler::plan(&survey, config)?;
    let mut out = wasm_encoder::Module::new();
    settler
        .parse_core_module(&mut out, Parser::new(0), module)
        .map_err(|e| match e {
            ReencodeError::UserError(e) => e,
            other => SettleError::Malformed(other.to_string()),
        })?;
    if !settler.code_written {
        return Err(SettleError::NoFunctions);
    }
    Ok(out.finish())
}

/// An imported function: where from, and its type's index.
struct FuncImport {
    module: String,
    name: String,
    ty: u32,
}

impl FuncImport {
    /// The interface without its version (`wasi:cli/exit`).
    fn interface(&self) -> &str {
        self.module.split('@').next().unwrap_or(&self.module)
    }

    fn describe(&self) -> String {
        format!("{}#{}", self.module, self.name)
    }
}

/// What settling needs to know of a module before rewriting it.
#[derive(Default)]
struct Survey {
    /// Every type, `None` where it is not a function type.
    types: Vec<Option<wasmparser::FuncType>>,
    /// Imported functions, in order (other imports do not move indices).
    imports: Vec<FuncImport>,
    /// Functions the module defines.
    defined: u32,
    /// The function exported as `cabi_realloc`.
    realloc: Option<u32>,
    /// Data segments.
    segments: u32,
}

impl Survey {
    fn of(module: &[u8]) -> Result<Survey, SettleError> {
        let malformed = |e: wasmparser::BinaryReaderError| SettleError::Malformed(e.to_string());
        let mut survey = Survey::default();
        for payload in Parser::new(0).parse_all(module) {
            match payload.map_err(malformed)? {
                Payload::TypeSection(reader) => {
                    for group in reader {
                        for ty in group.map_err(malformed)?.into_types() {
                            survey.types.push(match ty.composite_type.inner {
                                wasmparser::CompositeInnerType::Func(f) => Some(f),
                                _ => None,
                            });
                        }
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import.map_err(malformed)?;
                        if let TypeRef::Func(ty) = import.ty {
                            survey.imports.push(FuncImport {
                                module: import.module.to_string(),
                                name: import.name.to_string(),
                                ty,
                            });
                        }
                    }
                }
                Payload::FunctionSection(reader) => survey.defined = reader.count(),
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export.map_err(malformed)?;
                        if export.name == "cabi_realloc"
                            && export.kind == wasmparser::ExternalKind::Func
                        {
                            survey.realloc = Some(export.index);
                        }
                    }
                }
                Payload::DataSection(reader) => survey.segments = reader.count(),
                _ => {}
            }
        }
        Ok(survey)
    }
}
