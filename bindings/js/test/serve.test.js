// The edge service (composed by `ocirelay build-service`) under jco's
// `jco serve`, mirroring a registry on loopback; and a registry's 429 as
// the package reports it. Servers run in child processes: the package's
// calls block this thread.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, OcirelayError } from 'ocirelay';
import { freePort, sha256, startRegistry, stopRegistries } from './registry.js';

const here = dirname(fileURLToPath(import.meta.url));
// The CLI `cargo test` (or `cargo build`) built before this runs.
const ocirelay = process.env.OCIRELAY_BIN ?? join(here, '../../../target/debug/ocirelay');
const jco = process.env.OCIRELAY_JCO ?? join(here, '../node_modules/.bin/jco');
const children = [];

// Each child leads a process group of its own: jco serve runs the
// service in a node child of its own, which must stop with it.
function child(command, args) {
  const c = spawn(command, args, { stdio: 'ignore', detached: true });
  children.push(c);
  return c;
}

// Stops `c` and every process of its group, and waits until they are gone.
async function stop(c) {
  try {
    process.kill(-c.pid, 'SIGTERM');
  } catch {
    return; // the group is gone already
  }
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(-c.pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    process.kill(-c.pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
}

async function listening(url, seconds) {
  for (let i = 0; i < seconds * 10; i++) {
    try {
      await fetch(url);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`nothing answered at ${url}`);
}

let upstream;
let image;

before(async () => {
  upstream = await startRegistry();
  const client = new Client();
  const layer = Buffer.from('served by jco');
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  for (const blob of [layer, config]) client.ensureBlob(`${upstream}/team/app@${sha256(blob)}`, blob);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
  });
  image = client.ensureManifest(`${upstream}/team/app:v1`, manifest, 'application/vnd.oci.image.manifest.v1+json');
});

after(async () => {
  for (const c of children) await stop(c);
  stopRegistries();
});

test('jco serve runs the edge service: the mirror and the index route', { timeout: 180_000 }, async (t) => {
  assert.ok(existsSync(ocirelay), `${ocirelay} is built by cargo test`);
  const dir = mkdtempSync(join(tmpdir(), 'ocirelay-serve-'));
  const config = join(dir, 'service.json');
  writeFileSync(config, JSON.stringify({ upstreams: [{ registry: upstream, repositories: ['team/*'] }] }));
  const wasm = join(dir, 'service.wasm');
  execFileSync(ocirelay, ['build-service', config, '--output', wasm]);
  const port = await freePort();
  const served = child(jco, ['serve', '--port', String(port), '--host', '127.0.0.1', wasm]);
  const base = `http://127.0.0.1:${port}`;
  await listening(`${base}/v2/`, 120);
  // Stopped with every process it started, nothing answers there any more.
  t.after(async () => {
    await stop(served);
    await assert.rejects(fetch(`${base}/v2/`), 'jco serve and its node child are gone');
  });

  const answer = await fetch(`${base}/v2/team/app/manifests/v1`);
  assert.equal(answer.status, 200);
  assert.equal(answer.headers.get('docker-content-digest'), image.digest);
  assert.equal(sha256(Buffer.from(await answer.arrayBuffer())), image.digest);
  const index = await fetch(`${base}/index/${upstream}/team/app:v1`);
  assert.equal(index.status, 200);
  assert.equal((await index.json()).manifests[0].digest, image.digest);
  const denied = await fetch(`${base}/v2/other/app/manifests/v1`);
  assert.equal(denied.status, 403);
  assert.equal((await denied.json()).errors[0].code, 'DENIED');
});

test('a registry that keeps answering 429 is rate-limited, with its Retry-After', async () => {
  const port = await freePort();
  const server = `require('node:http').createServer((q, s) => {
    s.writeHead(429, { 'Retry-After': '9', 'Content-Type': 'application/json' });
    s.end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
  }).listen(${port}, '127.0.0.1');`;
  child(process.execPath, ['-e', server]);
  await listening(`http://127.0.0.1:${port}/`, 10);
  assert.throws(
    () => new Client({ retryDeadlineSecs: 1 }).lookup(`127.0.0.1:${port}/app:v1`, { head: true }),
    (e) => e instanceof OcirelayError && e.kind === 'rate-limited' && e.retryAfterSecs === 9 && e.message.includes('429'),
  );
});
