//! One module per command.

pub mod copy;
pub mod deploy;
pub mod index;
pub mod lookup;
pub mod service;
pub mod sync;
pub mod sync_progress;
pub mod tags;
