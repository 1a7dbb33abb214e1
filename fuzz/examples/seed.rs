//! Writes the seed corpora into a directory, one folder per target:
//! `seed DIR` (what `scripts/fuzz` starts each target from).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    for (target, inputs) in ocirelay_fuzz::seeds::all() {
        let folder = dir.join(target);
        std::fs::create_dir_all(&folder)?;
        for (i, input) in inputs.iter().enumerate() {
            std::fs::write(folder.join(format!("seed-{i:03}")), input)?;
        }
        println!("{target}: {} seeds", inputs.len());
    }
    Ok(())
}
