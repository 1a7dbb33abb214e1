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
// As the jco CLI does: a component's error result is thrown as an Error
// whose `payload` is the WIT variant (common.js reads it).
const { files } = await transpile(component, {
  name: 'ocirelay',
  outDir: dist,
  noComponentErrorWrapping: false,
});
// The async flavour (async.js): instantiated with imports it is handed (the
// shim's browser build), its blocking WASI calls suspending it (JSPI), and
// each export that can wait on the registry returning a promise.
const blocking = [
  'wasi:io/poll#poll',
  'wasi:io/poll#[method]pollable.block',
  'wasi:io/streams#[method]input-stream.blocking-read',
  'wasi:io/streams#[method]input-stream.blocking-skip',
  'wasi:io/streams#[method]output-stream.blocking-flush',
  'wasi:io/streams#[method]output-stream.blocking-write-and-flush',
  'wasi:io/streams#[method]output-stream.blocking-write-zeroes-and-flush',
  'wasi:io/streams#[method]output-stream.blocking-splice',
];
// Every method of the client talks to registries, so each may wait: read
// from the first transpile's typings, so that a method added to the WIT
// cannot be left blocking (it would trap under JSPI).
const typings = Object.entries(files).find(([path]) =>
  path.endsWith('ocirelay-registry-registry.d.ts'),
);
const clientClass = typings && new TextDecoder().decode(typings[1]).match(/export class Client[^{]*\{([^}]*)\}/);
if (!clientClass) {
  console.error('ocirelay: no Client class in the transpiled typings');
  process.exit(1);
}
const clientMethods = [...clientClass[1].matchAll(/^\s+([a-z][A-Za-z0-9]*)\(/gm)]
  .map(([, name]) => name)
  .filter((name) => name !== 'constructor')
  .map((name) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`));
const waiting = {
  client: clientMethods,
  'blob-reader': ['read', 'read-base64', 'write-to'],
  'blob-writer': ['write', 'write-base64', 'finish'],
};
const asyncDist = join(dist, 'async');
const { files: asyncFiles } = await transpile(component, {
  name: 'ocirelay',
  outDir: asyncDist,
  noComponentErrorWrapping: false,
  instantiation: 'async',
  asyncMode: 'jspi',
  asyncImports: blocking,
  asyncExports: Object.entries(waiting).flatMap(([resource, methods]) =>
    methods.map((m) => `ocirelay:registry/registry#[method]${resource}.${m}`),
  ),
  nodejsCompat: false,
});
rmSync(dist, { recursive: true, force: true });
for (const [path, bytes] of Object.entries({ ...files, ...asyncFiles })) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
}
console.error(`ocirelay: transpiled ${component} into dist/ (and dist/async/, for JSPI)`);
