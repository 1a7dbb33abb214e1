// The package against real registries on loopback (test/registry.js).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client, OcirelayError, parseRef } from 'ocirelay';
import { corruptBlob, sha256, startRegistry, stopRegistries } from './registry.js';

/** Pushes an image of one layer for `platform` to `host/repo`; its descriptor. */
function pushImage(client, host, repo, [os, architecture, variant], layerText) {
  const layer = Buffer.from(layerText);
  const configBytes = Buffer.from(JSON.stringify({ architecture, os, variant, rootfs: { type: 'layers', diff_ids: [] } }));
  for (const blob of [layer, configBytes]) {
    client.ensureBlob(`${host}/${repo}@${sha256(blob)}`, blob);
  }
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(configBytes), size: configBytes.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
  });
  const d = client.ensureManifest(`${host}/${repo}@${sha256(manifest)}`, manifest, 'application/vnd.oci.image.manifest.v1+json');
  return { ...d, platform: variant ? { os, architecture, variant } : { os, architecture } };
}

let a;
let b;
let index;

before(async () => {
  a = await startRegistry();
  b = await startRegistry();
  const client = new Client();
  const images = [
    pushImage(client, a, 'app', ['linux', 'amd64'], 'amd64 layer'),
    pushImage(client, a, 'app', ['linux', 'arm64', 'v8'], 'arm64 layer'),
  ];
  const indexJson = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: images.map(({ mediaType, digest, size, platform }) => ({ mediaType, digest, size, platform })),
  });
  index = client.ensureManifest(`${a}/app:v1`, indexJson, 'application/vnd.oci.image.index.v1+json');
  assert.equal(index.digest, sha256(indexJson));
});

after(stopRegistries);

test('references parse with Docker Hub rules, and bad ones name themselves', () => {
  assert.deepEqual(parseRef('hello-world:latest'), {
    host: 'docker.io',
    repository: 'library/hello-world',
    tag: 'latest',
    digest: undefined,
  });
  assert.throws(() => parseRef('Bad/Name'), (e) => e instanceof OcirelayError && e.kind === 'invalid-reference' && e.message.includes('Bad/Name'));
});

test('lookup by HEAD and GET: content read and checked against its digest', () => {
  const client = new Client();
  const head = client.lookup(`${a}/app:v1`, { head: true });
  assert.equal(head.descriptor.digest, index.digest);
  assert.equal(typeof head.descriptor.size, 'number');
  assert.ok(head.descriptorJson().startsWith('{\n\t"mediaType": '));

  const got = client.lookup(`${a}/app:v1`);
  assert.equal(sha256(got.bytes()), index.digest);

  const manifest = client.manifest(`${a}/app:v1`);
  const layer = client.manifest(`${a}/app@${manifest.manifests[0].digest}`).layers[0];
  const blob = client.lookup(`${a}/app@${layer.digest}`, { type: 'blob' });
  assert.equal(blob.bytes().toString(), 'amd64 layer');
});

test('synthesize-index of a multi-platform index gives plain objects', () => {
  const synthesized = new Client().synthesizeIndex(`${a}/app:v1`);
  assert.equal(synthesized.schemaVersion, 2);
  const platforms = synthesized.manifests.map((m) => `${m.platform.os}/${m.platform.architecture}`);
  assert.deepEqual(platforms, ['linux/amd64', 'linux/arm64']);
  assert.ok(synthesized.manifests.every((m) => typeof m.size === 'number'));
});

test('listTags gives every tag of a repository, or null for none', () => {
  const client = new Client();
  client.copy(`${a}/app:v1`, `${a}/app:v2`);
  assert.deepEqual(client.listTags(`${a}/app`).sort(), ['v1', 'v2']);
  assert.deepEqual(client.listTags(`${a}/app`, { pageSize: 1 }).sort(), ['v1', 'v2']);
  assert.equal(client.listTags(`${a}/nothing`), null);
});

test('copy across two registries keeps the digest', () => {
  const client = new Client();
  const pushed = client.copy(`${a}/app:v1`, `${b}/copied:v1`);
  assert.equal(pushed.digest, index.digest);
  assert.equal(client.lookup(`${b}/copied:v1`, { head: true }).descriptor.digest, index.digest);
});

test('a large layer goes up in chunks the component checks: whole, or never completed', () => {
  const big = Buffer.alloc(3 << 20, 7);
  big.write('a layer sent in chunks');
  const image = pushImage(new Client(), a, 'big', ['linux', 'amd64'], big);
  const source = `${a}/big@${image.digest}`;
  const digest = sha256(big);
  const chunked = { uploads: { '*': { chunkSize: 1 << 20, monolithicUpTo: 1 << 20 } } };
  new Client(chunked).copy(source, `${b}/big:v1`);
  const arrived = new Client().lookup(`${b}/big@${digest}`, { type: 'blob' });
  assert.equal(sha256(arrived.bytes()), digest);

  // Tampered with in the source's storage: the chunks go, the completion does not.
  corruptBlob(a, digest, (3 << 20) - 5);
  assert.throws(
    () => new Client(chunked).copy(source, `${b}/other:v1`),
    (e) => e instanceof OcirelayError && e.kind === 'integrity' && e.message.includes('not completed'),
  );
  assert.equal(new Client().lookup(`${b}/other@${digest}`, { type: 'blob', head: true }), null);
});

test('copy with platforms pushes an index of those alone, of its own digest, the same again', () => {
  const client = new Client();
  const cut = client.copy(`${a}/app:v1`, `${b}/arm:v1`, { platforms: ['linux/arm64'] });
  assert.notEqual(cut.digest, index.digest);
  const there = client.manifest(`${b}/arm:v1`);
  assert.deepEqual(there.manifests.map((m) => m.platform.architecture), ['arm64']);
  assert.equal(new Client().copy(`${a}/app:v1`, `${b}/arm:v1`, { platforms: ['linux/arm64'] }).digest, cut.digest);
  for (const options of [{ platforms: ['linux'] }, { platforms: ['linux/arm64'], referrers: true }]) {
    assert.throws(() => client.copy(`${a}/app:v1`, `${b}/arm:v1`, options), (e) => e instanceof OcirelayError && e.kind === 'invalid-input');
  }
});

test('a registry that cannot be reached is a transport error', () => {
  assert.throws(
    () => new Client().lookup('127.0.0.1:1/app:v1', { head: true }),
    (e) => e instanceof OcirelayError && e.kind === 'transport' && e.message.includes('127.0.0.1:1'),
  );
});

test('what does not exist is null to look up, and not-found to copy', () => {
  const client = new Client();
  assert.equal(client.lookup(`${a}/app:missing`), null);
  assert.equal(client.synthesizeIndex(`${a}/nothing:here`), null);
  assert.throws(
    () => client.copy(`${a}/app:missing`, `${b}/app:missing`),
    (e) => e instanceof OcirelayError && e.kind === 'not-found',
  );
});

test('deploy runs the deploy tool input: pushed, then up to date, and bad input refused whole', () => {
  const client = new Client();
  const input = [
    { type: 'blob', refs: [`${b}/deployed`], data: Buffer.from('deployed from js').toString('base64') },
    { type: 'manifest', refs: [`${b}/deployed:v1`, `${b}/deployed:v2`], lookup: { '': `${a}/app:v1` } },
  ];
  const results = client.deploy(input, { parallel: true });
  const said = JSON.stringify(results, (_, v) => {
    if (typeof v === 'bigint') return Number(v);
    return v instanceof Error ? { kind: v.kind, message: v.message } : v;
  });
  assert.deepEqual(results.map((r) => r.outcome), ['deployed', 'deployed', 'deployed'], said);
  assert.equal(results[1].descriptor.digest, index.digest);
  assert.equal(client.lookup(`${b}/deployed:v2`, { head: true }).descriptor.digest, index.digest);
  const again = new Client().deploy(input, { dryRun: true });
  assert.deepEqual(again.map((r) => r.outcome), ['up-to-date', 'up-to-date', 'up-to-date']);
  assert.throws(
    () => client.deploy([{ type: 'image', refs: [`${b}/x`] }]),
    (e) => e instanceof OcirelayError && e.kind === 'invalid-input' && e.message.includes('input 1'),
  );
});

test('sync copies what changed, says what is unchanged, and goes on past failures', () => {
  const client = new Client();
  const config = { [a]: { images: { app: ['v1', 'gone'] } } };
  const results = client.sync(config, { destination: `${b}/synced-js` });
  assert.deepEqual(results.map((r) => r.outcome), ['copied', 'failed']);
  assert.ok(results[0].bytesSent > 0 && results[0].requests > 2, JSON.stringify(results[0]));
  assert.equal(results[0].destination, `${b}/synced-js/app:v1`);
  assert.equal(results[0].descriptor.digest, index.digest);
  assert.ok(results[1].error instanceof OcirelayError && results[1].error.kind === 'not-found');
  const again = client.sync(JSON.stringify(config), { destination: `${b}/synced-js`, dryRun: true, shard: [0, 1] });
  assert.deepEqual(again.map((r) => r.outcome), ['unchanged', 'failed']);
  assert.throws(
    () => client.sync({ [a]: { imagez: {} } }, { destination: b }),
    (e) => e instanceof OcirelayError && e.kind === 'invalid-input' && e.message.includes('imagez'),
  );
});

test('listReferrers reads what a signer left under the fallback tag, filtered by artifact type', () => {
  const client = new Client();
  // A repository of its own: the fallback tag is a tag like any other.
  client.copy(`${a}/app:v1`, `${a}/signed:v1`);
  const empty = Buffer.from('{}');
  const signature = Buffer.from('a signature of the index');
  for (const blob of [empty, signature]) client.ensureBlob(`${a}/signed@${sha256(blob)}`, blob);
  const artifactType = 'application/vnd.dev.cosign.artifact.sig.v1+json';
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    artifactType,
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
    layers: [{ mediaType: 'application/octet-stream', digest: sha256(signature), size: signature.length }],
    subject: { mediaType: index.mediaType, digest: index.digest, size: index.size },
  });
  const sig = client.ensureManifest(`${a}/signed@${sha256(manifest)}`, manifest, 'application/vnd.oci.image.manifest.v1+json');
  const listing = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ ...sig, artifactType }],
  });
  const tag = index.digest.replace(':', '-');
  client.ensureManifest(`${a}/signed:${tag}`, listing, 'application/vnd.oci.image.index.v1+json');

  const found = new Client().listReferrers(`${a}/signed:v1`);
  assert.equal(found.source, 'fallback-tag');
  assert.deepEqual(found.manifests.map((d) => [d.digest, d.artifactType]), [[sig.digest, artifactType]]);
  assert.equal(found.index.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.equal(new Client().listReferrers(`${a}/signed:v1`, { artifactType: 'application/spdx+json' }).manifests.length, 0);
  assert.equal(new Client().listReferrers(`${a}/signed:missing`), null);

  // Copied with what refers to it: listed at the destination too.
  new Client().copy(`${a}/signed:v1`, `${b}/signed:v1`, { referrers: true });
  const there = new Client().listReferrers(`${b}/signed:v1`);
  assert.deepEqual(there.manifests.map((d) => d.digest), [sig.digest]);
  const again = new Client().copyReferrers(`${a}/signed:v1`, `${b}/signed:v1`);
  assert.deepEqual([again.copied.length, again.tags.length, again.skipped.length], [1, 0, 0]);
});
