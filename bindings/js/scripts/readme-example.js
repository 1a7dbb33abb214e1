#!/usr/bin/env node
// Writes the README's TypeScript example (its ```ts blocks) into
// test/readme.generated.ts, for `tsc -p test` to check it against
// index.d.ts: the README's calls are the package's.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
if (blocks.length === 0) {
  console.error('ocirelay: README.md has no ```ts example to check');
  process.exit(1);
}
const header = '// Written by scripts/readme-example.js from README.md: do not edit.\n';
writeFileSync(join(root, 'test/readme.generated.ts'), header + blocks.join('\n'));
