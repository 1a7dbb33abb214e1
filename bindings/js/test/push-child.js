// Pushes a 64 MiB blob through the writer to the registry named on the
// command line and prints, as JSON, what was pushed and this process's
// peak RSS: an embedder that does only that (run by push.test.js).

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { Client } from 'ocirelay';

const [host, repository] = process.argv.slice(2);
const size = 64 * 1024 * 1024;
const chunk = 1024 * 1024;
// Deterministic content, made a chunk at a time in one buffer.
const buffer = Buffer.alloc(chunk);
const piece = (i) => buffer.fill(i % 251);
const hash = createHash('sha256');
for (let i = 0; i < size / chunk; i++) hash.update(piece(i));
const digest = `sha256:${hash.digest('hex')}`;

const client = new Client();
const writer = client.pushBlob(`${host}/${repository}@${digest}`, size);
let wanted = 0;
for (let i = 0; i < size / chunk; i++) if (writer.write(piece(i))) wanted += 1;
const pushed = writer.finish();
const again = client.pushBlob(`${host}/${repository}@${digest}`, size).write(piece(0));
// The kernel's high-water mark of this process's memory since exec (not
// maxRSS, which carries over the parent's peak when it forked us).
const status = readFileSync('/proc/self/status', 'utf8');
const peakMiB = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)[1]) / 1024;
console.log(JSON.stringify({ digest, pushed, wanted, again, peakMiB }));
