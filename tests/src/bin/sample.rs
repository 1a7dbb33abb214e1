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
    // Nothing listening there is the usual mistake: say what to do.
    let authority = match reference.host.contains(':') {
        true => reference.host.clone(),
        false => format!("{}:443", reference.host),
    };
    if std::net::TcpStream::connect(&authority).is_err() {
        eprintln!(
            "sample: no registry answers at {}; start one first (scripts/registry PORT)",
            reference.host
        );
        std::process::exit(1);
    }
    let tag = reference.tag.clone().unwrap_or_default();
    let mut layout = Layout::new();
    let index = layout
        .platform_index(&tag, Flavour::Oci, &two_platforms())
        .index;
    if let Err(e) = layout.try_copy_out(&tag, &reference.to_string(), None) {
        eprintln!("sample: {e}");
        std::process::exit(1);
    }
    println!(
        "pushed {reference} ({}): an index of linux/amd64 and linux/arm64/v8",
        index.digest
    );
}
