//! The deploy tool's input, as the original's (`cmd/deploy`) reads it: a
//! stream of `{type, refs, lookup, data}` objects, normalized ([`input`])
//! with `data` objects printed as `jq --tab` prints them ([`jq`]).

pub mod input;
pub mod jq;
