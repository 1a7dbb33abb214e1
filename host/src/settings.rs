//! The optional settings file, for what a pipeline sets once rather than on
//! every command line: `$OCIRELAY_CONFIG`, else
//! `$XDG_CONFIG_HOME/ocirelay/config.json`, else
//! `~/.config/ocirelay/config.json`; its format is the core's [`Settings`].
//! Flags add to it; a `--rate` for a host the file names wins.

use std::path::PathBuf;

pub use ocirelay_core::settings::Settings;

use crate::error::HostError;

fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OCIRELAY_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("ocirelay").join("config.json"))
}

/// The settings file, or defaults when there is none. A file that is not
/// valid settings is an error naming it (and, for `$OCIRELAY_CONFIG`, so is
/// a missing one: it was asked for).
pub fn load() -> Result<Settings, HostError> {
    let Some(path) = path() else {
        return Ok(Settings::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && std::env::var_os("OCIRELAY_CONFIG").is_none() =>
        {
            return Ok(Settings::default())
        }
        Err(e) => {
            return Err(HostError::Usage(format!(
                "settings file {}: {e}",
                path.display()
            )))
        }
    };
    Settings::parse(&text)
        .map_err(|e| HostError::bad_file(format_args!("settings file {}", path.display()), e))
}
