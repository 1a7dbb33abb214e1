"""ocirelay for Python: looks up, copies and pushes OCI images between
container registries, running the ocirelay WebAssembly component (shipped
in this package) on wasmtime's Python embedding.

Every call blocks until the registries have answered. A `Client` holds one
component instance (one cache, one set of tokens); use one per thread.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from wasmtime import component as wc

from ._component import Component as _Component
from ._component import Instance as _Instance

__all__ = [
    "Client",
    "Reference",
    "Platform",
    "Descriptor",
    "Found",
    "BlobWriter",
    "DeployResult",
    "SyncResult",
    "Referrers",
    "CopiedReferrers",
    "OcirelayError",
    "InvalidReferenceError",
    "InvalidInputError",
    "NotFoundError",
    "AuthenticationError",
    "RegistryError",
    "IntegrityError",
    "ProtocolError",
    "TransportError",
    "TimedOutError",
    "RateLimitedError",
    "InternalError",
    "parse_ref",
]

# Content crosses as base64 text (`write-base64`, `read-base64`): wasmtime-py
# copies a string in one piece but converts a list<u8> a byte at a time
# (about 1 MiB/s). At most this many bytes a call, each way.
_PIECE = 1024 * 1024
_READ = 1024 * 1024


class OcirelayError(Exception):
    """An error from ocirelay; `kind` names it as the component does."""

    kind = "error"


class InvalidReferenceError(OcirelayError):
    kind = "invalid-reference"


class InvalidInputError(OcirelayError):
    kind = "invalid-input"


class NotFoundError(OcirelayError):
    kind = "not-found"


class AuthenticationError(OcirelayError):
    kind = "authentication"


class RegistryError(OcirelayError):
    kind = "registry"


class IntegrityError(OcirelayError):
    kind = "integrity"


class ProtocolError(OcirelayError):
    kind = "protocol"


class TransportError(OcirelayError):
    kind = "transport"


class TimedOutError(OcirelayError):
    """No answer, or no progress, in time (not the builtin TimeoutError, an OSError)."""

    kind = "timeout"


class RateLimitedError(OcirelayError):
    """The registry kept answering 429; `retry_after_secs` is the wait it asked for."""

    kind = "rate-limited"

    def __init__(self, message: str, retry_after_secs: Optional[int] = None):
        super().__init__(message)
        self.retry_after_secs = retry_after_secs


class InternalError(OcirelayError):
    kind = "internal"


_ERRORS = {
    cls.kind: cls
    for cls in (
        InvalidReferenceError,
        InvalidInputError,
        NotFoundError,
        AuthenticationError,
        RegistryError,
        IntegrityError,
        ProtocolError,
        TransportError,
        TimedOutError,
        RateLimitedError,
        InternalError,
    )
}


@dataclass(frozen=True)
class Reference:
    """A reference, parsed with Docker Hub's rules."""

    host: str
    repository: str
    tag: Optional[str] = None
    digest: Optional[str] = None


@dataclass(frozen=True)
class Platform:
    """What an image runs on (an index entry's platform)."""

    architecture: str
    os: str
    os_version: Optional[str] = None
    os_features: List[str] = field(default_factory=list)
    variant: Optional[str] = None


@dataclass(frozen=True)
class Descriptor:
    """An OCI descriptor."""

    media_type: str
    digest: str
    size: int
    urls: List[str] = field(default_factory=list)
    annotations: Dict[str, str] = field(default_factory=dict)
    platform: Optional[Platform] = None
    artifact_type: Optional[str] = None


def _record(**fields: Any) -> wc.Record:
    record = wc.Record()
    for name, value in fields.items():
        setattr(record, name.replace("_", "-"), value)
    return record


def _reference(ref: Union[str, Reference]) -> wc.Record:
    if isinstance(ref, str):
        ref = parse_ref(ref)
    return _record(host=ref.host, repository=ref.repository, tag=ref.tag, digest=ref.digest)


def _descriptor(d: wc.Record) -> Descriptor:
    platform = getattr(d, "platform")
    return Descriptor(
        media_type=getattr(d, "media-type"),
        digest=d.digest,
        size=d.size,
        urls=list(d.urls),
        annotations=dict(d.annotations),
        platform=None if platform is None else Platform(
            architecture=platform.architecture,
            os=platform.os,
            os_version=getattr(platform, "os-version"),
            os_features=list(getattr(platform, "os-features")),
            variant=platform.variant,
        ),
        artifact_type=getattr(d, "artifact-type"),
    )


_PARSER: Optional[_Instance] = None


def parse_ref(text: str) -> Reference:
    """Parses a reference with Docker Hub's rules (`hello-world` is
    `docker.io/library/hello-world`)."""
    global _PARSER
    if _PARSER is None:
        _PARSER = _Component.instantiate(_raise_error)
    r = _PARSER.call("parse-ref", text)
    return Reference(r.host, r.repository, r.tag, r.digest)


class Found:
    """A found object: its descriptor, and its content checked against its
    digest as it is read."""

    def __init__(self, instance: _Instance, reader: wc.ResourceAny):
        self._instance = instance
        self._reader = reader
        self.descriptor = _descriptor(instance.call("[method]blob-reader.descriptor", reader))

    def descriptor_json(self) -> str:
        """The descriptor as JSON, exactly as `ocirelay lookup --head` prints it."""
        return self._instance.call("[method]blob-reader.descriptor-json", self._reader)

    def read(self, max_bytes: int = _READ) -> bytes:
        """The next chunk; empty at the end, where a mismatch raises."""
        # As base64 text: wasmtime-py copies a string in one piece, a
        # list<u8> a byte at a time.
        text = self._instance.call("[method]blob-reader.read-base64", self._reader, max_bytes)
        return binascii.a2b_base64(text)

    def chunks(self, max_bytes: int = _READ) -> Iterator[bytes]:
        """Every chunk to the end."""
        while chunk := self.read(max_bytes):
            yield chunk

    def bytes(self) -> bytes:
        """The whole content, checked against its digest."""
        return b"".join(self.chunks())


class BlobWriter:
    """A blob pushed a chunk at a time (`Client.push_blob`)."""

    def __init__(self, instance: _Instance, writer: wc.ResourceAny):
        self._instance = instance
        self._writer = writer

    def write(self, chunk: bytes) -> bool:
        """Sends the next bytes; False when the registry has the blob already
        (nothing was sent: stop writing and `finish`)."""
        view = memoryview(chunk)
        for start in range(0, len(view), _PIECE):
            text = binascii.b2a_base64(view[start:start + _PIECE], newline=False).decode("ascii")
            if not self._instance.call("[method]blob-writer.write-base64", self._writer, text):
                return False
        return True

    def finish(self) -> Descriptor:
        """Completes the push once every byte matched the digest."""
        return _descriptor(self._instance.call("[method]blob-writer.finish", self._writer))


class Client:
    """A registry client: one cache and one set of tokens for its calls.

    `credentials` maps registry hosts to `{"username": ..., "password":
    ...}`, `{"token": ...}` or `{"identity_token": ...}`. `uploads` maps
    registry hosts (or `"*"`) to `{"chunk_size": ..., "monolithic_up_to":
    ...}` in bytes: blobs above `monolithic_up_to` (default 128 MiB) go in
    PATCH chunks of `chunk_size` (default 32 MiB) that resume where a
    broken connection left them.
    """

    def __init__(
        self,
        insecure_registries: Optional[List[str]] = None,
        credentials: Optional[Dict[str, Dict[str, str]]] = None,
        user_agent: str = "ocirelay-python/0.1.0",
        cache: bool = True,
        concurrency: int = 0,
        retry_deadline_secs: int = 0,
        docker_hub_proxy: Optional[str] = None,
        request_timeout_secs: int = 0,
        uploads: Optional[Dict[str, Dict[str, int]]] = None,
    ):
        self._instance: Optional[_Instance] = _Component.instantiate(_raise_error)
        config = _record(
            user_agent=user_agent,
            credentials=[(host, _credential(c)) for host, c in (credentials or {}).items()],
            insecure_registries=list(insecure_registries or []),
            cache=cache,
            concurrency=concurrency,
            retry_deadline_secs=retry_deadline_secs,
            docker_hub_proxy=docker_hub_proxy,
            policy=None,
            # Nothing in this host checks uploads: the component hashes them.
            uploads_verified_by_host=False,
            downloads_verified_by_host=False,
            request_timeout_secs=request_timeout_secs,
            uploads=[
                _record(
                    registry=registry,
                    chunk_size=rule.get("chunk_size", 0),
                    monolithic_up_to=rule.get("monolithic_up_to", 0),
                )
                for registry, rule in (uploads or {}).items()
            ],
        )
        self._client = self._instance.call("[constructor]client", config)

    def _method(self, name: str, *args: Any) -> Any:
        if self._instance is None:
            raise ValueError("this ocirelay Client is closed")
        return self._instance.call(f"[method]client.{name}", self._client, *args)

    def close(self) -> None:
        """Lets go of the component instance (its store, cache and tokens);
        the client cannot be used after. Closing twice does nothing."""
        if self._instance is not None:
            self._client.drop(self._instance.store)
            self._instance = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def lookup(self, ref: Union[str, Reference], head: bool = False, type: str = "manifest") -> Optional[Found]:
        """Looks a reference up (`type` "manifest" or "blob", as the
        JavaScript package and the deploy input name it); None when it
        does not exist."""
        options = _record(kind=type, head=head)
        reader = self._method("lookup", _reference(ref), options)
        return None if reader is None else Found(self._instance, reader)

    def manifest(self, ref: Union[str, Reference]) -> Optional[dict]:
        """The manifest or index at `ref`, as `ocirelay lookup --type
        manifest` prints it, as a dict; None when it does not exist."""
        text = self._method("manifest-json", _reference(ref))
        return None if text is None else json.loads(text)

    def synthesize_index(self, ref: Union[str, Reference]) -> Optional[dict]:
        """Whatever `ref` points at as an index, as `ocirelay index` prints
        it, as a dict; None when it does not exist."""
        text = self._method("synthesize-index-json", _reference(ref))
        return None if text is None else json.loads(text)

    def list_tags(
        self, repo: Union[str, Reference], page_size: Optional[int] = None, after: Optional[str] = None
    ) -> Optional[List[str]]:
        """The tags of repository `repo` (every page of the registry's list,
        in its order; `page_size` tags asked per page, only those after
        `after`); None when the repository does not exist."""
        options = _record(page_size=page_size, last=after, all_pages=True)
        listed = self._method("list-tags", _reference(repo), options)
        return None if listed is None else list(listed.tags)

    def list_referrers(
        self, subject: Union[str, Reference], artifact_type: Optional[str] = None
    ) -> Optional["Referrers"]:
        """The referrers of `subject` (signatures, SBOMs, attestations: the
        manifests whose `subject` names it; a tag is resolved first), only
        those of `artifact_type` when given: from the registry's referrers
        API, else from the fallback tag registries without it keep. None
        when the subject's tag does not exist."""
        found = self._method("list-referrers", _reference(subject), artifact_type)
        if found is None:
            return None
        source = found.source
        tag = source if isinstance(source, str) else source.tag
        return Referrers(
            manifests=[_descriptor(d) for d in found.manifests],
            index=json.loads(getattr(found, "index-json")),
            source=tag,
            holds=None if isinstance(source, str) else source.payload,
        )

    def copy(self, src: Union[str, Reference], dst: Union[str, Reference], referrers: bool = False,
             platforms: Optional[List[str]] = None) -> Descriptor:
        """Copies an image or index with every child, digests unchanged;
        with `referrers`, then what refers to it (see `copy_referrers`).
        With `platforms` (`os/arch[/variant]`), an index is cut down to
        those (and their attestations) and pushed as an index of its own
        digest, the same on every run (not with `referrers`)."""
        if platforms is not None:
            if referrers:
                raise InvalidInputError("copy: platforms and referrers do not go together "
                                        "(a cut index is another image)")
            return _descriptor(self._method("copy-platforms", _reference(src), _reference(dst), list(platforms)))
        children = _record(by_digest=[], fallback=None)
        copied = _descriptor(self._method("copy-manifest", _reference(src), _reference(dst), children))
        if referrers:
            self.copy_referrers(src, dst)
        return copied

    def copy_referrers(self, src: Union[str, Reference], dst: Union[str, Reference]) -> "CopiedReferrers":
        """Copies what refers to `src` (signatures, SBOMs, attestations; for
        an index, to each child too), recursively, into `dst`'s repository,
        digests unchanged, and cosign's .sig/.att/.sbom tags; `src` must be
        at `dst` already."""
        done = self._method("copy-referrers", _reference(src), _reference(dst))
        return CopiedReferrers(copied=[_descriptor(d) for d in done.copied], tags=list(done.tags),
                               skipped=list(done.skipped))

    def copy_blob(self, src: Union[str, Reference], dst: Union[str, Reference]) -> Descriptor:
        """Copies one blob (`src` by digest) into `dst`'s repository."""
        return _descriptor(self._method("copy-blob", _reference(src), _reference(dst)))

    def ensure_manifest(self, ref: Union[str, Reference], manifest: Union[bytes, str], media_type: str) -> Descriptor:
        """Pushes a manifest (JSON bytes or text) of `media_type` to `ref`."""
        data = manifest.encode() if isinstance(manifest, str) else manifest
        children = _record(by_digest=[], fallback=None)
        return _descriptor(self._method("ensure-manifest", _reference(ref), data, media_type, children))

    def ensure_blob(self, ref: Union[str, Reference], content: bytes) -> Descriptor:
        """Pushes `content` as blob `ref` (by digest), unless the registry
        has it already."""
        # Through the writer: its bytes cross as text, in one copy.
        writer = self.push_blob(ref, len(content))
        writer.write(content)
        return writer.finish()

    def deploy(
        self,
        input: Union[str, List[Dict[str, Any]]],
        dry_run: bool = False,
        parallel: bool = False,
        progress: bool = False,
        referrers: bool = False,
    ) -> List["DeployResult"]:
        """Runs the deploy tool's input (JSON objects as text, or a list of
        dicts), as `ocirelay deploy` does: the whole input is checked first
        (`InvalidInputError`), then each ref made so. One result per ref, in
        input order. With `referrers`, every manifest copied brings what
        refers to it (as an input's own `"referrers": true` asks)."""
        text = input if isinstance(input, str) else "\n".join(json.dumps(o) for o in input)
        options = _record(dry_run=dry_run, parallel=parallel, progress=progress, referrers=referrers)
        return [_deploy_result(r) for r in self._method("deploy", text, options)]

    def sync(
        self,
        config: Union[str, Dict[str, Any]],
        destination: Optional[str] = None,
        shard: Optional[Tuple[int, int]] = None,
        dry_run: bool = False,
        progress: bool = False,
    ) -> List["SyncResult"]:
        """Syncs what a sync config names, as `ocirelay sync` does: skopeo
        sync's source file (a dict, or its JSON), plus ocirelay's keys under
        "ocirelay". Each image is HEADed at both ends and copied when it
        changed; one that fails is a result and the rest go on. `shard`
        (K, N) takes only the repositories of shard K (from 0) of N;
        `progress` writes a line on stderr as each image ends."""
        text = config if isinstance(config, str) else json.dumps(config)
        options = _record(destination=destination, shard=shard, dry_run=dry_run, progress=progress,
                          progress_json=False)
        return [_sync_result(r) for r in self._method("sync", text, options)]

    def push_blob(self, ref: Union[str, Reference], size: int) -> BlobWriter:
        """Starts pushing blob `ref` (by digest) of `size` bytes through a writer."""
        return BlobWriter(self._instance, self._method("push-blob", _reference(ref), size))


@dataclass(frozen=True)
class Referrers:
    """The referrers of a manifest (`Client.list_referrers`): their
    descriptors, the same list as the referrers API gives it (an image
    index, a dict), and where it came from: "api", "fallback-tag",
    "nothing", or "not-an-index" (the fallback tag holds something else,
    named in `holds`)."""

    manifests: List[Descriptor]
    index: Dict[str, Any]
    source: str
    holds: Optional[str] = None


@dataclass(frozen=True)
class CopiedReferrers:
    """What `Client.copy_referrers` copied: the referrers (descriptors),
    cosign's tags, and why listed referrers were skipped."""

    copied: List[Descriptor]
    tags: List[str]
    skipped: List[str]


@dataclass(frozen=True)
class DeployResult:
    """How one ref of a deploy ended: `outcome` is "deployed" (with
    `descriptor`), "up-to-date" or "would-change" (dry run; `input`, as the
    original prints it), "failed" (with `error`) or "not-started"."""

    reference: str
    outcome: str
    descriptor: Optional[Descriptor] = None
    input: Optional[str] = None
    error: Optional[OcirelayError] = None


@dataclass(frozen=True)
class SyncResult:
    """How one image of a sync ended: `outcome` is "copied", "unchanged",
    "would-copy" (dry run; each with `descriptor`) or "failed" (with
    `error`); `destination` is None for a repository whose tags could not
    be listed; `referrers` what refers to it, copied, when asked for;
    `requests` and `bytes_sent` what it cost."""

    source: str
    destination: Optional[str]
    outcome: str
    requests: int = 0
    bytes_sent: int = 0
    descriptor: Optional[Descriptor] = None
    error: Optional[OcirelayError] = None
    referrers: Optional["CopiedReferrers"] = None


def _sync_result(r: wc.Record) -> SyncResult:
    outcome = r.outcome
    refs = r.referrers
    copied = None if refs is None else CopiedReferrers(
        copied=[_descriptor(d) for d in refs.copied], tags=list(refs.tags), skipped=list(refs.skipped))
    cost = {"requests": r.requests, "bytes_sent": getattr(r, "bytes-sent")}
    if outcome.tag == "failed":
        return SyncResult(r.source, r.destination, "failed", error=_error(outcome.payload), referrers=copied, **cost)
    return SyncResult(r.source, r.destination, outcome.tag, descriptor=_descriptor(outcome.payload),
                      referrers=copied, **cost)


def _raise_error(v: wc.Variant) -> None:
    """Raises `v` as its exception when it is an error (a `result`'s)."""
    if v.tag in _ERRORS:
        raise _error(v)


def _error(v: wc.Variant) -> OcirelayError:
    if v.tag == "rate-limited":
        return RateLimitedError(v.payload.message, getattr(v.payload, "retry-after-secs"))
    return _ERRORS.get(v.tag, OcirelayError)(v.payload)


def _deploy_result(r: wc.Record) -> DeployResult:
    outcome = r.outcome
    # Cases without a payload may come as their bare name.
    tag = outcome if isinstance(outcome, str) else outcome.tag
    result = DeployResult(reference=r.reference, outcome=tag)
    if tag == "deployed":
        return DeployResult(r.reference, tag, descriptor=_descriptor(outcome.payload))
    if tag == "would-change":
        return DeployResult(r.reference, tag, input=outcome.payload)
    if tag == "failed":
        return DeployResult(r.reference, tag, error=_error(outcome.payload))
    return result


def _credential(c: Dict[str, str]) -> wc.Variant:
    if "identity_token" in c:
        return wc.Variant("identity-token", c["identity_token"])
    if "token" in c:
        return wc.Variant("bearer", c["token"])
    return wc.Variant("basic", (c["username"], c["password"]))
