//! How each import beyond the proxy world is answered: which imports, the
//! signature each must have, and the function that replaces it.

use wasm_encoder::{Function, Instruction, MemArg, ValType};

use super::rewrite::Settler;
use super::{FuncImport, SettleError, Survey, CONFIG_INTERFACE};

/// What a settled import does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// Nothing (dropping a terminal, which is never handed out).
    Nothing,
    /// Traps: exit has nowhere to go in a request handler.
    Trap,
    /// An empty list at the return pointer (no environment, no arguments).
    EmptyList,
    /// `none` at the return pointer (no working directory, no terminal).
    NoneOption,
    /// Two words of `wasi:random/random` at the return pointer.
    Seed,
    /// The configuration's text, copied into memory the module allocates.
    Config,
    /// Whether the host verifies downloads.
    HostVerifies,
}

impl Answer {
    /// The core signature the canonical ABI gives the import (params,
    /// results): a return pointer, or a flag returned.
    pub(super) fn signature(
        self,
    ) -> (
        &'static [wasmparser::ValType],
        &'static [wasmparser::ValType],
    ) {
        match self {
            Answer::HostVerifies => (&[], &[wasmparser::ValType::I32]),
            _ => (&[wasmparser::ValType::I32], &[]),
        }
    }

    /// The body of the function that answers the import.
    pub(super) fn body(self, settler: &Settler) -> Function {
        use Instruction as I;
        let at = |offset, align| MemArg {
            offset,
            align,
            memory_index: 0,
        };
        let mut f = Function::new(if self == Answer::Config {
            vec![(1, ValType::I32)]
        } else {
            vec![]
        });
        match self {
            Answer::Nothing => {}
            Answer::Trap => {
                f.instruction(&I::Unreachable);
            }
            Answer::EmptyList => {
                // A dangling, aligned pointer (as Rust's empty Vec has) and length 0.
                for (offset, value) in [(0, 4), (4, 0)] {
                    f.instruction(&I::LocalGet(0))
                        .instruction(&I::I32Const(value))
                        .instruction(&I::I32Store(at(offset, 2)));
                }
            }
            Answer::NoneOption => {
                f.instruction(&I::LocalGet(0))
                    .instruction(&I::I32Const(0))
                    .instruction(&I::I32Store8(at(0, 0)));
            }
            Answer::Seed => {
                let random = settler.random.unwrap_or_default();
                for offset in [0, 8] {
                    f.instruction(&I::LocalGet(0))
                        .instruction(&I::Call(random))
                        .instruction(&I::I64Store(at(offset, 3)));
                }
            }
            Answer::Config => {
                let len = settler.config.map_or(0, |c| c.json.len()) as i32;
                // ptr = cabi_realloc(0, 0, 1, len); the text copied there.
                f.instruction(&I::I32Const(0))
                    .instruction(&I::I32Const(0))
                    .instruction(&I::I32Const(1))
                    .instruction(&I::I32Const(len))
                    .instruction(&I::Call(settler.realloc))
                    .instruction(&I::LocalSet(1))
                    .instruction(&I::LocalGet(1))
                    .instruction(&I::I32Const(0))
                    .instruction(&I::I32Const(len))
                    .instruction(&I::MemoryInit {
                        mem: 0,
                        data_index: settler.config_segment,
                    })
                    .instruction(&I::LocalGet(0))
                    .instruction(&I::LocalGet(1))
                    .instruction(&I::I32Store(at(0, 2)))
                    .instruction(&I::LocalGet(0))
                    .instruction(&I::I32Const(len))
                    .instruction(&I::I32Store(at(4, 2)));
            }
            Answer::HostVerifies => {
                let verifies = settler.config.is_some_and(|c| c.host_verifies);
                f.instruction(&I::I32Const(i32::from(verifies)));
            }
        }
        f.instruction(&I::End);
        f
    }
}

/// Imports answered inside the module: (interface, function, answer).
#[rustfmt::skip]
pub(super) const ANSWERS: &[(&str, &str, Answer)] = &[
    ("wasi:cli/environment", "get-environment", Answer::EmptyList),
    ("wasi:cli/environment", "get-arguments", Answer::EmptyList),
    ("wasi:cli/environment", "initial-cwd", Answer::NoneOption),
    ("wasi:cli/exit", "exit", Answer::Trap),
    ("wasi:cli/exit", "exit-with-code", Answer::Trap),
    (
        "wasi:cli/terminal-stdin",
        "get-terminal-stdin",
        Answer::NoneOption,
    ),
    (
        "wasi:cli/terminal-stdout",
        "get-terminal-stdout",
        Answer::NoneOption,
    ),
    (
        "wasi:cli/terminal-stderr",
        "get-terminal-stderr",
        Answer::NoneOption,
    ),
    (
        "wasi:cli/terminal-input",
        "[resource-drop]terminal-input",
        Answer::Nothing,
    ),
    (
        "wasi:cli/terminal-output",
        "[resource-drop]terminal-output",
        Answer::Nothing,
    ),
    ("wasi:random/insecure-seed", "insecure-seed", Answer::Seed),
    (CONFIG_INTERFACE, "config", Answer::Config),
    (
        CONFIG_INTERFACE,
        "host-verifies-downloads",
        Answer::HostVerifies,
    ),
];

/// Where the random words for a seed come from.
pub(super) const RANDOM: (&str, &str) = ("wasi:random/random", "get-random-u64");

/// An answered import must have the signature its answer is written for.
pub(super) fn check_signature(
    survey: &Survey,
    import: &FuncImport,
    answer: Answer,
) -> Result<(), SettleError> {
    let (params, results) = answer.signature();
    let found = survey
        .types
        .get(import.ty as usize)
        .and_then(Option::as_ref);
    match found {
        Some(f) if f.params() == params && f.results() == results => Ok(()),
        _ => Err(SettleError::Signature {
            import: import.describe(),
            found: found.map_or_else(|| "not a function type".to_string(), |f| f.to_string()),
            expected: format!("{params:?} -> {results:?}"),
        }),
    }
}
