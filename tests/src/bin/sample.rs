//! Pushes a sample image to a registry: an OCI index of linux/amd64 and
//! linux/arm64/v8, one small layer each. Something to look up and copy on
//! a machine with no network (see the README's "Trying it offline").
//! Usage: sample HOST[:PORT]/REPOSITORY:TAG

use ocirelay_core::Reference;
use ocirelay_tests::{two_platforms, Flavour, Layout};

fn main() {
    let Some(target) = std::env::args().nth(1) else {
        eprintln!("usage: sample HOST[:PORT]/REPOSITORY:TAG (e.g. localhost:5000/sample:v1)");
        std::process::exit(2);
    };
    let reference = match Reference::parse(&target) {
        Ok(r) if r.tag.is_some() && r.digest.is_none() => r,
        Ok(_) => {
            eprintln!("sample: {target:?}: give a tag and no digest");
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("sample: {e}");
            std::process::exit(2);
        }
    };
    let tag = reference.tag.clone().unwrap_or_default();
    let mut layout = Layout::new();
    let index = layout
        .platform_index(&tag, Flavour::Oci, &two_platforms())
        .index;
    layout.copy_out(&tag, &reference.to_string(), None);
    println!(
        "pushed {reference} ({}): an index of linux/amd64 and linux/arm64/v8",
        index.digest
    );
}
