//! Media types of manifests, indexes and configs: OCI (from `oci-spec`) and
//! Docker's v2.2 schema, which registries still serve everywhere.

/// `application/vnd.oci.image.manifest.v1+json`
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.image.config.v1+json`
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (Docker's index).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// What a blob is served as when nothing better is known.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The `Accept` header for manifest requests, as the original's client
/// (cue-labs `ociclient`) sends it: every manifest type it knows, artifact
/// manifests included, then `*/*` for the rest, because registries rewrite
/// or hide manifests whose type is not accepted.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.oci.artifact.manifest.v1+json, application/vnd.docker.distribution.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, */*";

/// An image manifest (OCI or Docker v2.2).
pub fn is_image_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// An index (OCI index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// Any of the four manifest types.
pub fn is_manifest(media_type: &str) -> bool {
    is_image_manifest(media_type) || is_index(media_type)
}

/// An image config (OCI or Docker).
pub fn is_image_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::MediaType;

    #[test]
    fn oci_constants_agree_with_oci_spec() {
        assert_eq!(MediaType::ImageManifest.to_string(), OCI_MANIFEST);
        assert_eq!(MediaType::ImageIndex.to_string(), OCI_INDEX);
        assert_eq!(MediaType::ImageConfig.to_string(), OCI_CONFIG);
    }

    #[test]
    fn accept_names_what_the_original_accepts_wildcard_last() {
        for t in [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST] {
            assert!(MANIFEST_ACCEPT.contains(t));
            assert!(is_manifest(t));
        }
        assert!(MANIFEST_ACCEPT.contains("application/vnd.oci.artifact.manifest.v1+json"));
        assert!(MANIFEST_ACCEPT.ends_with(", */*"));
        assert!(!is_manifest(OCI_CONFIG));
        assert!(is_image_config(DOCKER_CONFIG) && is_image_config(OCI_CONFIG));
        // An artifact's config (an attestation's, say) holds no platform.
        assert!(!is_image_config("application/vnd.in-toto+json"));
    }
}
