// ocirelay with promises (`import { Client } from 'ocirelay/async'`): the
// same component, transpiled for JSPI (dist/async/), over preview2-shim's
// browser build, whose I/O is `fetch` and promises. Where the engine has
// JSPI (`WebAssembly.Suspending`: Deno, workerd, Chrome; Node 22 and 24
// with --experimental-wasm-jspi), a call suspends the component while the
// registry answers and the thread goes on. Node 20 has no JSPI: its
// `ocirelay` (index.js) blocks instead.
//
// One component instance serves every client, one call at a time (a call
// cannot enter it while another is suspended in it); inside a call, the
// component runs its own requests side by side (an index's children, a
// copy's blobs).

import { readFile } from 'node:fs/promises';

import { instantiate } from './dist/async/ocirelay.js';
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

/** Whether this engine can run the async API (it has JSPI). */
export const supported = typeof WebAssembly.Suspending === 'function';

let component;

// The component, instantiated on first use. preview2-shim resolves to its
// Node build under Node; the browser build beside it is the one whose
// blocking calls return promises.
function registry() {
  component ??= (async () => {
    if (!supported) {
      throw new Error(
        'ocirelay/async needs JSPI (WebAssembly.Suspending): Deno, workerd, or Node 22+ ' +
          'with --experimental-wasm-jspi; on Node 20 use `ocirelay` (its calls block)',
      );
    }
    const shim = new URL('../browser/', import.meta.resolve('@bytecodealliance/preview2-shim'));
    const [cli, clocks, http, io, random] = await Promise.all(
      ['cli', 'clocks', 'http', 'io', 'random'].map((m) => import(new URL(`${m}.js`, shim))),
    );
    const imports = {
      'wasi:cli/stderr': cli.stderr,
      'wasi:cli/stdin': cli.stdin,
      'wasi:cli/stdout': cli.stdout,
      'wasi:clocks/monotonic-clock': clocks.monotonicClock,
      'wasi:http/outgoing-handler': http.outgoingHandler,
      'wasi:http/types': http.types,
      'wasi:io/error': io.error,
      'wasi:io/poll': io.poll,
      'wasi:io/streams': io.streams,
      'wasi:random/random': random.random,
    };
    const core = (name) =>
      readFile(new URL(`./dist/async/${name}`, import.meta.url)).then((b) => WebAssembly.compile(b));
    return (await instantiate(core, imports)).registry;
  })();
  return component;
}

// Calls into the component, one at a time, their errors as OcirelayErrors.
let queue = Promise.resolve();
function call(fn) {
  const run = queue.then(() => registry().then(fn));
  queue = run.catch(() => {});
  return run.catch((e) => {
    throw rethrown(e);
  });
}

/** A reference string parsed with Docker Hub's rules. */
export function parseRef(text) {
  return call((r) => r.parseRef(text));
}

const asRef = async (ref) => (typeof ref === 'string' ? parseRef(ref) : ref);

/** A found object: its descriptor, and its content read in chunks. */
export class Found {
  #reader;

  constructor(reader, described) {
    this.#reader = reader;
    /** What was found (sizes as numbers). */
    this.descriptor = described;
  }

  /** The descriptor as JSON, exactly as `ocirelay lookup --head` prints it. */
  descriptorJson() {
    return call(() => this.#reader.descriptorJson());
  }

  /** The next chunk (at most `max` bytes); empty at the end, where a
   * content that does not match its digest rejects. */
  read(max = 1 << 20) {
    return call(() => this.#reader.read(BigInt(max)));
  }

  /** The whole content, checked against its digest. */
  async bytes() {
    const chunks = [];
    for await (const chunk of this) chunks.push(chunk);
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const chunk of chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }

  /** The content a chunk at a time (`for await (const chunk of found)`); a
   * mismatch rejects at the end. */
  async *[Symbol.asyncIterator]() {
    for (;;) {
      const chunk = await this.read();
      if (chunk.length === 0) return;
      yield chunk;
    }
  }

  /** The content as a web `ReadableStream` (a `Response` body, `pipeTo`);
   * a mismatch is the stream's error. */
  stream() {
    const chunks = this[Symbol.asyncIterator]();
    return new ReadableStream({
      async pull(controller) {
        const { done, value } = await chunks.next();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel() {
        return chunks.return();
      },
    });
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
  async write(chunk) {
    if (this.#present) return false;
    const wanted = await call(() => this.#writer.write(chunk));
    this.#present = !wanted;
    return wanted;
  }

  /** Completes the push once every byte matched the digest; its
   * descriptor (the same on every later call). */
  finish() {
    this.#finished ??= call(() => this.#writer.finish()).then(descriptor);
    return this.#finished;
  }

  /** A web `WritableStream` over this writer: what it is given is pushed,
   * and closing it finishes the push (`finish()` then gives the
   * descriptor). `await body.pipeTo(writer.stream())`. */
  stream() {
    return new WritableStream({
      write: (chunk) => this.write(chunk),
      close: () => this.finish(),
    });
  }
}

/** A registry client: one cache and one set of tokens for all its calls.
 * Its options are `ocirelay`'s (see index.d.ts). */
export class Client {
  #client;

  constructor(options = {}) {
    const config = clientConfig(options);
    this.#client = call((r) => new r.Client(config));
    // Nothing is sent until a call: a refused setting surfaces there.
    this.#client.catch(() => {});
  }

  // Runs `fn(client, ...refs)` in the component, references parsed first.
  async #with(refs, fn) {
    const parsed = await Promise.all(refs.map(asRef));
    const client = await this.#client;
    return call(() => fn(client, ...parsed));
  }

  /** Looks a reference up: a `Found`, or `null` when it does not exist. */
  async lookup(ref, { head = false, type = 'manifest' } = {}) {
    const reader = await this.#with([ref], (c, r) => c.lookup(r, { kind: type, head }));
    if (!reader) return null;
    return new Found(reader, descriptor(await call(() => reader.descriptor())));
  }

  /** The manifest or index at `ref` as a plain object, or `null`. */
  async manifest(ref) {
    const json = await this.#with([ref], (c, r) => c.manifestJson(r));
    return json === undefined ? null : JSON.parse(json);
  }

  /** Whatever `ref` points at as an index (as `ocirelay index` prints it),
   * or `null` when it does not exist. */
  async synthesizeIndex(ref) {
    const json = await this.#with([ref], (c, r) => c.synthesizeIndexJson(r));
    return json === undefined ? null : JSON.parse(json);
  }

  /** The tags of repository `repo`, or `null` when it does not exist. */
  async listTags(repo, { pageSize, after } = {}) {
    const options = { pageSize, last: after, allPages: true };
    const list = await this.#with([repo], (c, r) => c.listTags(r, options));
    return list === undefined ? null : list.tags;
  }

  /** The referrers of `subject` (see `ocirelay`'s `listReferrers`). */
  async listReferrers(subject, { artifactType } = {}) {
    return referrers(await this.#with([subject], (c, r) => c.listReferrers(r, artifactType)));
  }

  /** Copies an image or index with every child; the pushed descriptor.
   * With `{referrers: true}`, then what refers to it. */
  async copy(src, dst, { referrers: withReferrers = false, platforms } = {}) {
    if (platforms !== undefined) {
      if (withReferrers) throw copyOptionsError();
      return descriptor(await this.#with([src, dst], (c, s, d) => c.copyPlatforms(s, d, [...platforms])));
    }
    const copied = await this.#with([src, dst], (c, s, d) => c.copyManifest(s, d, { byDigest: [] }));
    if (withReferrers) await this.copyReferrers(src, dst);
    return descriptor(copied);
  }

  /** Copies what refers to `src` into `dst`'s repository (see `ocirelay`). */
  async copyReferrers(src, dst) {
    return copiedReferrers(await this.#with([src, dst], (c, s, d) => c.copyReferrers(s, d)));
  }

  /** Copies one blob (`src` by digest) into `dst`'s repository. */
  async copyBlob(src, dst) {
    return descriptor(await this.#with([src, dst], (c, s, d) => c.copyBlob(s, d)));
  }

  /** Pushes a manifest (bytes or a string of JSON) of `mediaType` to `ref`. */
  async ensureManifest(ref, manifest, mediaType) {
    const bytes = typeof manifest === 'string' ? new TextEncoder().encode(manifest) : manifest;
    const children = { byDigest: [] };
    return descriptor(
      await this.#with([ref], (c, r) => c.ensureManifest(r, bytes, mediaType, children)),
    );
  }

  /** Runs the deploy tool's input, as `ocirelay`'s `deploy` does. */
  async deploy(input, { dryRun = false, parallel = false, progress = false, referrers = false } = {}) {
    const options = { dryRun, parallel, progress, referrers };
    return deployResults(await this.#with([], (c) => c.deploy(deployText(input), options)));
  }

  /** Syncs what a sync config names (see `ocirelay`'s `sync`). */
  async sync(config, { destination, shard, dryRun = false, progress = false } = {}) {
    const options = { destination, shard, dryRun, progress, progressJson: false };
    return syncResults(await this.#with([], (c) => c.sync(syncText(config), options)));
  }

  /** Pushes small content as blob `ref` (by digest). */
  async ensureBlob(ref, content) {
    return descriptor(await this.#with([ref], (c, r) => c.ensureBlob(r, content)));
  }

  /** Starts pushing blob `ref` (by digest) of `size` bytes through a writer. */
  async pushBlob(ref, size) {
    return new BlobWriter(await this.#with([ref], (c, r) => c.pushBlob(r, BigInt(size))));
  }
}
