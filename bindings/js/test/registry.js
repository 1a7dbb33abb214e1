// Registries for the tests: CNCF distribution (`/usr/bin/docker-registry`)
// on free loopback ports with temporary storage, plain HTTP (127.0.0.1),
// stopped when the test process ends.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

// The repository's registry config; named when the suite runs elsewhere
// (scripts/test-packed.sh runs it against the installed tarball).
const config =
  process.env.OCIRELAY_REGISTRY_CONFIG ??
  join(dirname(fileURLToPath(import.meta.url)), '../../../scripts/registry.yml');
const registries = [];

export function freePort() {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts a registry; its `host:port`. */
export async function startRegistry() {
  const storage = mkdtempSync(join(tmpdir(), 'ocirelay-js-'));
  // Every answer names the registry (the header), so that a test speaks to
  // its own and not to another process's server on the port it was given.
  const id = basename(storage);
  // A port free when chosen may be taken before the registry binds it: the
  // registry then exits and is started again on another port.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn('/usr/bin/docker-registry', ['serve', config], {
      env: {
        ...process.env,
        REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
        REGISTRY_HTTP_HEADERS: `{X-Ocirelay-Test-Registry: [${id}]}`,
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: storage,
      },
      stdio: 'ignore',
    });
    let exited = false;
    child.on('exit', () => { exited = true; });
    const host = `127.0.0.1:${port}`;
    registries.push({ child, storage, host });
    for (let i = 0; i < 100 && !exited; i++) {
      try {
        const answer = await fetch(`http://${host}/v2/`);
        if (answer.ok && answer.headers.get('x-ocirelay-test-registry') === id) return host;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!exited) throw new Error(`the registry on ${host} did not start`);
  }
  throw new Error('the registry exited before listening, three times');
}

/** Overwrites a byte of blob `digest` in the storage of the registry on
 * `host` (which serves it as stored, unchecked). */
export function corruptBlob(host, digest, at) {
  const { storage } = registries.find((r) => r.host === host);
  const hex = digest.replace('sha256:', '');
  const file = join(storage, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
  const bytes = readFileSync(file);
  bytes[at] ^= 0xff;
  writeFileSync(file, bytes);
}

/** The digest of `bytes`. */
export const sha256 = (bytes) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Stops every registry started here and removes its storage. */
export function stopRegistries() {
  for (const { child, storage } of registries) {
    child.kill();
    rmSync(storage, { recursive: true, force: true });
  }
}
