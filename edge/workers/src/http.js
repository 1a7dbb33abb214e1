// wasi:http for the service on a JavaScript engine, with response bodies
// that stream.
//
// preview2-shim's browser build reads upstream answers as streams (fetch
// bodies), but sends a response only once its whole body is written, and
// only after the handler returns: a 256 MiB blob would sit in memory, and
// the client would wait for its last byte before the first. Here the
// response goes out as soon as the guest sets it, its body a
// `ReadableStream` fed by the guest's writes; the guest is held (JSPI) while
// the client is slower, so at most `BUFFERED` bytes wait in between. A
// client that goes away closes the stream the guest writes to, which stops
// it and drops its upstream read.
//
// The shim keeps the rest: fields, outgoing requests (fetch), incoming
// responses and their bodies. What is ours is the request and response of
// the incoming side. Its body classes extend the shim's, since the
// component checks each body it is handed against the one class it
// imports.

import { http as shim, io } from '@bytecodealliance/preview2-shim';

const { Fields, IncomingBody, OutgoingBody } = shim.types;

/** Response bytes written by the guest and not yet taken by the client, at most. */
export const BUFFERED = 1 << 20;

const FORBIDDEN = new Set(['connection', 'keep-alive', 'host']);
const NULL_BODY = new Set([101, 103, 204, 205, 304]);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The headers of a Web message as WASI fields (those WASI forbids left out). */
function fieldsOf(headers) {
  const fields = new Fields();
  for (const [name, value] of headers) {
    if (FORBIDDEN.has(name.toLowerCase())) continue;
    try {
      fields.append(name, encoder.encode(value));
    } catch {
      // A value WASI's syntax refuses: not for the guest.
    }
  }
  return fields;
}

/** An incoming request's body: the Web request's, read as the guest asks. */
class RequestBody extends IncomingBody {
  #stream;
  constructor(body) {
    super();
    const reader = body?.getReader();
    let chunk = null;
    let done = !reader;
    let failed = null;
    let pending = null;
    const fill = () => {
      pending ??= reader.read().then(
        (r) => {
          pending = null;
          if (r.done) done = true;
          else chunk = r.value;
        },
        (e) => {
          pending = null;
          done = true;
          failed = io.ioErrorCreate(String(e));
        },
      );
      return pending;
    };
    const ready = () => done || (chunk && chunk.byteLength > 0);
    const read = (len) => {
      if (failed) throw { tag: 'last-operation-failed', val: failed };
      if (chunk && chunk.byteLength > 0) {
        const n = Math.min(Number(len), chunk.byteLength);
        const out = chunk.slice(0, n);
        chunk = chunk.subarray(n);
        return out;
      }
      if (done) throw { tag: 'closed' };
      fill();
      return new Uint8Array(0);
    };
    this.#stream = io.inputStreamCreate({
      read,
      blockingRead: (len) => (ready() ? read(len) : fill().then(() => read(len))),
      subscribe: () => io.pollableCreate({ ready, wait: () => (ready() ? undefined : fill()) }),
      drop: () => {
        done = true;
        reader?.cancel().catch(() => {});
      },
    });
  }
  stream() {
    const stream = this.#stream;
    if (!stream) throw undefined;
    this.#stream = null;
    return stream;
  }
}

/** A request as the guest sees it. */
export class IncomingRequest {
  #request;
  #url;
  #headers;
  #body;
  constructor(request) {
    this.#request = request;
    this.#url = new URL(request.url);
    this.#headers = fieldsOf(request.headers);
    this.#body = new RequestBody(request.body);
  }
  method() {
    const method = this.#request.method.toLowerCase();
    const known = ['get', 'head', 'post', 'put', 'delete', 'connect', 'options', 'trace', 'patch'];
    return known.includes(method) ? { tag: method } : { tag: 'other', val: this.#request.method };
  }
  pathWithQuery() {
    return this.#url.pathname + this.#url.search;
  }
  scheme() {
    return this.#url.protocol === 'https:' ? { tag: 'HTTPS' } : { tag: 'HTTP' };
  }
  authority() {
    return this.#url.host;
  }
  headers() {
    return this.#headers;
  }
  consume() {
    const body = this.#body;
    if (!body) throw undefined;
    this.#body = null;
    return body;
  }
}

/**
 * A response body: what the guest writes goes into a `ReadableStream`,
 * the guest held while `BUFFERED` bytes wait for the client.
 */
class ResponseBody extends OutgoingBody {
  #stream;
  #controller;
  #written = false;
  #finished = false;
  #cancelled = false;
  #pulled = null;
  #wake = () => {};
  /** What the client reads. */
  readable;
  constructor() {
    super();
    this.readable = new ReadableStream(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        pull: () => this.#wake(),
        cancel: () => {
          this.#cancelled = true;
          this.#wake();
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: BUFFERED }),
    );
    const room = () => (this.#cancelled ? 0 : Math.max(this.#controller.desiredSize ?? 0, 0));
    const closed = () => {
      throw { tag: 'closed' };
    };
    const write = (buf) => {
      if (this.#cancelled || this.#finished) closed();
      // jco hands over a copy of the guest's bytes: ours to keep.
      this.#controller.enqueue(buf);
    };
    const ready = () => this.#cancelled || room() > 0;
    const wait = () => {
      this.#pulled ??= new Promise((resolve) => {
        this.#wake = () => {
          this.#pulled = null;
          resolve();
        };
      });
      return this.#pulled;
    };
    this.#stream = io.outputStreamCreate({
      checkWrite: () => (this.#cancelled ? closed() : BigInt(room())),
      write,
      blockingWriteAndFlush: (buf) => {
        if (!ready()) return wait().then(() => write(buf));
        write(buf);
      },
      flush() {},
      blockingFlush() {},
      subscribe: () => io.pollableCreate({ ready, wait }),
    });
  }
  write() {
    if (this.#written) throw undefined;
    this.#written = true;
    return this.#stream;
  }
  /** The guest said it wrote all of it. */
  end() {
    this.#finished = true;
    if (!this.#cancelled) this.#controller.close();
  }
  /** Dropped unfinished: the client must not take a cut body for a whole one. */
  [Symbol.dispose ?? Symbol.for('dispose')]() {
    if (!this.#finished && !this.#cancelled) {
      this.#controller.error(new Error('the response body was cut short'));
    }
  }
}

// The component calls the class it imports (the shim's) to finish a body:
// a response body is then ended too.
const finish = OutgoingBody.finish;
OutgoingBody.finish = function (body, trailers) {
  const result = finish.call(this, body, trailers);
  if (body instanceof ResponseBody) body.end();
  return result;
};

/**
 * A body of a known length where the engine needs telling: workerd sends a
 * stream chunked, dropping `Content-Length`, unless it flows through its
 * `FixedLengthStream` (which also fails a body that comes out short).
 * Other engines keep the header as it is.
 */
function withLength(body, length) {
  const FixedLength = globalThis.FixedLengthStream;
  if (!body || !FixedLength || length === null || !/^\d+$/.test(length)) return body;
  const { readable, writable } = new FixedLength(Number(length));
  body.pipeTo(writable).catch(() => {});
  return readable;
}

/** A response as the guest builds it. */
export class OutgoingResponse {
  #headers;
  #status = 200;
  #body = null;
  constructor(headers) {
    this.#headers = headers;
  }
  statusCode() {
    return this.#status;
  }
  setStatusCode(status) {
    if (!Number.isInteger(status) || status < 100 || status > 999) throw undefined;
    this.#status = status;
  }
  headers() {
    return this.#headers;
  }
  body() {
    if (this.#body) throw undefined;
    this.#body = new ResponseBody();
    return this.#body;
  }
  /** The Web response: sent now, its body streaming as the guest writes it. */
  toResponse() {
    const headers = new Headers();
    for (const [name, value] of this.#headers.entries()) {
      headers.append(name, decoder.decode(value));
    }
    let body = NULL_BODY.has(this.#status) ? null : (this.#body?.readable ?? null);
    if (!body) this.#body?.readable.cancel().catch(() => {});
    body = withLength(body, headers.get('content-length'));
    return new Response(body, { status: this.#status, headers });
  }
}

/** Where the guest puts its response: resolves the promise `serve` returns. */
export class ResponseOutparam {
  #settle;
  constructor(settle) {
    this.#settle = settle;
  }
  static set(param, response) {
    const settle = param.#settle;
    if (!settle) throw new Error('the response was set already');
    param.#settle = null;
    settle(response);
  }
  /** Whether the guest has set it. */
  get isSet() {
    return this.#settle === null;
  }
}

/** Upstream bytes handed to the guest at once, at most, when they wait. */
export const GATHER = 256 << 10;

/**
 * `body` with the chunks that are already there gathered into one, up to
 * `GATHER` bytes: engines deliver a fetch body in small chunks (workerd:
 * 4 KiB), and each costs the guest a read, a suspension and a write.
 * Nothing waits for more: what is there when a read would wait goes out.
 */
function gathered(body) {
  const reader = body.getReader();
  let pending = null;
  const WAIT = Symbol('wait');
  // A read not answered by the engine's next turn would wait (its timer
  // cleared either way: a Worker may have 10,000 at once).
  const soon = (read) => {
    let timer;
    const turn = new Promise((resolve) => {
      timer = setTimeout(() => resolve(WAIT), 0);
    });
    return Promise.race([read, turn]).finally(() => clearTimeout(timer));
  };
  return new ReadableStream(
    {
      async pull(controller) {
        const parts = [];
        let size = 0;
        while (size < GATHER) {
          pending ??= reader.read();
          const next = parts.length === 0 ? await pending : await soon(pending);
          if (next === WAIT) break;
          pending = null;
          if (next.done) {
            if (size === 0) return controller.close();
            break;
          }
          parts.push(next.value);
          size += next.value.byteLength;
        }
        if (parts.length === 1) return controller.enqueue(parts[0]);
        const joined = new Uint8Array(size);
        let at = 0;
        for (const part of parts) {
          joined.set(part, at);
          at += part.byteLength;
        }
        controller.enqueue(joined);
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * `fetch` as the guest needs it: redirects are the guest's to follow (it
 * decides where credentials may go), and answer bodies come gathered.
 */
export function upstreamFetch(fetch) {
  return async (url, init = {}) => {
    const response = await fetch(url, { ...init, redirect: 'manual' });
    if (!response.body) return response;
    const { status, statusText, headers } = response;
    return new Response(gathered(response.body), { status, statusText, headers });
  };
}

/** The wasi:http interfaces the component imports. */
export const http = {
  outgoingHandler: shim.outgoingHandler,
  types: {
    ...shim.types,
    IncomingRequest,
    OutgoingResponse,
    ResponseOutparam,
  },
};

/**
 * Answers `request` (a Web `Request`) with `handler`, the component's
 * `wasi:http/incoming-handler`: resolves as soon as the guest sets its
 * response, whose body then streams; the guest runs on until it has
 * written it, and then `done(whole)` says whether it returned having set
 * its response (`false`: it failed, trapped, or returned without one).
 */
export function serve(request, handler, done = () => {}) {
  return new Promise((resolve, reject) => {
    const answer = (result) => {
      if (result.tag === 'ok') {
        resolve(result.val.toResponse());
      } else {
        const code = JSON.stringify(result.val);
        resolve(new Response(`the service failed: ${code}\n`, { status: 500 }));
      }
    };
    const out = new ResponseOutparam(answer);
    Promise.resolve()
      .then(() => handler.handle(new IncomingRequest(request), out))
      .then(
        () => {
          done(out.isSet);
          if (!out.isSet) reject(new Error('the service returned without a response'));
        },
        (error) => {
          done(false);
          if (!out.isSet) reject(error);
          else console.error(`ocirelay: the service failed after answering: ${error}`);
        },
      );
  });
}
