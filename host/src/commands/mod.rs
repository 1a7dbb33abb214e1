//! One module per command.

pub mod lookup;
