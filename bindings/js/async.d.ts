// Types of ocirelay/async (async.js): the calls of `ocirelay` returning
// promises, on engines with JSPI (Deno, workerd, Node 22+ with
// --experimental-wasm-jspi).

import type {
  ClientOptions,
  DeployInput,
  DeployResult,
  Descriptor,
  Json,
  Reference,
  Referrers,
  SyncOptions,
  SyncResult,
} from './index.js';

export type {
  ClientOptions,
  Credential,
  DeployInput,
  DeployResult,
  Descriptor,
  ErrorKind,
  Json,
  Platform,
  Reference,
  Referrers,
  SyncOptions,
  SyncResult,
} from './index.js';
export { ErrorKinds, OcirelayError } from './index.js';

/** Whether this engine can run the async API (it has JSPI). */
export declare const supported: boolean;

export declare function parseRef(text: string): Promise<Reference>;

/** A found object: its descriptor, and its content checked as it is read. */
export declare class Found {
  readonly descriptor: Descriptor;
  /** The descriptor as JSON, exactly as `ocirelay lookup --head` prints it. */
  descriptorJson(): Promise<string>;
  /** The next chunk; empty at the end, where a mismatch rejects. */
  read(max?: number): Promise<Uint8Array>;
  /** The whole content, checked against its digest. */
  bytes(): Promise<Uint8Array>;
  /** The content a chunk at a time; a mismatch rejects at the end. */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array>;
  /** The content as a web `ReadableStream`; a mismatch is its error. */
  stream(): ReadableStream<Uint8Array>;
}

/** A blob pushed a chunk at a time. */
export declare class BlobWriter {
  /** `false` when the registry has the blob already: stop and `finish`. */
  write(chunk: Uint8Array): Promise<boolean>;
  /** Completes the push; its descriptor (the same on every later call). */
  finish(): Promise<Descriptor>;
  /** A web `WritableStream` that pushes what it is given and finishes when closed. */
  stream(): WritableStream<Uint8Array>;
}

export declare class Client {
  constructor(options?: ClientOptions);
  lookup(
    ref: string | Reference,
    options?: { head?: boolean; type?: 'manifest' | 'blob' },
  ): Promise<Found | null>;
  manifest(ref: string | Reference): Promise<Json | null>;
  synthesizeIndex(ref: string | Reference): Promise<Json | null>;
  listTags(
    repo: string | Reference,
    options?: { pageSize?: number; after?: string },
  ): Promise<string[] | null>;
  listReferrers(
    subject: string | Reference,
    options?: { artifactType?: string },
  ): Promise<Referrers | null>;
  copy(
    src: string | Reference,
    dst: string | Reference,
    options?: { referrers?: boolean; platforms?: string[] },
  ): Promise<Descriptor>;
  copyReferrers(
    src: string | Reference,
    dst: string | Reference,
  ): Promise<{ copied: Descriptor[]; tags: string[]; skipped: string[] }>;
  copyBlob(src: string | Reference, dst: string | Reference): Promise<Descriptor>;
  ensureManifest(
    ref: string | Reference,
    manifest: Uint8Array | string,
    mediaType: string,
  ): Promise<Descriptor>;
  ensureBlob(ref: string | Reference, content: Uint8Array): Promise<Descriptor>;
  pushBlob(ref: string | Reference, size: number | bigint): Promise<BlobWriter>;
  deploy(
    input: string | DeployInput[],
    options?: { dryRun?: boolean; parallel?: boolean; progress?: boolean; referrers?: boolean },
  ): Promise<DeployResult[]>;
  sync(config: string | Json, options?: SyncOptions): Promise<SyncResult[]>;
}
