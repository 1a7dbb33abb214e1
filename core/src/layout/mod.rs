//! OCI image layouts (a directory of `oci-layout`, `index.json` and
//! `blobs/`) as places to copy from and to. The host, which owns the file
//! system, answers a layout as a registry; what that needs of the format
//! and of the API is here: the index's model ([`index`]), what each
//! request asks ([`request`]) and what is answered ([`answer`]). The
//! operations never know a layout from a registry.

pub mod answer;
pub mod index;
pub mod request;

pub use index::{Entry, LayoutIndex};
pub use request::{Ask, Object, Refusal};
