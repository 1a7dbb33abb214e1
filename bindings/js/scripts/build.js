#!/usr/bin/env node
// Transpiles the ocirelay component into dist/, which index.js imports.
//
//   npm run build [-- COMPONENT.wasm]
//
// The component is the path given, else $OCIRELAY_WASM, else the one a
// checkout of the repository builds (`cargo build -p ocirelay` writes
// ../../target/component/ocirelay.wasm). `npm pack` runs this first
// (`prepack`): a package without dist/ cannot load.

import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transpile } from '@bytecodealliance/jco-transpile';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const component = resolve(
  process.argv[2] ?? process.env.OCIRELAY_WASM ?? join(root, '../../target/component/ocirelay.wasm'),
);
if (!existsSync(component)) {
  console.error(
    `ocirelay: no component at ${component}: build it (cargo build --locked -p ocirelay, ` +
      'in the repository) or name it: npm run build -- PATH.wasm, or OCIRELAY_WASM=PATH.wasm',
  );
  process.exit(1);
}
const dist = join(root, 'dist');
const { files } = await transpile(component, {
  name: 'ocirelay',
  outDir: dist,
  // As the jco CLI does: a component's error result is thrown as an Error
  // whose `payload` is the WIT variant (index.js reads it).
  noComponentErrorWrapping: false,
});
rmSync(dist, { recursive: true, force: true });
for (const [path, bytes] of Object.entries(files)) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
}
console.error(`ocirelay: transpiled ${component} into dist/`);
