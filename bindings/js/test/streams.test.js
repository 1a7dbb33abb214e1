// The Node stream adapters: a push piped from a file stream, a read piped
// into a hash, and what a registry that has the blob already does to a
// piped push.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client, OcirelayError } from 'ocirelay';
import { sha256, startRegistry, stopRegistries } from './registry.js';

let host;
let dir;
before(async () => {
  host = await startRegistry();
  dir = mkdtempSync(join(tmpdir(), 'ocirelay-streams-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
  return stopRegistries();
});

// 3 MiB and a little: several of the file stream's 64 KiB chunks, and of the writer's.
const content = Buffer.alloc(3 * 1024 * 1024 + 17, 'stream me ');

test('a file piped into a push, and the blob piped back out through a hash', async () => {
  const file = join(dir, 'blob');
  writeFileSync(file, content);
  const ref = `${host}/streams@${sha256(content)}`;
  const client = new Client();
  const writer = client.pushBlob(ref, content.length);
  await pipeline(createReadStream(file), writer.stream());
  const pushed = writer.finish();
  assert.deepEqual([pushed.digest, pushed.size], [sha256(content), content.length]);

  const hash = createHash('sha256');
  let read = 0;
  await pipeline(
    client.lookup(ref, { type: 'blob' }).stream(),
    new Writable({
      write(chunk, _encoding, done) {
        hash.update(chunk);
        read += chunk.length;
        done();
      },
    }),
  );
  assert.equal(read, content.length);
  assert.equal(`sha256:${hash.digest('hex')}`, sha256(content));

  const chunks = [...client.lookup(ref, { type: 'blob' })];
  assert.ok(chunks.length > 1, 'read a chunk at a time');
  assert.ok(Buffer.concat(chunks).equals(content));
});

test('a piped push of a blob the registry has sends nothing and still finishes', async () => {
  const again = Buffer.from('present already');
  const ref = `${host}/streams@${sha256(again)}`;
  const client = new Client();
  client.ensureBlob(ref, again);
  const writer = client.pushBlob(ref, again.length);
  await pipeline(Readable.from([again.subarray(0, 4), again.subarray(4)]), writer.stream());
  assert.equal(writer.write(again), false, 'the registry has it');
  assert.equal(writer.finish().digest, sha256(again));
});

test('bytes that do not match the digest fail the piped push', async () => {
  const ref = `${host}/streams@${sha256(Buffer.from('what was promised'))}`;
  const writer = new Client().pushBlob(ref, 17);
  await assert.rejects(
    pipeline(Readable.from([Buffer.from('something else!!!')]), writer.stream()),
    (e) => e instanceof OcirelayError && e.kind === 'integrity',
  );
});
