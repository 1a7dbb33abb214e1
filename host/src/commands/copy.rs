//! `ocirelay copy`: an image or index with all its children (or one blob)
//! from one reference to another.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ocirelay_core::Reference;

use crate::error::HostError;
use crate::layout::{LayoutArg, Layouts};
use crate::output::write_json;
use crate::runtime::{wit, Runtime};

/// Arguments of `ocirelay copy`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Copies keep the exact bytes and media types, so digests never change.
Within one registry, blobs are mounted across repositories (no bytes move);
across registries they stream from source to destination in bounded memory,
layers in parallel. Content already at the destination is not sent again: a
re-run costs one HEAD. Prints the resulting descriptor as JSON; on a terminal,
progress (bytes and objects written) goes to stderr.")]
pub struct CopyArgs {
    /// Copy a single blob (SRC must name a digest) instead of a manifest.
    #[arg(long, conflicts_with = "referrers")]
    pub blob: bool,
    /// Also copy what refers to the image (signatures, SBOMs, attestations:
    /// OCI 1.1 referrers, and cosign's `.sig`/`.att`/`.sbom` tags), for it
    /// and each child of an index, recursively, after it; what was copied
    /// is said on stderr.
    #[arg(long)]
    pub referrers: bool,
    /// Only these platforms (`os/arch[/variant]`, comma-separated or
    /// repeated): an index is cut down to them and pushed as an index of
    /// its own digest (printed), the same on every run; an image, or an
    /// index of only these, is copied as it is.
    #[arg(
        long = "platform",
        value_name = "OS/ARCH[/VARIANT]",
        value_delimiter = ',',
        conflicts_with_all = ["blob", "referrers"]
    )]
    pub platforms: Vec<String>,
    /// What to copy, e.g. `localhost:5000/app:v1`, `…/app@sha256:…`, or an
    /// OCI image layout, `oci:DIR[:TAG]` (without a tag, the layout's one image).
    #[arg(value_name = "SRC")]
    pub src: String,
    /// Where to, e.g. `registry.example/app:v1` (a tag, a digest, or neither:
    /// then it is pushed by digest), or an OCI image layout, `oci:DIR[:TAG]`
    /// (made if missing; without a tag, SRC's).
    #[arg(value_name = "DST")]
    pub dst: String,
}

impl CopyArgs {
    /// Names the OCI layouts among SRC and DST (`oci:DIR[:TAG]`) as
    /// registries `layouts` answers for, each checked now. A layout
    /// written to takes DST's tag, else SRC's.
    pub fn use_layouts(&mut self, layouts: &mut Layouts) -> Result<(), HostError> {
        let src = LayoutArg::parse(&self.src).transpose()?;
        let dst = LayoutArg::parse(&self.dst).transpose()?;
        if self.blob && (src.is_some() || dst.is_some()) {
            return Err(HostError::Usage(
                "copy --blob copies between registries; copy the image to or from a layout".into(),
            ));
        }
        if let Some(src) = &src {
            self.src = layouts.source(src)?;
        }
        if let Some(dst) = &dst {
            let source_tag = Reference::parse(&self.src)?.tag;
            self.dst = layouts.destination(dst, source_tag.as_deref())?;
        }
        Ok(())
    }
}

/// Runs the command.
pub async fn run(runtime: &Runtime, config: wit::Config, args: CopyArgs) -> Result<(), HostError> {
    let src = Reference::parse(&args.src)?;
    let dst = Reference::parse(&args.dst)?;
    let progress = std::io::stderr().is_terminal().then(|| progress(runtime));
    let mut session = runtime.session(config).await?;
    let result = if args.blob {
        session.copy_blob(&src, &dst).await
    } else {
        let copied = match args.platforms.is_empty() {
            true => session.copy_manifest(&src, &dst).await,
            false => session.copy_platforms(&src, &dst, &args.platforms).await,
        };
        match copied {
            Ok(copied) if args.referrers => {
                // After the image: a registry may refuse a subject it lacks.
                let referrers = session.copy_referrers(&src, &dst).await;
                referrers.map(|r| {
                    report(&r, runtime.layouts());
                    copied
                })
            }
            other => other,
        }
    };
    if let Some((bar, task)) = progress {
        task.abort();
        bar.finish_and_clear();
    }
    write_json(&mut std::io::stdout().lock(), &result?).map_err(HostError::from)
}

/// What a copy of referrers did, on stderr.
fn report(copied: &wit::CopiedReferrers, layouts: &Layouts) {
    eprintln!(
        "ocirelay: {} referrers copied, {} cosign tags",
        copied.copied.len(),
        copied.tags.len()
    );
    for why in &copied.skipped {
        // Debug-quoted: a registry's words, printed inert.
        eprintln!("ocirelay: skipped {:?}", layouts.shown(why));
    }
}

/// A spinner with bytes and objects written, refreshed from the hook's counters.
fn progress(runtime: &Runtime) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let traffic = runtime.traffic().clone();
    let shown = bar.clone();
    let task = tokio::spawn(async move {
        loop {
            let bytes = traffic.bytes_sent.load(Ordering::Relaxed);
            shown.set_message(format!(
                "{} sent, {} objects written, {} requests",
                indicatif::HumanBytes(bytes),
                traffic.objects_written.load(Ordering::Relaxed),
                traffic.requests.load(Ordering::Relaxed),
            ));
            shown.tick();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (bar, task)
}
