// ocirelay for Node.js: the ocirelay WebAssembly component (transpiled by
// jco into dist/) behind a small JavaScript API. Every call blocks the
// calling thread until the registry has answered (the WASI shim does its
// I/O on a worker and waits for it): in a server, use `ocirelay/async`
// (async.js) where the engine has JSPI, else call it from a worker thread.

import { Readable, Writable } from 'node:stream';

import { registry } from './dist/ocirelay.js';
import {
  clientConfig,
  copiedReferrers,
  deployResults,
  deployText,
  descriptor,
  referrers,
  rethrown,
  syncResults,
  syncText,
  copyOptionsError,
} from './common.js';

export { ErrorKinds, OcirelayError } from './common.js';

// jco throws a component's `result` error as an Error whose `payload` is
// the WIT variant ({tag, val}); anything else is rethrown as it is.
function call(fn) {
  try {
    return fn();
  } catch (e) {
    throw rethrown(e);
  }
}

/** A reference string parsed with Docker Hub's rules. */
export function parseRef(text) {
  return call(() => registry.parseRef(text));
}

const asRef = (ref) => (typeof ref === 'string' ? parseRef(ref) : ref);

/** A found object: its descriptor, and its content read in chunks. */
export class Found {
  #reader;

  constructor(reader) {
    this.#reader = reader;
    /** What was found (sizes as numbers). */
    this.descriptor = descriptor(reader.descriptor());
  }

  /** The descriptor as JSON, exactly as `ocirelay lookup --head` prints it. */
  descriptorJson() {
    return this.#reader.descriptorJson();
  }

  /** The next chunk (at most `max` bytes); empty at the end, where a
   * content that does not match its digest throws. */
  read(max = 1 << 20) {
    return call(() => this.#reader.read(BigInt(max)));
  }

  /** The whole content, checked against its digest. */
  bytes() {
    return Buffer.concat([...this]);
  }

  /** The content a chunk at a time (`for (const chunk of found)`); a
   * mismatch throws at the end. */
  *[Symbol.iterator]() {
    for (;;) {
      const chunk = this.read();
      if (chunk.length === 0) return;
      yield chunk;
    }
  }

  /** The content as a Node `Readable` (for `pipeline`); a mismatch is the
   * stream's error. Each read blocks the thread, as every call does. */
  stream() {
    return Readable.from(this, { objectMode: false });
  }
}

/** A blob pushed a chunk at a time (`Client.pushBlob`). */
export class BlobWriter {
  #writer;
  #present = false;
  #finished;

  constructor(writer) {
    this.#writer = writer;
  }

  /** Sends the next bytes; `false` when the registry has the blob already
   * (nothing was sent: stop writing and `finish`). */
  write(chunk) {
    if (this.#present) return false;
    const wanted = call(() => this.#writer.write(chunk));
    this.#present = !wanted;
    return wanted;
  }

  /** Completes the push once every byte matched the digest; its
   * descriptor (the same on every later call). */
  finish() {
    this.#finished ??= descriptor(call(() => this.#writer.finish()));
    return this.#finished;
  }

  /** A Node `Writable` over this writer: what it is piped is pushed (read
   * to its end, sent only while the registry wants it), and it finishes
   * the push when it ends; `finish()` then returns the descriptor.
   * `await pipeline(fs.createReadStream(file), writer.stream())`. */
  stream() {
    return new Writable({
      write: (chunk, _encoding, done) => {
        try {
          this.write(chunk);
          done();
        } catch (e) {
          done(e);
        }
      },
      final: (done) => {
        try {
          this.finish();
          done();
        } catch (e) {
          done(e);
        }
      },
    });
  }
}

/** A registry client: one cache and one set of tokens for all its calls. */
export class Client {
  #client;

  /**
   * @param {object} [options]
   * @param {string[]} [options.insecureRegistries] hosts spoken to over plain HTTP
   * @param {Object<string, object>} [options.credentials] by registry host:
   *   `{username, password}`, `{token}` or `{identityToken}`
   * @param {string} [options.userAgent]
   * @param {boolean} [options.cache] keep what was looked up (default true)
   * @param {number} [options.concurrency] requests at once (0: the default)
   * @param {number} [options.retryDeadlineSecs] give up retrying after (0: the default)
   * @param {string} [options.dockerHubProxy] a read-through mirror for Docker Hub
   * @param {number} [options.requestTimeoutSecs] a request's limit to connect,
   *   answer, or send the next bytes (0: the shim's own)
   * @param {Object<string, object>} [options.uploads] by registry host (or
   *   `*`): `{chunkSize, monolithicUpTo}` in bytes; blobs above
   *   `monolithicUpTo` (default 128 MiB) go in PATCH chunks of `chunkSize`
   *   (default 32 MiB) that resume where a broken connection left them
   */
  constructor(options = {}) {
    const config = clientConfig(options);
    this.#client = new registry.Client(config);
  }

  /**
   * Looks a reference up: a `Found`, or `null` when it does not exist.
   * @param {string|object} ref
   * @param {{head?: boolean, type?: 'manifest'|'blob'}} [options]
   */
  lookup(ref, { head = false, type = 'manifest' } = {}) {
    const reader = call(() => this.#client.lookup(asRef(ref), { kind: type, head }));
    return reader ? new Found(reader) : null;
  }

  /** The manifest or index at `ref` as a plain object (as `ocirelay lookup
   * --type manifest` prints it), or `null`. */
  manifest(ref) {
    const json = call(() => this.#client.manifestJson(asRef(ref)));
    return json === undefined ? null : JSON.parse(json);
  }

  /** Whatever `ref` points at as an index (as `ocirelay index` prints it),
   * a plain object, or `null` when it does not exist. */
  synthesizeIndex(ref) {
    const json = call(() => this.#client.synthesizeIndexJson(asRef(ref)));
    return json === undefined ? null : JSON.parse(json);
  }

  /**
   * The tags of repository `repo` (every page of the registry's list, in
   * its order), or `null` when the repository does not exist.
   * @param {string|object} repo e.g. `registry.example/team/app`
   * @param {{pageSize?: number, after?: string}} [options] tags asked per
   *   page; only the tags after this one
   */
  listTags(repo, { pageSize, after } = {}) {
    const options = { pageSize, last: after, allPages: true };
    const list = call(() => this.#client.listTags(asRef(repo), options));
    return list === undefined ? null : list.tags;
  }

  /**
   * The referrers of `subject` (signatures, SBOMs, attestations: the
   * manifests whose `subject` names it), from the registry's referrers API,
   * else from the fallback tag registries without it keep; `null` when the
   * subject's tag does not exist.
   * @param {string|object} subject a reference (a tag is resolved first)
   * @param {{artifactType?: string}} [options] only referrers of this type
   * @returns {{manifests: object[], index: object, source: string, holds?: string} | null}
   */
  listReferrers(subject, { artifactType } = {}) {
    return referrers(call(() => this.#client.listReferrers(asRef(subject), artifactType)));
  }

  /** Copies an image or index with every child; the pushed descriptor.
   * With `{referrers: true}`, then what refers to it (see `copyReferrers`).
   * With `{platforms: ['linux/amd64', …]}`, an index cut down to those
   * platforms (and their attestations), pushed as an index of its own
   * digest, the same on every run (not with `referrers`). */
  copy(src, dst, { referrers = false, platforms } = {}) {
    if (platforms !== undefined) {
      if (referrers) throw copyOptionsError();
      return descriptor(call(() => this.#client.copyPlatforms(asRef(src), asRef(dst), [...platforms])));
    }
    const copied = descriptor(call(() => this.#client.copyManifest(asRef(src), asRef(dst), { byDigest: [] })));
    if (referrers) this.copyReferrers(src, dst);
    return copied;
  }

  /**
   * Copies what refers to `src` (signatures, SBOMs, attestations; for an
   * index, to each child too), recursively, into `dst`'s repository,
   * digests unchanged, and cosign's `.sig`/`.att`/`.sbom` tags; `src` must
   * be at `dst` already. `{copied, tags, skipped}`: descriptors, tags, and
   * why listed referrers were not copied.
   */
  copyReferrers(src, dst) {
    return copiedReferrers(call(() => this.#client.copyReferrers(asRef(src), asRef(dst))));
  }

  /** Copies one blob (`src` by digest) into `dst`'s repository. */
  copyBlob(src, dst) {
    return descriptor(call(() => this.#client.copyBlob(asRef(src), asRef(dst))));
  }

  /** Pushes a manifest (bytes or a string of JSON) of `mediaType` to `ref`. */
  ensureManifest(ref, manifest, mediaType) {
    const bytes = typeof manifest === 'string' ? Buffer.from(manifest) : manifest;
    return descriptor(call(() => this.#client.ensureManifest(asRef(ref), bytes, mediaType, { byDigest: [] })));
  }

  /**
   * Runs the deploy tool's input (JSON objects as a string, or an array of
   * objects), as `ocirelay deploy` does: the whole input is checked first
   * (an `invalid-input` OcirelayError), then each ref made so. One result
   * per ref, in input order: `{reference, outcome}` with `outcome` one of
   * `deployed` (and `descriptor`), `up-to-date` or `would-change` (dry run;
   * `input`, as the original prints it), `failed` (and `error`),
   * `not-started`.
   * @param {string|object[]} input
   * @param {{dryRun?: boolean, parallel?: boolean, progress?: boolean, referrers?: boolean}} [options]
   *   `referrers`: every manifest copied brings what refers to it
   */
  deploy(input, { dryRun = false, parallel = false, progress = false, referrers = false } = {}) {
    const options = { dryRun, parallel, progress, referrers };
    return deployResults(call(() => this.#client.deploy(deployText(input), options)));
  }

  /**
   * Syncs what a sync config names, as `ocirelay sync` does: skopeo sync's
   * source file (an object, or its JSON), plus ocirelay's keys under
   * `ocirelay`. Each image is HEADed at both ends and copied when it
   * changed; one that fails is a result and the rest go on. One result per
   * image: `{source, destination, outcome: 'copied' | 'unchanged' |
   * 'would-copy' | 'failed', descriptor | error, referrers?}`.
   * @param {string|object} config
   * @param {{destination?: string, shard?: [number, number], dryRun?: boolean, progress?: boolean}} [options]
   *   `progress`: a line on stderr as each image ends
   */
  sync(config, { destination, shard, dryRun = false, progress = false } = {}) {
    const options = { destination, shard, dryRun, progress, progressJson: false };
    return syncResults(call(() => this.#client.sync(syncText(config), options)));
  }

  /** Pushes small content as blob `ref` (by digest). */
  ensureBlob(ref, content) {
    return descriptor(call(() => this.#client.ensureBlob(asRef(ref), content)));
  }

  /** Starts pushing blob `ref` (by digest) of `size` bytes through a writer. */
  pushBlob(ref, size) {
    return new BlobWriter(call(() => this.#client.pushBlob(asRef(ref), BigInt(size))));
  }
}
