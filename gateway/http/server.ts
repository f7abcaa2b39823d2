// The worker's HTTP surface on uWS: /v1/* (auth, routing, proxying),
// /v1/models, health, readiness and metrics.
//
// uWS rules: everything from `req` is read synchronously (it is invalid after
// the handler returns); onAborted is attached before any asynchronous step;
// onData is attached in the handler itself, or the body is lost. Nothing may
// throw out of a handler or a promise continuation: either ends the worker
// and every request in flight on it, so each fails its own request instead.
import { Ajv } from 'ajv';
import { uws, statusLine, type HttpRequest, type HttpResponse, type TemplatedApp } from '../../common/uws.js';
import { errorBody } from '../../common/openai-error.js';
import { readBody, HeldBody, type BodyResult } from '../../common/uws-body.js';
import { stringifyOrNull } from '../../common/json.js';
import { allowsModel, type KeyRecord } from '../auth/types.js';
import type { AuthResult } from '../auth/key-cache.js';
import { E, type ErrorKind } from '../errors.js';
import { bearerMatches, tokenDigest } from '../../common/bearer-token.js';
import { ProxyExchange } from '../proxy/exchange.js';
import type { GatewayContext } from './context.js';
import { handleAdmin } from './admin.js';
import type { Limited } from '../limits/rate-limiter.js';
import { clip, decodePathSegment, hasDotSegment } from './paths.js';

// Client request headers never forwarded upstream: hop-by-hop ones, the ones
// the upstream client sets itself, and the client's own key (the upstream's is injected).
const DROP_REQUEST_HEADERS = new Set([
  'host',
  'authorization',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'expect',
  'upgrade',
  'te',
  'trailer',
  'proxy-authorization',
  'proxy-connection',
]);

/** Longer bearer secrets are refused unread (OpenAI's project keys have 164 characters). */
const MAX_SECRET_LENGTH = 256;

const ajv = new Ajv({ allErrors: false });
/** Only what routing needs; the rest of the body is the upstream's business. */
const validateRoutable = ajv.compile<{ model: string; stream?: boolean; stream_options?: object | null }>({
  type: 'object',
  required: ['model'],
  properties: { model: { type: 'string', minLength: 1 }, stream: { type: 'boolean' }, stream_options: { type: ['object', 'null'] } },
});

function sendError(ctx: GatewayContext, res: HttpResponse, kind: ErrorKind, message: string, param: string | null = null): void {
  res
    .writeStatus(statusLine(kind.status))
    .writeHeader('content-type', 'application/json')
    .end(errorBody(message, kind.type, kind.code, param), ctx.closing);
}

/** An answer the edge gives before any exchange exists: counted and logged as every request is. */
function edgeError(ctx: GatewayContext, res: HttpResponse, kind: ErrorKind, message: string, method: string, url: string, started: number): void {
  sendError(ctx, res, kind, message);
  ctx.edgeAnswered(method, url, kind.status, started);
}

const EMPTY_BODY: BodyResult = { ok: true, body: Buffer.alloc(0) };
const TOO_LARGE: BodyResult = { ok: false, tooLarge: true };

export function createApp(ctx: GatewayContext): TemplatedApp {
  const app = uws().App();
  const modelsCreated = Math.floor(Date.now() / 1000);
  const tokenEnv = ctx.cfg.metrics?.token_env;
  const metricsToken = tokenEnv === undefined ? undefined : process.env[tokenEnv];
  const metricsDigest = metricsToken ? tokenDigest(metricsToken) : null;

  app.get('/healthz', (res) => {
    res.writeHeader('content-type', 'application/json').end('{"status":"ok"}', ctx.closing);
  });
  app.get('/readyz', (res) => {
    if (ctx.draining) res.writeStatus(statusLine(503)).writeHeader('content-type', 'application/json').end('{"status":"draining"}', ctx.closing);
    else res.writeHeader('content-type', 'application/json').end('{"status":"ready"}', ctx.closing);
  });
  app.get('/metrics', (res, req) => {
    if (metricsDigest !== null && !bearerMatches(req.getHeader('authorization'), metricsDigest)) {
      edgeError(ctx, res, E.invalidKey, 'Missing or wrong metrics token.', 'GET', '/metrics', performance.now());
      return;
    }
    let aborted = false;
    res.onAborted(() => (aborted = true));
    ctx.metricsText().then(
      (text) => {
        if (!aborted) res.cork(() => res.writeHeader('content-type', 'text/plain; version=0.0.4; charset=utf-8').end(text, ctx.closing));
      },
      () => {
        if (!aborted) res.cork(() => sendError(ctx, res, E.internal, 'Metrics could not be collected.'));
      },
    );
  });

  app.any('/v1/*', (res, req) => {
    try {
      handleV1(ctx, res, req, modelsCreated);
    } catch (err) {
      // Thrown before an exchange existed (those catch their own): a throw out of a uWS handler ends the process.
      ctx.internalError(err, null);
      try {
        sendError(ctx, res, E.internal, 'The gateway failed while handling this request.');
      } catch {
        /* already answered */
      }
    }
  });
  app.any('/admin/v1/*', (res, req) => handleAdmin(ctx, res, req));
  app.any('/*', (res, req) => {
    const method = req.getMethod().toUpperCase();
    const url = req.getUrl();
    edgeError(ctx, res, E.unknownRoute, `Unknown request URL: ${method} ${url}`, method, url, performance.now());
  });
  return app;
}

function handleV1(ctx: GatewayContext, res: HttpResponse, req: HttpRequest, modelsCreated: number): void {
  const started = performance.now();
  const method = req.getMethod().toUpperCase();
  const url = req.getUrl();
  const query = req.getQuery() ?? '';
  const authorization = req.getHeader('authorization');
  const contentLength = Number(req.getHeader('content-length') || 0);
  if (ctx.refusing) {
    edgeError(ctx, res, E.draining, 'The gateway is shutting down; retry on another instance.', method, url, started);
    return;
  }
  if (hasDotSegment(url)) {
    edgeError(ctx, res, E.invalidPath, 'The request path may not contain "." or ".." segments.', method, url, started);
    return;
  }
  const secret = authorization.length > 7 && authorization.slice(0, 7).toLowerCase() === 'bearer ' ? authorization.slice(7).trim() : '';
  if (secret === '') {
    edgeError(ctx, res, E.missingKey, 'Missing API key. Send it as "Authorization: Bearer <key>".', method, url, started);
    return;
  }
  if (secret.length > MAX_SECRET_LENGTH) {
    // Not looked up and not cached: the cache holds secrets, so its size must stay bounded.
    edgeError(ctx, res, E.invalidKey, 'Incorrect API key provided.', method, url, started);
    return;
  }
  const auth = ctx.keys.authenticate(secret);
  if (!(auth instanceof Promise) && 'error' in auth) {
    if (auth.error === 'unavailable') edgeError(ctx, res, E.storeUnavailable, 'The key store is unreachable; try again shortly.', method, url, started);
    else edgeError(ctx, res, E.invalidKey, 'Incorrect API key provided.', method, url, started);
    return;
  }
  const forward: string[] = [];
  req.forEach((k, v) => {
    if (!DROP_REQUEST_HEADERS.has(k)) forward.push(k, v);
  });
  const ex = new ProxyExchange(ctx, res, method, url, query, forward, started);
  res.onAborted(ex.onClientAborted);
  const hasBody = !(method === 'GET' || method === 'HEAD' || method === 'DELETE' || method === 'OPTIONS');

  if (!(auth instanceof Promise)) {
    // The hot path: a cached or static key, the body read as it comes.
    const key = auth.key;
    ex.key = key;
    if (!hasBody) {
      routeSafely(ctx, ex, key, EMPTY_BODY, modelsCreated);
      return;
    }
    readBody(res, contentLength, ctx.cfg.limits.max_body_bytes, (r) => {
      if (!ex.aborted && !ex.done) routeSafely(ctx, ex, key, r, modelsCreated);
    });
    return;
  }
  // A store lookup: the body waits, paused, until the key is known, so an
  // unknown key is refused without the gateway reading (or allocating) its body.
  const max = ctx.cfg.limits.max_body_bytes;
  const held = hasBody && contentLength <= max ? new HeldBody(res, contentLength, max) : null;
  auth.then(
    (r) => lookedUp(ctx, ex, r, hasBody, held, modelsCreated),
    (err: unknown) => {
      ctx.internalError(err, ex);
      if (ex.aborted || ex.done) return;
      held?.discard();
      ex.fail(E.internal, 'Authentication failed unexpectedly.');
    },
  );
}

/** The store lookup of a key answered. Runs in a promise continuation: whatever throws fails this request, not the worker. */
function lookedUp(ctx: GatewayContext, ex: ProxyExchange, r: AuthResult, hasBody: boolean, held: HeldBody | null, modelsCreated: number): void {
  try {
    // Aborted: uWS's response is gone, and with it the held body.
    if (ex.aborted || ex.done) return;
    if ('error' in r) {
      held?.discard();
      if (r.error === 'unavailable') ex.fail(E.storeUnavailable, 'The key store is unreachable; try again shortly.');
      else ex.fail(E.invalidKey, 'Incorrect API key provided.');
      return;
    }
    const key = r.key;
    ex.key = key;
    if (!hasBody) route(ctx, ex, key, EMPTY_BODY, modelsCreated);
    else if (held === null) route(ctx, ex, key, TOO_LARGE, modelsCreated);
    else
      held.read((b) => {
        if (!ex.aborted && !ex.done) routeSafely(ctx, ex, key, b, modelsCreated);
      });
  } catch (err) {
    failInternally(ctx, ex, err);
  }
}

/** A request whose handling threw: a 500 for it, a log line and a count, and the worker goes on. */
function failInternally(ctx: GatewayContext, ex: ProxyExchange, err: unknown): void {
  ctx.internalError(err, ex);
  if (!ex.aborted && !ex.done) ex.fail(E.internal, 'The gateway failed while handling this request.');
}

function routeSafely(ctx: GatewayContext, ex: ProxyExchange, key: KeyRecord, result: BodyResult, modelsCreated: number): void {
  try {
    route(ctx, ex, key, result, modelsCreated);
  } catch (err) {
    failInternally(ctx, ex, err);
  }
}

function route(ctx: GatewayContext, ex: ProxyExchange, key: KeyRecord, result: BodyResult, modelsCreated: number): void {
  if (!result.ok) {
    ex.fail(E.bodyTooLarge, `Request body exceeds ${ctx.cfg.limits.max_body_bytes} bytes.`);
    return;
  }
  const body = result.body;
  if (ex.method === 'GET' && (ex.url === '/v1/models' || ex.url.startsWith('/v1/models/'))) {
    listModels(ctx, ex, key, modelsCreated);
    return;
  }
  if (body.length === 0) {
    ex.fail(E.modelRequired, 'sluice routes /v1 requests by the "model" field of their JSON body; this request has no body.', 'model');
    return;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    ex.fail(E.invalidJson, 'We could not parse the JSON body of your request.');
    return;
  }
  if (!validateRoutable(parsed)) {
    const err = validateRoutable.errors![0]!;
    const field = err.keyword === 'required' ? (err.params as { missingProperty: string }).missingProperty : err.instancePath.slice(1);
    if (field === 'model') ex.fail(E.modelRequired, "'model' is required and must be a non-empty string.", 'model');
    else if (field === '') ex.fail(E.invalidBody, 'The request body must be a JSON object.');
    else ex.fail(E.invalidBody, `'${field}' ${err.message ?? 'is invalid'}.`, field);
    return;
  }
  const model = parsed.model;
  const r = ctx.router.route(model);
  if (r === undefined) {
    // A name the client chose: clipped in the message and the log line, never a metrics label.
    ex.requestedModel = clip(model);
    ex.fail(E.unknownModel, `The model '${ex.requestedModel}' does not exist.`, 'model');
    return;
  }
  ex.model = model;
  if (!allowsModel(key, model)) {
    ex.fail(E.modelNotAllowed, `This key may not use the model '${model}'.`, 'model');
    return;
  }
  const stream = parsed.stream === true;
  const admitted = ctx.limiter.admit(key);
  const go = (limited: Limited | null): void => {
    // Also a promise continuation (a limiter lease): a throw here must fail this request, not the worker.
    try {
      if (ex.aborted || ex.done) return;
      if (limited !== null) {
        rateLimited(ex, limited);
        return;
      }
      let out = body;
      if (stream && (ex.url === '/v1/chat/completions' || ex.url === '/v1/completions')) {
        // Usage accounting needs the upstream's usage chunk; when the client did
        // not ask for it we do, and strip it from what the client receives.
        const p = parsed as { stream_options?: { include_usage?: boolean } };
        if (p.stream_options?.include_usage !== true) {
          p.stream_options = { ...(p.stream_options ?? {}), include_usage: true };
          const json = stringifyOrNull(p);
          if (json === null) {
            ex.fail(E.invalidBody, 'The request body is nested too deeply.');
            return;
          }
          out = Buffer.from(json);
          ex.stripUsage = true;
        }
      }
      ex.forward(r, model, out, stream);
    } catch (err) {
      failInternally(ctx, ex, err);
    }
  };
  if (admitted instanceof Promise) admitted.then(go, () => go(null));
  else go(admitted);
}

function rateLimited(ex: ProxyExchange, l: Limited): void {
  const what = l.kind === 'requests' ? 'requests' : 'tokens';
  ex.fail(E.rateLimited, `Rate limit reached: ${l.limit} ${what} per minute for this key. Retry after ${l.resetS} s.`, null, [
    ['retry-after', String(l.resetS)],
    [`x-ratelimit-limit-${what}`, String(l.limit)],
    [`x-ratelimit-remaining-${what}`, '0'],
    [`x-ratelimit-reset-${what}`, `${l.resetS}s`],
  ]);
}

function listModels(ctx: GatewayContext, ex: ProxyExchange, key: KeyRecord, created: number): void {
  const names = ctx.router.modelNames().filter((n) => allowsModel(key, n));
  const entry = (id: string) => ({ id, object: 'model', created, owned_by: 'sluice' });
  if (ex.url === '/v1/models') {
    ex.json(JSON.stringify({ object: 'list', data: names.map(entry) }));
    return;
  }
  const id = decodePathSegment(ex.url.slice('/v1/models/'.length));
  if (id === null || !names.includes(id)) {
    ex.fail(E.unknownModel, `The model '${clip(id ?? ex.url.slice('/v1/models/'.length))}' does not exist.`, 'model');
    return;
  }
  ex.json(JSON.stringify(entry(id)));
}
