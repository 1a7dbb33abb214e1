// Registries for the tests: CNCF distribution (`/usr/bin/docker-registry`)
// on free loopback ports with temporary storage, plain HTTP (127.0.0.1),
// stopped when the test process ends.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const config = join(dirname(fileURLToPath(import.meta.url)), '../../../scripts/registry.yml');
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
  const port = await freePort();
  const storage = mkdtempSync(join(tmpdir(), 'ocirelay-js-'));
  const child = spawn('/usr/bin/docker-registry', ['serve', config], {
    env: {
      ...process.env,
      REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: storage,
    },
    stdio: 'ignore',
  });
  registries.push({ child, storage });
  const host = `127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`http://${host}/v2/`)).ok) return host;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the registry on ${host} did not start`);
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
