//! `sync`'s plan: its configuration (skopeo sync's source file, and
//! ocirelay's keys) and which tags and repositories it takes. The
//! operations are [`crate::ops::sync`] and [`crate::ops::sync_image`].

pub mod config;
pub mod select;

pub use config::SyncConfig;
