//! A session: one component instance and its registry client, and a call
//! of the client's per command (each a WIT function of `client`,
//! `blob-reader` or `blob-writer`).

use wasmtime::component::ResourceAny;
use wasmtime::Store;

use ocirelay_core::index::Index;
use ocirelay_core::ops::batch::{Answer, Query};
use ocirelay_core::ops::lookup::LookupOptions;
use ocirelay_core::{Descriptor, Reference};

use super::{wit, Relay, State};
use crate::error::HostError;

/// One component instance and its client.
pub struct Session {
    pub(super) store: Store<State>,
    pub(super) relay: Relay,
    pub(super) client: ResourceAny,
}

/// A found object: a reader of its descriptor and content in the component
/// (checked against the digest as it is read).
pub struct Reader {
    pub(super) resource: ResourceAny,
}

impl Session {
    /// What `reader` found, as JSON (`ocirelay lookup --head` prints it):
    /// its `data` included when the object was read earlier in this session.
    pub async fn descriptor_json(&mut self, reader: &Reader) -> Result<String, HostError> {
        self.relay
            .ocirelay_registry_registry()
            .blob_reader()
            .call_descriptor_json(&mut self.store, reader.resource)
            .await
            .map_err(HostError::runtime("reading a descriptor"))
    }

    /// Looks `reference` up; `None` when it does not exist.
    pub async fn lookup(
        &mut self,
        reference: &Reference,
        options: LookupOptions,
    ) -> Result<Option<Reader>, HostError> {
        let found = self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_lookup(
                &mut self.store,
                self.client,
                &reference.into(),
                options.into(),
            )
            .await
            .map_err(HostError::runtime("calling lookup"))??;
        match found {
            Some(resource) => Ok(Some(Reader { resource })),
            None => Ok(None),
        }
    }

    /// The synthesized index of `reference`; `None` when it does not exist.
    pub async fn synthesize_index(
        &mut self,
        reference: &Reference,
    ) -> Result<Option<Index>, HostError> {
        let index = self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_synthesize_index(&mut self.store, self.client, &reference.into())
            .await
            .map_err(HostError::runtime("calling synthesize-index"))??;
        index.as_ref().map(TryInto::try_into).transpose()
    }

    /// Runs `queries` side by side in the component; one outcome each, in order.
    pub async fn batch(
        &mut self,
        queries: &[Query],
    ) -> Result<Vec<Result<Option<Answer<Reader>>, HostError>>, HostError> {
        let queries: Vec<wit::Query> = queries.iter().map(Into::into).collect();
        let results = self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_batch(&mut self.store, self.client, &queries)
            .await
            .map_err(HostError::runtime("calling batch"))?;
        let mut out = Vec::with_capacity(results.len());
        for result in results {
            out.push(match result {
                Ok(Some(wit::Answer::Found(resource))) => {
                    Ok(Some(Answer::Found(Reader { resource })))
                }
                Ok(Some(wit::Answer::Index(index))) => {
                    (&index).try_into().map(|i| Some(Answer::Index(i)))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(HostError::from(e)),
            });
        }
        Ok(out)
    }

    /// Copies manifest `src` (with all its children) to `dst`.
    pub async fn copy_manifest(
        &mut self,
        src: &Reference,
        dst: &Reference,
    ) -> Result<Descriptor, HostError> {
        let children = wit::ChildRefs {
            by_digest: Vec::new(),
            fallback: None,
        };
        let d = self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_copy_manifest(
                &mut self.store,
                self.client,
                &src.into(),
                &dst.into(),
                &children,
            )
            .await
            .map_err(HostError::runtime("calling copy-manifest"))??;
        (&d).try_into()
    }

    /// Copies `src` to `dst` cut down to `platforms` (see
    /// `client.copy-platforms`).
    pub async fn copy_platforms(
        &mut self,
        src: &Reference,
        dst: &Reference,
        platforms: &[String],
    ) -> Result<Descriptor, HostError> {
        let d = self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_copy_platforms(
                &mut self.store,
                self.client,
                &src.into(),
                &dst.into(),
                platforms,
            )
            .await
            .map_err(HostError::runtime("calling copy-platforms"))??;
        (&d).try_into()
    }

    /// Runs a deploy input stream (see `client.deploy`): one result per ref.
    pub async fn deploy(
        &mut self,
        input: &str,
        options: wit::DeployOptions,
    ) -> Result<Vec<wit::DeployResult>, HostError> {
        Ok(self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_deploy(&mut self.store, self.client, input, options)
            .await
            .map_err(HostError::runtime("calling deploy"))??)
    }

    /// Runs a sync (see `client.sync`): one result per image.
    pub async fn sync(
        &mut self,
        config_json: &str,
        options: wit::SyncOptions,
    ) -> Result<Vec<wit::SyncResult>, HostError> {
        Ok(self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_sync(&mut self.store, self.client, config_json, &options)
            .await
            .map_err(HostError::runtime("calling sync"))??)
    }

    /// Copies blob `src` to `dst`.
    pub async fn copy_blob(
        &mut self,
        src: &Reference,
        dst: &Reference,
    ) -> Result<Descriptor, HostError> {
        let d = self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_copy_blob(&mut self.store, self.client, &src.into(), &dst.into())
            .await
            .map_err(HostError::runtime("calling copy-blob"))??;
        (&d).try_into()
    }

    /// The tags of `repository` (see `client.list-tags`); `None` when it
    /// does not exist.
    pub async fn list_tags(
        &mut self,
        repository: &Reference,
        options: &wit::TagsOptions,
    ) -> Result<Option<wit::TagList>, HostError> {
        Ok(self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_list_tags(&mut self.store, self.client, &repository.into(), options)
            .await
            .map_err(HostError::runtime("calling list-tags"))??)
    }

    /// Copies what refers to `src` into `dst`'s repository (see
    /// `client.copy-referrers`).
    pub async fn copy_referrers(
        &mut self,
        src: &Reference,
        dst: &Reference,
    ) -> Result<wit::CopiedReferrers, HostError> {
        Ok(self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_copy_referrers(&mut self.store, self.client, &src.into(), &dst.into())
            .await
            .map_err(HostError::runtime("calling copy-referrers"))??)
    }

    /// The referrers of `subject` (see `client.list-referrers`); `None`
    /// when its tag does not exist.
    pub async fn list_referrers(
        &mut self,
        subject: &Reference,
        artifact_type: Option<&str>,
    ) -> Result<Option<wit::Referrers>, HostError> {
        Ok(self
            .relay
            .ocirelay_registry_registry()
            .client()
            .call_list_referrers(&mut self.store, self.client, &subject.into(), artifact_type)
            .await
            .map_err(HostError::runtime("calling list-referrers"))??)
    }

    /// The next chunk of `reader`'s content; empty at the end (which is
    /// where a digest or size mismatch is reported).
    pub async fn read(&mut self, reader: &Reader, max: u64) -> Result<Vec<u8>, HostError> {
        Ok(self
            .relay
            .ocirelay_registry_registry()
            .blob_reader()
            .call_read(&mut self.store, reader.resource, max)
            .await
            .map_err(HostError::runtime("reading content"))??)
    }

    /// Releases `reader` in the component.
    pub async fn close(&mut self, reader: Reader) -> Result<(), HostError> {
        reader
            .resource
            .resource_drop_async(&mut self.store)
            .await
            .map_err(HostError::runtime("closing a reader"))
    }
}
