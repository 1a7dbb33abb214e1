//! The sans-IO engine of ocirelay: it computes what to send to a registry and
//! what the answers mean, and never performs I/O itself. No sockets, clocks,
//! threads or async runtime: a driver (the wasm component, or a test with
//! scripted responses) does the sending.
//!
//! Layout: data model ([`reference`](mod@reference), [`digest`], [`descriptor`],
//! [`media_type`], [`manifest`], [`platform`]), protocol ([`http`],
//! [`distribution`], [`auth`]), shared client state ([`client`]) and the
//! clock it is told ([`time`]), policy ([`retry`], [`rate_limit`],
//! [`policy`], [`budget`], [`adaptive`]), how blobs go up ([`upload`]:
//! whole or in chunks, per registry; [`upload_check`]: a chunked session's
//! bytes hashed as one by whoever moves them), what hosts read from files
//! ([`docker_config`], [`settings`]), what an OCI image layout is and what
//! a host answering one as a registry is asked ([`layout`]), how JSON is
//! printed ([`json`]), and operations as state machines ([`ops`]) with the
//! registry [`cache`]. [`ops`] says how to drive an operation, how one is
//! written, and how to add one.

pub mod adaptive;
pub mod auth;
pub mod budget;
pub mod cache;
pub mod client;
pub mod deploy;
pub mod descriptor;
pub mod digest;
pub mod distribution;
pub mod docker_config;
pub mod error;
pub mod http;
pub mod index;
pub mod json;
pub mod layout;
pub mod manifest;
pub mod media_type;
pub mod ops;
pub mod percent;
pub mod platform;
pub mod policy;
pub mod range;
pub mod rate_limit;
pub mod reference;
pub mod retry;
pub mod service;
pub mod settings;
pub mod sync;
pub mod time;
pub mod upload;
pub mod upload_check;

pub use client::{Client, ClientConfig};
pub use descriptor::Descriptor;
pub use digest::{Digest, Verifier};
pub use error::{Error, Result};
pub use ops::{Operation, Output};
pub use platform::Platform;
pub use reference::Reference;
pub use time::Instant;
