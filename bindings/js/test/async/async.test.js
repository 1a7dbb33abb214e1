// The async API (ocirelay/async) against real registries on loopback, on an
// engine with JSPI: Node 22+ with --experimental-wasm-jspi, or Deno
// (`deno test`). Node 20 runs the blocking API's tests only.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client, OcirelayError, parseRef, supported } from 'ocirelay/async';
import { sha256, startRegistry, stopRegistries } from '../registry.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let a;
let b;
let client;

/** A one-layer image of `layer` (bytes) pushed to `host/repo:tag`. */
async function pushImage(host, repo, tag, layer) {
  const config = new TextEncoder().encode('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const writer = await client.pushBlob(`${host}/${repo}@${sha256(layer)}`, layer.length);
  const body = new Blob([layer]).stream();
  await body.pipeTo(writer.stream());
  assert.equal((await writer.finish()).digest, sha256(layer));
  await client.ensureBlob(`${host}/${repo}@${sha256(config)}`, config);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
  });
  return client.ensureManifest(`${host}/${repo}:${tag}`, manifest, OCI_MANIFEST);
}

before(async () => {
  a = await startRegistry();
  b = await startRegistry();
  client = new Client();
});

after(() => stopRegistries());

test('the engine has JSPI', () => {
  assert.equal(supported, true);
});

test('calls return promises; a found blob streams and matches its digest', async () => {
  const layer = new Uint8Array(3 << 20).map((_, i) => (i * 7) % 251);
  const image = await pushImage(a, 'app', 'v1', layer);
  assert.deepEqual(await parseRef('hello-world'), {
    host: 'docker.io', repository: 'library/hello-world', tag: undefined, digest: undefined,
  });
  const found = await client.lookup(`${a}/app:v1`);
  assert.equal(found.descriptor.digest, image.digest);
  assert.equal(sha256(await found.bytes()), image.digest);
  const blob = await client.lookup(`${a}/app@${sha256(layer)}`, { type: 'blob' });
  const through = new Uint8Array(await new Response(blob.stream()).arrayBuffer());
  assert.equal(sha256(through), sha256(layer));
  assert.deepEqual(await client.listTags(`${a}/app`), ['v1']);
  assert.equal(await client.lookup(`${a}/app:nope`), null);
});

test('copies and deploys across registries', async () => {
  const image = await pushImage(a, 'copied', 'v1', new TextEncoder().encode('to copy'));
  const copied = await client.copy(`${a}/copied:v1`, `${b}/copied:v1`);
  assert.equal(copied.digest, image.digest);
  const input = [{ type: 'manifest', refs: [`${b}/copied:v2`], lookup: { '': `${a}/copied:v1` } }];
  const results = await client.deploy(input);
  assert.deepEqual(results.map((r) => r.outcome), ['deployed']);
  assert.equal(results[0].descriptor.digest, image.digest);
  const again = await client.deploy(input, { dryRun: true });
  assert.deepEqual(again.map((r) => r.outcome), ['up-to-date']);
  const manifest = await client.manifest(`${b}/copied:v1`);
  assert.equal(manifest.layers[0].size, 7);
  // An image (no index to cut) is copied as it is, with platforms too.
  const kept = await client.copy(`${a}/copied:v1`, `${b}/copied:amd64`, { platforms: ['linux/amd64'] });
  assert.equal(kept.digest, image.digest);
  await assert.rejects(client.copy(`${a}/copied:v1`, `${b}/copied:x`, { platforms: ['linux'] }), (e) => e.kind === 'invalid-input');
});

test('sync resolves to one result per image', async () => {
  await pushImage(a, 'tosync', 'v1', new TextEncoder().encode('to sync'));
  const results = await client.sync({ [a]: { images: { tosync: ['v1'] } } }, { destination: `${b}/synced` });
  assert.deepEqual(results.map((r) => [r.destination, r.outcome]), [[`${b}/synced/tosync:v1`, 'copied']]);
});

test('errors reject as OcirelayErrors naming what was wrong', async () => {
  await assert.rejects(client.lookup('Not A Ref'), (e) => e instanceof OcirelayError && e.kind === 'invalid-reference');
  const nowhere = new Client({ retryDeadlineSecs: 1 });
  await assert.rejects(nowhere.lookup('127.0.0.1:1/none:v1'), (e) => e instanceof OcirelayError && e.kind === 'transport');
});

test('many calls at once all answer, and the thread runs on meanwhile', async () => {
  const image = await pushImage(a, 'many', 'v1', new Uint8Array(8 << 20).fill(9));
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const found = await Promise.all(Array.from({ length: 10 }, () => client.lookup(`${a}/many:v1`)));
  const blob = await client.lookup(`${a}/many@${sha256(new Uint8Array(8 << 20).fill(9))}`, { type: 'blob' });
  assert.equal((await blob.bytes()).length, 8 << 20);
  clearInterval(timer);
  for (const f of found) assert.equal(f.descriptor.digest, image.digest);
  assert.ok(ticks > 0, 'the event loop ran while the registry answered');
});
