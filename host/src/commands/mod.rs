//! One module per command.

pub mod copy;
pub mod index;
pub mod lookup;
pub mod service;
