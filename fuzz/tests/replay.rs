//! Every seed and every input that once broke a target (`fuzz/regressions/
//! <target>/`), replayed through the target: what the fuzzer found stays
//! fixed.

use std::path::Path;

use ocirelay_fuzz::{seeds, targets};

#[test]
fn seeds_pass_their_targets() {
    for (target, inputs) in seeds::all() {
        let run = targets::by_name(target).expect("a target of that name");
        assert!(!inputs.is_empty(), "{target}: no seeds");
        for input in inputs {
            run(&input);
        }
    }
}

#[test]
fn regressions_pass_their_targets() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    // Folders the run script made for targets that never crashed are empty.
    for folder in std::fs::read_dir(&dir).expect("fuzz/regressions") {
        let folder = folder.expect("a folder").path();
        if !folder.is_dir() {
            continue; // the README
        }
        let name = folder.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let run = targets::by_name(name).unwrap_or_else(|| panic!("no target {name}"));
        for file in std::fs::read_dir(&folder).expect("a target's regressions") {
            let file = file.expect("a file").path();
            let input = std::fs::read(&file).expect("a regression input");
            println!("{}", file.display());
            run(&input);
        }
    }
}
