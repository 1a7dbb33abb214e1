//! The quick-start demo: starts a local registry, pushes a sample
//! multi-platform image into it, looks it up and copies it with `ocirelay`.

use ocirelay_tests::cli::ocirelay;
use ocirelay_tests::{push_index, two_platforms, Auth, Flavour, Registry};

fn main() {
    let registry = Registry::start_plain(Auth::None);
    println!(
        "started docker-registry on {} (temporary storage)",
        registry.host()
    );
    let pushed = push_index(
        &registry,
        "sample/hello",
        "1.0",
        Flavour::Oci,
        &two_platforms(),
    );
    println!("pushed sample/hello:1.0 (an index of linux/amd64 and linux/arm64/v8)\n");

    let tag = registry.reference("sample/hello:1.0");
    let image = registry.reference(&format!("sample/hello@{}", pushed.images[0].digest));
    let copy = registry.reference("mirror/hello:1.0");
    for args in [
        vec!["lookup", "--head", tag.as_str()],
        vec!["lookup", tag.as_str()],
        vec!["lookup", "--type", "manifest", image.as_str()],
        vec!["copy", tag.as_str(), copy.as_str()],
        vec!["lookup", "--head", copy.as_str()],
        vec!["lookup", "--head", "127.0.0.1:1/unreachable:x"],
    ] {
        println!("$ ocirelay {}", args.join(" "));
        let out = ocirelay(&args);
        print!("{}", out.stdout);
        eprint!("{}", out.stderr);
        println!("(exit {})\n", out.code);
    }
}
