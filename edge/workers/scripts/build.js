#!/usr/bin/env node
// Builds the edge service for JavaScript engines from a service component
// that `ocirelay build-service` configured:
//
//   node scripts/build.js SERVICE.wasm OUT [--ca-file PEM]
//
// OUT then holds
//   worker.js, *.wasm      the Worker (workerd, Cloudflare Workers): the
//                          core modules as modules of their own, since a
//                          Worker compiles no wasm from bytes;
//   workerd.capnp          a config for a local `workerd serve` on
//                          127.0.0.1:8080 (`--socket-addr http=HOST:PORT`),
//                          allowed to reach private and loopback addresses,
//                          trusting the CA of --ca-file besides the public;
//   wrangler.toml          for `wrangler dev` / `wrangler deploy`;
//   deno.js, gen/          for `deno run --allow-net --allow-read
//                          --allow-env deno.js --addr HOST:PORT`.

import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transpile } from '@bytecodealliance/jco-transpile';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const usage = 'usage: node scripts/build.js SERVICE.wasm OUT [--ca-file PEM]';
const args = process.argv.slice(2);
const caAt = args.indexOf('--ca-file');
const caFile = caAt >= 0 ? args.splice(caAt, 2)[1] : undefined;
const [component, out] = args;
if (!component || !out || args.length !== 2 || (caAt >= 0 && !caFile)) {
  console.error(usage);
  process.exit(2);
}
for (const [what, path] of [['service component', component], ['CA file', caFile]]) {
  if (path && !existsSync(path)) {
    console.error(`ocirelay: no ${what} at ${path}`);
    process.exit(2);
  }
}

// Built in a directory of OUT's own (builds may run side by side): the
// sources beside the transpiled component they import.
// OUT is replaced: only when empty or an earlier build's.
if (existsSync(out) && readdirSync(out).length > 0 && !existsSync(join(out, 'workerd.capnp'))) {
  console.error(`ocirelay: ${out} holds something other than a build of the service; not replaced`);
  process.exit(2);
}
rmSync(out, { recursive: true, force: true });
const work = join(out, '.build');
const gen = join(work, 'gen');
cpSync(join(root, 'src'), join(work, 'src'), { recursive: true });

// 1. The component transpiled for JSPI: the WASI calls that block may
//    suspend the guest (the jco CLI's `--async-wasi-imports` list), the
//    handler export returns a promise, core modules handed in by the host.
const { files } = await transpile(resolve(component), {
  name: 'ocirelay-service',
  outDir: gen,
  instantiation: 'async',
  asyncMode: 'jspi',
  asyncImports: [
    'wasi:io/poll#poll',
    'wasi:io/poll#[method]pollable.block',
    'wasi:io/streams#[method]input-stream.blocking-read',
    'wasi:io/streams#[method]input-stream.blocking-skip',
    'wasi:io/streams#[method]output-stream.blocking-flush',
    'wasi:io/streams#[method]output-stream.blocking-write-and-flush',
    'wasi:io/streams#[method]output-stream.blocking-write-zeroes-and-flush',
    'wasi:io/streams#[method]output-stream.blocking-splice',
  ],
  asyncExports: ['wasi:http/incoming-handler#handle'],
  nodejsCompat: false,
});
for (const [path, bytes] of Object.entries(files)) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
}
const cores = readdirSync(gen).filter((f) => f.endsWith('.wasm'));

// 2. The two entries bundled; the core modules stay files.
mkdirSync(join(out, 'gen'), { recursive: true });
const common = {
  nodePaths: [join(root, 'node_modules')],
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  logLevel: 'warning',
  mainFields: ['module', 'main'],
};
await build({
  ...common,
  entryPoints: [join(work, 'src/worker.js')],
  outfile: join(out, 'worker.js'),
  conditions: ['workerd', 'worker', 'browser'],
  loader: { '.wasm': 'copy' },
  assetNames: '[name]',
});
await build({
  ...common,
  entryPoints: [join(work, 'src/deno.js')],
  outfile: join(out, 'deno.js'),
  conditions: ['deno', 'browser'],
});
for (const core of cores) copyFileSync(join(gen, core), join(out, 'gen', core));
rmSync(work, { recursive: true, force: true });

// 3. The configurations.
const modules = [
  '    (name = "worker.js", esModule = embed "worker.js"),',
  ...cores.map((c) => `    (name = "${c}", wasm = embed "${c}"),`),
];
const trusted = caFile ? `, trustedCertificates = [ embed "${basename(caFile)}" ]` : '';
if (caFile) copyFileSync(caFile, join(out, basename(caFile)));
writeFileSync(
  join(out, 'workerd.capnp'),
  `# workerd serve workerd.capnp [--socket-addr http=HOST:PORT]
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "ocirelay", worker = .worker),
    # Upstreams on private and loopback addresses are refused without this.
    (name = "upstreams", network = (
      allow = ["public", "private", "local"],
      tlsOptions = (trustBrowserCas = true${trusted}))),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:8080", http = (), service = "ocirelay") ],
  # A young generation of 1 MiB: a blob's chunks, copied on their way
  # through, are collected sooner (a 256 MiB blob's peak: +105 MiB, not
  # +145). The old generation is left alone: at 24 MiB the peak is +50
  # MiB, but 300 requests at once end the process (V8: heap out of memory).
  v8Flags = [ "--max-semi-space-size=1" ],
);

const worker :Workerd.Worker = (
  modules = [
${modules.join('\n')}
  ],
  compatibilityDate = "2026-11-01",
  globalOutbound = "upstreams",
);
`,
);
writeFileSync(
  join(out, 'wrangler.toml'),
  `# wrangler dev / wrangler deploy, from this directory.
name = "ocirelay"
main = "worker.js"
compatibility_date = "2026-11-01"
no_bundle = true

[[rules]]
type = "CompiledWasm"
globs = ["*.wasm"]
`,
);
console.error(`ocirelay: built the edge service for workerd and Deno into ${out}`);
