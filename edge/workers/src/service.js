// The ocirelay edge service on a JavaScript engine: the component as jco
// transpiles it for JSPI (`gen/`), its WASI imports from preview2-shim's
// browser build, and HTTP from ./http.js (fetch out, Web Responses in).
//
// An instance serves one request at a time, and is kept for the next once
// it has written its whole answer: instantiating is most of a small
// request's cost (and the registry client it keeps has its tokens). One
// that failed is dropped. workerd cancels a request that waits on another
// request's instance, so none is ever shared by two at once.

import { instantiate } from '../gen/ocirelay-service.js';
import { cli, clocks, io, random } from '@bytecodealliance/preview2-shim';
import { http, serve, upstreamFetch } from './http.js';

// The shim's outgoing requests go to the global `fetch`.
globalThis.fetch = upstreamFetch(globalThis.fetch.bind(globalThis));

const imports = {
  'wasi:cli/stderr': cli.stderr,
  'wasi:cli/stdin': cli.stdin,
  'wasi:cli/stdout': cli.stdout,
  'wasi:clocks/monotonic-clock': clocks.monotonicClock,
  'wasi:http/outgoing-handler': http.outgoingHandler,
  'wasi:http/types': http.types,
  'wasi:io/error': io.error,
  'wasi:io/poll': io.poll,
  'wasi:io/streams': io.streams,
  'wasi:random/random': random.random,
};

/** Idle instances kept at most. */
export const IDLE_INSTANCES = 32;
const idle = [];

/**
 * Answers `request` (a Web `Request`) with an idle instance of the
 * service, or a new one. `getCoreModule(name)` gives the compiled core
 * module `name` (a file of `gen/`), or a promise of it.
 */
export async function handle(request, getCoreModule) {
  const service = idle.pop() ?? (await instantiate(getCoreModule, imports));
  return serve(request, service.incomingHandler, (whole) => {
    if (whole && idle.length < IDLE_INSTANCES) idle.push(service);
  });
}
