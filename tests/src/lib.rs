//! Test harness of ocirelay: real registries on loopback (plain, Basic and
//! token auth), a token server, deterministic image fixtures, and a runner
//! for the `ocirelay` binary.

pub mod cli;
pub mod clients;
pub mod edge;
pub mod fault_proxy;
pub mod fixtures;
pub mod http1;
pub mod measure;
pub mod push;
pub mod registry;
pub mod rootfs;
pub mod service;
pub mod tls;
pub mod token_server;
pub mod upload_faults;

pub use cli::{ocirelay, Output};
pub use fixtures::{
    bytes, platform, push_image, push_index, two_platforms, Flavour, Layout, Pushed,
};
pub use registry::{Auth, Registry};
