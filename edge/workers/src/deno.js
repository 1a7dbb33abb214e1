// The Deno entry: `deno run --allow-net --allow-read --allow-env deno.js
// [--addr HOST:PORT]`. Deno compiles the core modules from their files,
// once, and serves each request with a new instance.

import { handle } from './service.js';

const compiled = new Map();
function getCoreModule(name) {
  if (!compiled.has(name)) {
    const url = new URL(`./gen/${name}`, import.meta.url);
    compiled.set(name, Deno.readFile(url).then((bytes) => WebAssembly.compile(bytes)));
  }
  return compiled.get(name);
}

const at = Deno.args.indexOf('--addr');
const [hostname, port] = (at >= 0 ? Deno.args[at + 1] : '127.0.0.1:8080').split(/:(?=\d+$)/);
Deno.serve({ hostname, port: Number(port) }, (request) => handle(request, getCoreModule));
