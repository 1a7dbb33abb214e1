// Type-checked, never run (`tsc -p test`): every call of the package with
// the types index.d.ts gives it, and what must not type-check. The
// README's example is checked beside it (readme.generated.ts, written by
// scripts/readme-example.js).

import { pipeline } from 'node:stream/promises';
import { createReadStream } from 'node:fs';
import {
  Client,
  ErrorKinds,
  OcirelayError,
  parseRef,
  type BlobWriter,
  type DeployResult,
  type Descriptor,
  type ErrorKind,
  type Found,
  type Json,
  type Reference,
  type Referrers,
} from 'ocirelay';

export async function everyCall(file: string): Promise<void> {
  const client = new Client({
    insecureRegistries: ['registry.internal:5000'],
    credentials: {
      'r.example': { username: 'u', password: 'p' },
      'q.example': { token: 't' },
      'i.example': { identityToken: 'i' },
    },
    userAgent: 'types',
    cache: false,
    concurrency: 4,
    retryDeadlineSecs: 2,
    dockerHubProxy: 'mirror.example',
    requestTimeoutSecs: 30,
  });
  const ref: Reference = parseRef('hello-world');
  const found: Found | null = client.lookup(ref, { head: true, type: 'blob' });
  if (found) {
    const d: Descriptor = found.descriptor;
    const size: number | bigint = d.size;
    const json: string = found.descriptorJson();
    const chunk: Uint8Array = found.read(1024);
    const all: Uint8Array = found.bytes();
    for (const piece of found) piece.byteLength;
    await pipeline(found.stream(), process.stdout);
    void [size, json, chunk, all];
  }
  const manifest: Json | null = client.manifest('r.example/app:v1');
  const index: Json | null = client.synthesizeIndex(ref);
  const tags: string[] | null = client.listTags('r.example/app', { pageSize: 100, after: 'v1' });
  const referrers: Referrers | null = client.listReferrers('r.example/app:v1', { artifactType: 'application/spdx+json' });
  if (referrers && referrers.source === 'not-an-index') void referrers.holds;
  const copied: Descriptor = client.copy('r.example/app:v1', 'q.example/app:v1', { referrers: true });
  const { copied: refs, tags: cosignTags, skipped } = client.copyReferrers('r.example/app:v1', 'q.example/app:v1');
  void [refs.length, cosignTags.length, skipped.length];
  client.copyBlob('r.example/app@sha256:00', 'q.example/app');
  client.ensureManifest('r.example/app:v2', '{}', 'application/vnd.oci.image.manifest.v1+json');
  client.ensureManifest('r.example/app:v3', new Uint8Array(2), 'application/vnd.oci.image.index.v1+json');
  client.ensureBlob('r.example/app@sha256:00', new Uint8Array([1]));
  const writer: BlobWriter = client.pushBlob('r.example/app@sha256:00', 3);
  if (writer.write(new Uint8Array(3))) writer.write(new Uint8Array(0));
  const pushed: Descriptor = writer.finish();
  await pipeline(createReadStream(file), client.pushBlob('r.example/app@sha256:00', 3n).stream());
  const results: DeployResult[] = client.deploy(
    [
      { type: 'manifest', refs: ['q.example/app:v1'], lookup: { '': 'r.example/app:v1' }, referrers: true },
      { type: 'blob', refs: ['q.example/app'], data: 'aGVsbG8=' },
    ],
    { dryRun: true, parallel: true, progress: false, referrers: true },
  );
  client.deploy('{"type": "manifest", "refs": ["q.example/app:v1"]}');
  for (const r of results) {
    if (r.outcome === 'failed' && r.error) {
      const kind: ErrorKind = r.error.kind;
      void kind;
    }
  }
  try {
    client.lookup('r.example/app:v1');
  } catch (e) {
    if (e instanceof OcirelayError && e.kind === 'rate-limited') {
      const wait: number | undefined = e.retryAfterSecs;
      void wait;
    }
  }
  const kinds: readonly ErrorKind[] = ErrorKinds;
  void [manifest, index, tags, copied, pushed, kinds];

  // @ts-expect-error deploy is the client's, not a writer's
  writer.deploy('{}');
  // @ts-expect-error a lookup's type is manifest or blob
  client.lookup(ref, { type: 'index' });
  // @ts-expect-error a deploy input names its type
  client.deploy([{ refs: ['q.example/app:v1'] }]);
}
