// Types of the ocirelay package (index.js). Calls block the calling thread
// until the registry has answered: in a server, call them from a worker,
// or use ocirelay/async (async.d.ts) where the engine has JSPI.

/** A reference, parsed with Docker Hub's rules. */
export interface Reference {
  host: string;
  repository: string;
  tag?: string;
  digest?: string;
}

export interface Platform {
  architecture: string;
  os: string;
  osVersion?: string;
  osFeatures: string[];
  variant?: string;
}

/** An OCI descriptor; `size` is a number (a bigint only past 2^53). */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number | bigint;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

/** What went wrong, as the component names it. */
export type ErrorKind =
  | 'invalid-reference'
  | 'invalid-input'
  | 'not-found'
  | 'authentication'
  | 'registry'
  | 'integrity'
  | 'protocol'
  | 'transport'
  | 'timeout'
  | 'rate-limited'
  | 'internal';

export declare const ErrorKinds: readonly ErrorKind[];

/** Every error ocirelay throws. */
export declare class OcirelayError extends Error {
  readonly kind: ErrorKind;
  /** For `rate-limited`: the wait the registry asked for, in seconds. */
  readonly retryAfterSecs?: number;
}

/** One object of the deploy tool's input (see `ocirelay deploy`). */
export interface DeployInput {
  /** What it pushes. */
  type: 'manifest' | 'blob';
  /** Where it goes: references, tags or digests (all digests the same). */
  refs: string[];
  /** Where the object and its children are found: by digest, `""` the fallback. */
  lookup?: Record<string, string>;
  /** What to push instead of copying: JSON (a manifest), or base64 text. */
  data?: unknown;
  /** A copied manifest (a `lookup`, no `data`) brings what refers to it. */
  referrers?: boolean;
}

/** How one ref of a deploy ended. */
export interface DeployResult {
  reference: string;
  outcome: 'deployed' | 'up-to-date' | 'would-change' | 'failed' | 'not-started';
  /** For `deployed`. */
  descriptor?: Descriptor;
  /** For `would-change`: the ref's input alone, as the original prints it. */
  input?: string;
  /** For `failed`. */
  error?: OcirelayError;
}

export type Credential =
  | { username: string; password: string }
  | { token: string }
  | { identityToken: string };

export interface ClientOptions {
  /** Hosts spoken to over plain HTTP (localhost and 127.0.0.1 always are). */
  insecureRegistries?: string[];
  /** Credentials by registry host. */
  credentials?: Record<string, Credential>;
  userAgent?: string;
  /** Keep what was looked up (default true). */
  cache?: boolean;
  /** Requests at once (0: the default). */
  concurrency?: number;
  /** Give up retrying after this many seconds (0: the default). */
  retryDeadlineSecs?: number;
  /** A read-through mirror for Docker Hub. */
  dockerHubProxy?: string;
  /** A request's limit, in seconds, to connect, answer, or send its next bytes (0: the shim's own). */
  requestTimeoutSecs?: number;
  /**
   * How blobs go up, by registry host (or `*`): above `monolithicUpTo`
   * bytes (default 128 MiB) in PATCH chunks of `chunkSize` (default 32 MiB)
   * that resume where a broken connection left them.
   */
  uploads?: Record<string, { chunkSize?: number | bigint; monolithicUpTo?: number | bigint }>;
}

export declare function parseRef(text: string): Reference;

/** A found object: its descriptor, and its content checked as it is read. */
export declare class Found {
  readonly descriptor: Descriptor;
  /** The descriptor as JSON, exactly as `ocirelay lookup --head` prints it. */
  descriptorJson(): string;
  /** The next chunk; empty at the end, where a mismatch throws. */
  read(max?: number): Uint8Array;
  /** The whole content, checked against its digest. */
  bytes(): Uint8Array;
  /** The content a chunk at a time; a mismatch throws at the end. */
  [Symbol.iterator](): Iterator<Uint8Array>;
  /** The content as a Node `Readable`; a mismatch is the stream's error. */
  stream(): import('node:stream').Readable;
}

/** A blob pushed a chunk at a time. */
export declare class BlobWriter {
  /** `false` when the registry has the blob already: stop and `finish`. */
  write(chunk: Uint8Array): boolean;
  /** Completes the push; its descriptor (the same on every later call). */
  finish(): Descriptor;
  /** A Node `Writable` that pushes what it is piped and finishes at its end. */
  stream(): import('node:stream').Writable;
}

/** The referrers of a manifest (`Client.listReferrers`). */
export interface Referrers {
  /** Their descriptors, with `artifactType` and `annotations`. */
  manifests: Descriptor[];
  /** The same list as the referrers API gives it: an image index. */
  index: Json;
  /** Where it came from: the registry's API, the fallback tag, neither, or a fallback tag that holds no index. */
  source: 'api' | 'fallback-tag' | 'nothing' | 'not-an-index';
  /** With `not-an-index`: what the fallback tag holds. */
  holds?: string;
}

/** An OCI index or manifest as plain JSON. */
export type Json = { [key: string]: unknown };

/** How one image of a sync ended (`Client.sync`). */
export interface SyncResult {
  /** The source, with its tag. */
  source: string;
  /** Where it went (`null` for a repository whose tags could not be listed). */
  destination: string | null;
  outcome: 'copied' | 'unchanged' | 'would-copy' | 'failed';
  /** Unless it failed. */
  descriptor?: Descriptor;
  /** When it failed. */
  error?: OcirelayError;
  /** Requests sent for it (retries and token requests included). */
  requests: number;
  /** The bytes those requests carried (manifests and blobs pushed). */
  bytesSent: number;
  /** What refers to it, copied (when the config asks for referrers). */
  referrers?: { copied: Descriptor[]; tags: string[]; skipped: string[] };
}

/** How `Client.sync` runs. */
export interface SyncOptions {
  /** `host[/prefix]`; else the config's `ocirelay.destination`. */
  destination?: string;
  /** Only the repositories of shard K of N: `[K, N]`, K from 0. */
  shard?: [number, number];
  /** Only look (HEADs). */
  dryRun?: boolean;
  /** A line on stderr as each image ends. */
  progress?: boolean;
}

export declare class Client {
  constructor(options?: ClientOptions);
  lookup(ref: string | Reference, options?: { head?: boolean; type?: 'manifest' | 'blob' }): Found | null;
  manifest(ref: string | Reference): Json | null;
  synthesizeIndex(ref: string | Reference): Json | null;
  /** Every tag of a repository (all pages), or `null` when it does not exist. */
  listTags(repo: string | Reference, options?: { pageSize?: number; after?: string }): string[] | null;
  /** The referrers of `subject`, or `null` when its tag does not exist. */
  listReferrers(subject: string | Reference, options?: { artifactType?: string }): Referrers | null;
  /** With `referrers`, then `copyReferrers`; with `platforms`
   * (`os/arch[/variant]`), an index cut down to those, of its own digest. */
  copy(
    src: string | Reference,
    dst: string | Reference,
    options?: { referrers?: boolean; platforms?: string[] },
  ): Descriptor;
  /** Copies what refers to `src` into `dst`'s repository (`src` must be there). */
  copyReferrers(
    src: string | Reference,
    dst: string | Reference,
  ): { copied: Descriptor[]; tags: string[]; skipped: string[] };
  copyBlob(src: string | Reference, dst: string | Reference): Descriptor;
  ensureManifest(ref: string | Reference, manifest: Uint8Array | string, mediaType: string): Descriptor;
  ensureBlob(ref: string | Reference, content: Uint8Array): Descriptor;
  pushBlob(ref: string | Reference, size: number | bigint): BlobWriter;
  /** Syncs what a sync config names (see `ocirelay sync`): one result per image. */
  sync(config: string | Json, options?: SyncOptions): SyncResult[];
  /** Runs the deploy tool's input (see `ocirelay deploy`): one result per ref. */
  deploy(
    input: string | DeployInput[],
    options?: { dryRun?: boolean; parallel?: boolean; progress?: boolean; referrers?: boolean },
  ): DeployResult[];
}
