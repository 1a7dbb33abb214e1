// What the two flavours of the package share (index.js, whose calls block,
// and async.js, whose calls return promises): errors, the component's
// records as plain objects, and the client's settings.

/** An error from ocirelay; `kind` says which (see `ErrorKinds`). */
export class OcirelayError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'OcirelayError';
    this.kind = kind;
  }
}

/** The kinds of `OcirelayError`, as the component names them. */
export const ErrorKinds = Object.freeze([
  'invalid-reference',
  'invalid-input',
  'not-found',
  'authentication',
  'registry',
  'integrity',
  'protocol',
  'transport',
  'timeout',
  'rate-limited',
  'internal',
]);

// The component's `error` variant ({tag, val}) as an OcirelayError.
export function toError(payload) {
  // `rate-limited` carries a record: its message, and the wait asked for.
  if (payload.tag === 'rate-limited') {
    const err = new OcirelayError(payload.tag, payload.val.message);
    if (payload.val.retryAfterSecs !== undefined) {
      err.retryAfterSecs = Number(payload.val.retryAfterSecs);
    }
    return err;
  }
  return new OcirelayError(payload.tag, payload.val);
}

// The component's `result` error (jco's Error with a WIT variant as its
// `payload`) as an OcirelayError; anything else as it is.
export function rethrown(e) {
  const payload = e && e.payload;
  return payload && typeof payload.tag === 'string' ? toError(payload) : e;
}

// Sizes come from the component as bigint; numbers are exact up to 2^53.
const asNumber = (n) => (n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n);

/** A descriptor record as a plain object (sizes as numbers). */
export function descriptor(d) {
  const out = { mediaType: d.mediaType, digest: d.digest, size: asNumber(d.size) };
  if (d.urls.length) out.urls = d.urls;
  if (d.annotations.length) out.annotations = Object.fromEntries(d.annotations);
  if (d.platform) out.platform = d.platform;
  if (d.artifactType) out.artifactType = d.artifactType;
  return out;
}

function credential(c) {
  if (c.identityToken) return { tag: 'identity-token', val: c.identityToken };
  if (c.token) return { tag: 'bearer', val: c.token };
  return { tag: 'basic', val: [c.username, c.password] };
}

/** The component's client settings from the options a `Client` takes. */
export function clientConfig(options = {}) {
  return {
    userAgent: options.userAgent ?? 'ocirelay-js/0.1.0',
    credentials: Object.entries(options.credentials ?? {}).map(([host, c]) => [host, credential(c)]),
    insecureRegistries: options.insecureRegistries ?? [],
    cache: options.cache ?? true,
    concurrency: options.concurrency ?? 0,
    retryDeadlineSecs: options.retryDeadlineSecs ?? 0,
    dockerHubProxy: options.dockerHubProxy,
    policy: undefined,
    // Nothing in Node checks uploads: the component hashes them.
    uploadsVerifiedByHost: false,
    downloadsVerifiedByHost: false,
    requestTimeoutSecs: options.requestTimeoutSecs ?? 0,
    // By registry (or '*'): sizes in bytes; 0 or missing: the default.
    uploads: Object.entries(options.uploads ?? {}).map(([registry, u]) => ({
      registry,
      chunkSize: BigInt(u.chunkSize ?? 0),
      monolithicUpTo: BigInt(u.monolithicUpTo ?? 0),
    })),
  };
}

/** `listReferrers`' answer as a plain object, or `null`. */
export function referrers(found) {
  if (found === undefined) return null;
  const out = {
    manifests: found.manifests.map(descriptor),
    index: JSON.parse(found.indexJson),
    source: found.source.tag,
  };
  if (found.source.tag === 'not-an-index') out.holds = found.source.val;
  return out;
}

/** `copy` given both `platforms` and `referrers`: a cut index is another
 * image, which its source's referrers do not name. */
export function copyOptionsError() {
  return new OcirelayError('invalid-input', 'copy: platforms and referrers do not go together (a cut index is another image)');
}

/** `copyReferrers`' answer as a plain object. */
export function copiedReferrers(done) {
  return { copied: done.copied.map(descriptor), tags: done.tags, skipped: done.skipped };
}

/** The deploy input as the component takes it: JSON objects, one a line. */
export function deployText(input) {
  return typeof input === 'string' ? input : input.map((o) => JSON.stringify(o)).join('\n');
}

/** The deploy results as plain objects. */
export function deployResults(results) {
  return results.map(({ reference, outcome }) => {
    const out = { reference, outcome: outcome.tag };
    if (outcome.tag === 'deployed') out.descriptor = descriptor(outcome.val);
    if (outcome.tag === 'would-change') out.input = outcome.val;
    if (outcome.tag === 'failed') out.error = toError(outcome.val);
    return out;
  });
}

/** A sync config (an object, or its JSON) as the component takes it. */
export function syncText(config) {
  return typeof config === 'string' ? config : JSON.stringify(config);
}

/** The sync's results as plain objects: `{source, destination, outcome,
 * descriptor | error, referrers?}`. */
export function syncResults(results) {
  return results.map(({ source, destination, outcome, referrers, requests, bytesSent }) => {
    const out = {
      source, destination: destination ?? null, outcome: outcome.tag, requests: Number(requests), bytesSent: Number(bytesSent),
    };
    if (outcome.tag === 'failed') out.error = toError(outcome.val);
    else out.descriptor = descriptor(outcome.val);
    if (referrers) out.referrers = copiedReferrers(referrers);
    return out;
  });
}
