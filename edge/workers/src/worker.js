// The Workers entry (workerd, Cloudflare Workers): the core modules come as
// modules of the Worker, since a Worker compiles no wasm from bytes.

import core from '../gen/ocirelay-service.core.wasm';
import core2 from '../gen/ocirelay-service.core2.wasm';
import core3 from '../gen/ocirelay-service.core3.wasm';
import { handle } from './service.js';

const modules = {
  'ocirelay-service.core.wasm': core,
  'ocirelay-service.core2.wasm': core2,
  'ocirelay-service.core3.wasm': core3,
};

export default {
  fetch(request) {
    return handle(request, (name) => modules[name]);
  },
};
