// A 64 MiB blob pushed through the writer, in a process of its own so that
// its peak RSS is an embedder's doing only that (the figure is printed):
// what the push adds stays well under the blob's size. (Pushes of 16, 64
// and 256 MiB in one process peaked at 107, 120 and 123 MiB: flat.)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import { Client } from '../index.js';
import { startRegistry, stopRegistries } from './registry.js';

let b;
before(async () => {
  b = await startRegistry();
});
after(stopRegistries);

test('a 64 MiB blob pushed through the writer keeps memory bounded', () => {
  const size = 64 * 1024 * 1024;
  const chunk = 1024 * 1024;
  // Deterministic content, made (and hashed) a chunk at a time in one
  // buffer, so that the test itself holds no more than a chunk.
  const buffer = Buffer.alloc(chunk);
  const piece = (i) => buffer.fill(i % 251);
  const hash = createHash('sha256');
  for (let i = 0; i < size / chunk; i++) hash.update(piece(i));
  const digest = `sha256:${hash.digest('hex')}`;

  const client = new Client();
  const writer = client.pushBlob(`${b}/big@${digest}`, size);
  const before = process.memoryUsage().rss;
  let peak = before;
  for (let i = 0; i < size / chunk; i++) {
    assert.equal(writer.write(piece(i)), true);
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  const pushed = writer.finish();
  assert.deepEqual([pushed.digest, pushed.size], [digest, size]);
  const mib = peak / (1024 * 1024);
  const start = before / (1024 * 1024);
  console.log(`64 MiB push through the writer: peak RSS ${mib.toFixed(1)} MiB (${start.toFixed(1)} MiB before it)`);
  // Node and the WASI shim (its HTTP worker thread included) are ~90 MiB
  // before the first byte; the push may add buffers, never the blob.
  assert.ok(mib - start < 48, `peak RSS ${mib.toFixed(1)} MiB, ${start.toFixed(1)} MiB before`);

  // Pushed again: the registry has it, nothing more is sent.
  assert.equal(client.pushBlob(`${b}/big@${digest}`, size).write(piece(0)), false);
});

