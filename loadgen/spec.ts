// A run specification: what the CLI flags and the REST API's POST body both
// describe. One JSON Schema, compiled once, validates the REST body; the CLI's
// flag parsers check each value and the same `checkSpec` checks combinations.
import AjvModule from 'ajv';
import { chatBodyOverhead } from './body.js';

export type Arrival = 'constant' | 'poisson';

export interface RunSpec {
  /** Base URL ending in /v1. */
  url: string;
  key?: string;
  model: string;
  /** Concurrent users (closed loop) or the most requests in flight (open loop). */
  workers: number;
  /** Total requests, pulled from one shared queue; excludes durationS. */
  requests?: number;
  /** Run for this long instead of a fixed number of requests. */
  durationS?: number;
  /** The chat completion body is exactly this many bytes. */
  requestBytes: number;
  stream: boolean;
  /** Open loop: arrivals per second (absent = closed loop). */
  rate?: number;
  arrival: Arrival;
  /** Closed-loop load before measuring starts, not counted. */
  warmupS: number;
  threads: number;
  headers: Record<string, string>;
  timeoutS: number;
}

export const SPEC_DEFAULTS = {
  model: 'benchmark-model',
  workers: 10,
  requestBytes: 1024,
  stream: false,
  arrival: 'constant' as Arrival,
  warmupS: 0,
  threads: 1,
  timeoutS: 30,
  /** When neither requests nor durationS is given. */
  durationS: 10,
};

/** Upper bounds the schema and the CLI flags share. */
export const LIMITS = {
  /** threads × requestBytes: the request bodies the threads hold between them. */
  bodyMemory: 1024 * 1024 * 1024,
  /** durationS and warmupS: 7 days (a timer beyond 2^31 - 1 ms fires at once). */
  spanS: 7 * 24 * 3600,
  /** timeoutS: 1 day (undici's timers, too, fire at once beyond 2^31 - 1 ms). */
  timeoutS: 24 * 3600,
  /** rate, per second: the open-loop scheduler steps through every arrival. */
  rate: 10_000_000,
  /** requests: the shared queue and counters are 32-bit. */
  requests: 1_000_000_000,
};

export const specSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['url'],
  properties: {
    url: { type: 'string', pattern: '^https?://' },
    key: { type: 'string' },
    model: { type: 'string', minLength: 1 },
    workers: { type: 'integer', minimum: 1, maximum: 100000 },
    requests: { type: 'integer', minimum: 1, maximum: LIMITS.requests },
    durationS: { type: 'number', exclusiveMinimum: 0, maximum: LIMITS.spanS },
    requestBytes: { type: 'integer', minimum: 1, maximum: 64 * 1024 * 1024 },
    stream: { type: 'boolean' },
    rate: { type: 'number', exclusiveMinimum: 0, maximum: LIMITS.rate },
    arrival: { enum: ['constant', 'poisson'] },
    warmupS: { type: 'number', minimum: 0, maximum: LIMITS.spanS },
    threads: { type: 'integer', minimum: 1, maximum: 256 },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    timeoutS: { type: 'number', exclusiveMinimum: 0, maximum: LIMITS.timeoutS },
  },
} as const;

// ajv is CommonJS; under NodeNext its default export is the module object.
const Ajv = ((AjvModule as unknown as { default?: typeof AjvModule }).default ?? AjvModule) as unknown as typeof AjvModule.default;
const validate = new Ajv({ allErrors: false }).compile(specSchema);

export class SpecError extends Error {
  override name = 'SpecError';
  constructor(
    message: string,
    /** The field (REST) or flag (CLI) at fault. */
    readonly field: string,
  ) {
    super(message);
  }
}

/** Validates a REST body and fills defaults; throws SpecError naming the field. */
export function parseSpec(body: unknown): RunSpec {
  if (!validate(body)) {
    const e = validate.errors![0]!;
    let field = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
    if (e.keyword === 'required') field = (e.params as { missingProperty: string }).missingProperty;
    if (e.keyword === 'additionalProperty' || e.keyword === 'additionalProperties') {
      field = (e.params as { additionalProperty: string }).additionalProperty;
      throw new SpecError(`unknown field '${field}'`, field);
    }
    throw new SpecError(`'${field || 'body'}' ${e.message ?? 'is invalid'}`, field || 'body');
  }
  const b = body as Partial<RunSpec> & { url: string };
  const spec: RunSpec = {
    url: b.url,
    key: b.key,
    model: b.model ?? SPEC_DEFAULTS.model,
    workers: b.workers ?? SPEC_DEFAULTS.workers,
    requests: b.requests,
    durationS: b.durationS,
    requestBytes: b.requestBytes ?? SPEC_DEFAULTS.requestBytes,
    stream: b.stream ?? SPEC_DEFAULTS.stream,
    rate: b.rate,
    arrival: b.arrival ?? SPEC_DEFAULTS.arrival,
    warmupS: b.warmupS ?? SPEC_DEFAULTS.warmupS,
    threads: b.threads ?? SPEC_DEFAULTS.threads,
    headers: b.headers ?? {},
    timeoutS: b.timeoutS ?? SPEC_DEFAULTS.timeoutS,
  };
  return checkSpec(spec, (f) => f);
}

/** An RFC 9110 token: what a header name may be. */
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** What a header value may hold (RFC 9110 field-value; undici refuses the rest): no CR, LF, NUL or other controls. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Headers the load generator writes itself: framing, the connection, the body's type. */
const OWNED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'upgrade', 'expect', 'te', 'trailer', 'content-type']);

function checkHeaders(spec: RunSpec, name: (field: string) => string): void {
  if (spec.key !== undefined && !FIELD_VALUE.test(spec.key)) {
    throw new SpecError(`${name('key')} must not contain CR, LF, NUL or other control characters`, name('key'));
  }
  for (const [k, v] of Object.entries(spec.headers)) {
    const shown = JSON.stringify(k);
    if (!TOKEN.test(k)) throw new SpecError(`${name('headers')}: ${shown} is not a valid header name`, name('headers'));
    const lower = k.toLowerCase();
    if (OWNED_HEADERS.has(lower)) throw new SpecError(`${name('headers')}: ${shown} is set by the load generator itself`, name('headers'));
    if (lower === 'authorization' && spec.key) {
      throw new SpecError(`${name('headers')}: ${shown} and ${name('key')} exclude each other (the key is sent as Authorization)`, name('headers'));
    }
    if (!FIELD_VALUE.test(v)) throw new SpecError(`${name('headers')}: the value of ${shown} must not contain CR, LF, NUL or other control characters`, name('headers'));
  }
}

/**
 * Checks what a schema cannot: combinations and the smallest body. `name`
 * maps a spec field to what the user typed (a flag for the CLI).
 */
export function checkSpec(spec: RunSpec, name: (field: string) => string): RunSpec {
  if (spec.requests !== undefined && spec.durationS !== undefined) {
    throw new SpecError(`${name('requests')} and ${name('durationS')} exclude each other`, name('requests'));
  }
  if (spec.requests === undefined && spec.durationS === undefined) spec.durationS = SPEC_DEFAULTS.durationS;
  const atMost = (field: 'requests' | 'durationS' | 'warmupS' | 'timeoutS' | 'rate', max: number, what: string): void => {
    const v = spec[field];
    if (v !== undefined && v > max) throw new SpecError(`${name(field)} must be at most ${what}`, name(field));
  };
  atMost('requests', LIMITS.requests, String(LIMITS.requests));
  atMost('durationS', LIMITS.spanS, `${LIMITS.spanS} s (7 days)`);
  atMost('warmupS', LIMITS.spanS, `${LIMITS.spanS} s (7 days)`);
  atMost('timeoutS', LIMITS.timeoutS, `${LIMITS.timeoutS} s (1 day)`);
  atMost('rate', LIMITS.rate, `${LIMITS.rate} per second`);
  let url: URL;
  try {
    url = new URL(spec.url);
  } catch {
    throw new SpecError(`${name('url')} must be an http(s) URL`, name('url'));
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SpecError(`${name('url')} must be an http(s) URL, not ${url.protocol}`, name('url'));
  }
  if (url.search !== '' || url.hash !== '') {
    // Requests go to the URL's path + /chat/completions: a query or fragment would be dropped unsaid.
    throw new SpecError(`${name('url')} must not have a query or fragment`, name('url'));
  }
  if (url.username !== '' || url.password !== '') {
    // The workers connect to the origin, which has no userinfo: it would be dropped unsaid.
    throw new SpecError(`${name('url')} must not hold a user or password (send credentials with ${name('key')} or ${name('headers')})`, name('url'));
  }
  if (spec.model === '') throw new SpecError(`${name('model')} must not be empty`, name('model'));
  checkHeaders(spec, name);
  const min = chatBodyOverhead(spec.model, spec.stream);
  if (spec.requestBytes < min) {
    throw new SpecError(`${name('requestBytes')} must be at least ${min} for this model and mode`, name('requestBytes'));
  }
  spec.url = spec.url.replace(/\/+$/, '');
  spec.threads = Math.min(spec.threads, spec.workers);
  if (spec.threads * spec.requestBytes > LIMITS.bodyMemory) {
    throw new SpecError(
      `${name('requestBytes')} × ${name('threads')} must be at most ${LIMITS.bodyMemory} bytes (1 GiB; each thread holds its own copy of the body), not ${spec.threads} × ${spec.requestBytes}`,
      name('requestBytes'),
    );
  }
  return spec;
}

const MASK = '***';
/** Request headers whose values are credentials, shown masked. */
const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'api-key', 'x-api-key', 'cookie']);
const SECRET_HEADER_PATTERN = /auth|key|token|secret|passw|cookie|session/i;

/**
 * The spec as the REST API shows it: the key, credential-bearing headers and
 * any userinfo in the URL masked.
 */
export function publicSpec(spec: RunSpec): RunSpec {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(spec.headers)) headers[k] = SECRET_HEADERS.has(k.toLowerCase()) || SECRET_HEADER_PATTERN.test(k) ? MASK : v;
  let url = spec.url;
  try {
    const u = new URL(url);
    if (u.username !== '' || u.password !== '') {
      u.username = u.username === '' ? '' : MASK;
      u.password = u.password === '' ? '' : MASK;
      url = u.href.replace(/\/+$/, '');
    }
  } catch {
    /* checkSpec refused it already */
  }
  return { ...spec, url, key: spec.key ? MASK : undefined, headers };
}
