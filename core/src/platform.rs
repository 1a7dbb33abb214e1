//! Platforms: containerd's normalization, bashbrew's arm64 rule, and the
//! bashbrew architecture table that Docker Official Images deploy by.

use serde::{Deserialize, Serialize};

/// An OCI platform, in the OCI JSON shape. Strings are kept as given until
/// [`Platform::normalize`] is called.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, ...).
    #[serde(default, deserialize_with = "crate::json::nullable")]
    pub architecture: String,
    /// Operating system (`linux`, `windows`, ...).
    #[serde(default, deserialize_with = "crate::json::nullable")]
    pub os: String,
    /// OS version (Windows builds).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features.
    #[serde(
        rename = "os.features",
        default,
        deserialize_with = "crate::json::nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// A platform of OS, architecture and optional variant.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            architecture: architecture.to_string(),
            os: os.to_string(),
            variant: variant.map(str::to_string),
            ..Platform::default()
        }
    }

    /// containerd's normalization followed by bashbrew's rule that arm64
    /// without a variant is `v8`.
    pub fn normalize(&mut self) {
        self.normalize_containerd();
        if self.architecture == "arm64" && self.variant.is_none() {
            self.variant = Some("v8".to_string());
        }
    }

    /// containerd's `platforms.Normalize`: lower-case OS (`macos` -> `darwin`)
    /// and the architecture/variant aliases.
    pub fn normalize_containerd(&mut self) {
        self.os = match self.os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_string(),
            os => os.to_string(),
        };
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self.variant.take().unwrap_or_default().to_ascii_lowercase();
        let (arch, variant) = match arch.as_str() {
            "i386" => ("386".to_string(), String::new()),
            "x86_64" | "x86-64" | "amd64" => {
                let v = if variant == "v1" {
                    String::new()
                } else {
                    variant
                };
                ("amd64".to_string(), v)
            }
            "aarch64" | "arm64" => {
                let v = if variant == "8" || variant == "v8" {
                    String::new()
                } else {
                    variant
                };
                ("arm64".to_string(), v)
            }
            "armhf" => ("arm".to_string(), "v7".to_string()),
            "armel" => ("arm".to_string(), "v6".to_string()),
            "arm" => {
                let v = match variant.as_str() {
                    "" | "7" => "v7".to_string(),
                    "5" | "6" | "8" => format!("v{variant}"),
                    _ => variant,
                };
                ("arm".to_string(), v)
            }
            _ => (arch, variant),
        };
        self.architecture = arch;
        self.variant = (!variant.is_empty()).then_some(variant);
    }

    /// The same platform, normalized.
    pub fn normalized(mut self) -> Self {
        self.normalize();
        self
    }

    /// Whether two normalized platforms are the same, ignoring `os.version`
    /// and `os.features` (as bashbrew matches).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && self.variant == other.variant
    }

    /// The bashbrew architecture this (normalized) platform is, if any.
    pub fn bashbrew_arch(&self) -> Option<&'static str> {
        BASHBREW_ARCHES
            .iter()
            .find(|(_, os, arch, variant)| {
                self.os == *os && self.architecture == *arch && self.variant.as_deref() == *variant
            })
            .map(|(name, ..)| *name)
    }
}

/// The bashbrew architectures: (name, os, architecture, variant).
pub const BASHBREW_ARCHES: &[(&str, &str, &str, Option<&str>)] = &[
    ("amd64", "linux", "amd64", None),
    ("arm32v5", "linux", "arm", Some("v5")),
    ("arm32v6", "linux", "arm", Some("v6")),
    ("arm32v7", "linux", "arm", Some("v7")),
    ("arm64v8", "linux", "arm64", Some("v8")),
    ("i386", "linux", "386", None),
    ("mips64le", "linux", "mips64le", None),
    ("ppc64le", "linux", "ppc64le", None),
    ("riscv64", "linux", "riscv64", None),
    ("s390x", "linux", "s390x", None),
    ("windows-amd64", "windows", "amd64", None),
];

/// The OCI platform of a bashbrew architecture name.
pub fn bashbrew_platform(arch: &str) -> Option<Platform> {
    BASHBREW_ARCHES
        .iter()
        .find(|(name, ..)| *name == arch)
        .map(|(_, os, a, v)| Platform::new(os, a, *v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(os: &str, arch: &str, variant: Option<&str>) -> (String, String, Option<String>) {
        let mut p = Platform::new(os, arch, variant);
        p.normalize_containerd();
        (p.os, p.architecture, p.variant)
    }

    fn t(os: &str, arch: &str, variant: Option<&str>) -> (String, String, Option<String>) {
        (os.into(), arch.into(), variant.map(Into::into))
    }

    #[test]
    fn containerd_normalization() {
        assert_eq!(norm("Linux", "amd64", None), t("linux", "amd64", None));
        assert_eq!(norm("macos", "arm64", None), t("darwin", "arm64", None));
        assert_eq!(norm("linux", "i386", Some("x")), t("linux", "386", None));
        assert_eq!(norm("linux", "x86_64", None), t("linux", "amd64", None));
        assert_eq!(
            norm("linux", "x86-64", Some("v1")),
            t("linux", "amd64", None)
        );
        assert_eq!(
            norm("linux", "amd64", Some("v3")),
            t("linux", "amd64", Some("v3"))
        );
        assert_eq!(norm("linux", "aarch64", None), t("linux", "arm64", None));
        assert_eq!(norm("linux", "arm64", Some("8")), t("linux", "arm64", None));
        assert_eq!(
            norm("linux", "arm64", Some("v8")),
            t("linux", "arm64", None)
        );
        assert_eq!(
            norm("linux", "arm64", Some("v9")),
            t("linux", "arm64", Some("v9"))
        );
        assert_eq!(norm("linux", "armhf", None), t("linux", "arm", Some("v7")));
        assert_eq!(norm("linux", "armel", None), t("linux", "arm", Some("v6")));
        assert_eq!(norm("linux", "arm", None), t("linux", "arm", Some("v7")));
        assert_eq!(
            norm("linux", "arm", Some("7")),
            t("linux", "arm", Some("v7"))
        );
        assert_eq!(
            norm("linux", "arm", Some("5")),
            t("linux", "arm", Some("v5"))
        );
        assert_eq!(
            norm("linux", "arm", Some("6")),
            t("linux", "arm", Some("v6"))
        );
        assert_eq!(
            norm("linux", "arm", Some("8")),
            t("linux", "arm", Some("v8"))
        );
        assert_eq!(norm("linux", "riscv64", None), t("linux", "riscv64", None));
        assert_eq!(norm("linux", "s390x", None), t("linux", "s390x", None));
    }

    #[test]
    fn bashbrew_arm64_rule() {
        let p = Platform::new("linux", "aarch64", None).normalized();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        let p = Platform::new("linux", "arm64", Some("v8")).normalized();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.bashbrew_arch(), Some("arm64v8"));
    }

    #[test]
    fn arch_table_round_trips() {
        for (name, ..) in BASHBREW_ARCHES {
            let p = bashbrew_platform(name).unwrap();
            assert_eq!(p.clone().normalized(), p, "{name} is already normalized");
            assert_eq!(p.bashbrew_arch(), Some(*name));
        }
        assert_eq!(bashbrew_platform("sparc"), None);
        let i386 = Platform::new("linux", "i386", None).normalized();
        assert_eq!(i386.bashbrew_arch(), Some("i386"));
        let armhf = Platform::new("linux", "armhf", None).normalized();
        assert_eq!(armhf.bashbrew_arch(), Some("arm32v7"));
        assert_eq!(
            Platform::new("linux", "sparc64", None)
                .normalized()
                .bashbrew_arch(),
            None
        );
    }

    #[test]
    fn matching_ignores_os_version() {
        let mut win = Platform::new("windows", "amd64", None);
        win.os_version = Some("10.0.20348.2340".into());
        win.normalize();
        assert_eq!(win.bashbrew_arch(), Some("windows-amd64"));
        assert!(win.matches(&bashbrew_platform("windows-amd64").unwrap()));
        assert!(!win.matches(&bashbrew_platform("amd64").unwrap()));
    }

    #[test]
    fn json_uses_oci_field_names() {
        let mut p = Platform::new("windows", "amd64", None);
        p.os_version = Some("10.0".into());
        p.os_features = vec!["win32k".into()];
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"architecture":"amd64","os":"windows","os.version":"10.0","os.features":["win32k"]}"#
        );
    }
}
