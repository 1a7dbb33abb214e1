//! One module per command.

pub mod index;
pub mod lookup;
