// /admin/v1/*: key administration behind `Authorization: Bearer <admin token>`
// (constant-time comparison). No token configured: the admin API is off (404).
import { Ajv } from 'ajv';
import { statusLine, type HttpRequest, type HttpResponse } from '../../common/uws.js';
import { errorBody } from '../../common/openai-error.js';
import { readBody } from '../../common/uws-body.js';
import { E, type ErrorKind } from '../errors.js';
import type { GatewayContext } from './context.js';
import type { StoredKey } from '../store/types.js';
import { decodePathSegment } from './paths.js';
import { bearerMatches, tokenDigest } from '../../common/bearer-token.js';

const ajv = new Ajv({ allErrors: false });
const validateNewKey = ajv.compile<{ name: string; models?: string[]; rpm?: number; tpm?: number; expires_at?: number }>({
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    models: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1 } },
    // Bounded so that what is stored is what was sent (2^53 and beyond are rounded).
    rpm: { type: 'integer', minimum: 1, maximum: 1e12 },
    tpm: { type: 'integer', minimum: 1, maximum: 1e12 },
    expires_at: { type: 'integer', minimum: 0, maximum: 253402300799, description: 'epoch seconds, at most the end of year 9999' },
  },
});

/** The public view of a key: never the secret, never its hash. */
export function keyView(k: StoredKey): Record<string, unknown> {
  return {
    id: k.id,
    object: 'key',
    name: k.name,
    models: k.models,
    rpm: k.rpm ?? null,
    tpm: k.tpm ?? null,
    created_at: Math.floor(k.createdAt / 1000),
    expires_at: k.expiresAt === undefined ? null : Math.floor(k.expiresAt / 1000),
    revoked_at: k.revokedAt === undefined ? null : Math.floor(k.revokedAt / 1000),
  };
}

export function handleAdmin(ctx: GatewayContext, res: HttpResponse, req: HttpRequest): void {
  const started = performance.now();
  const method = req.getMethod().toUpperCase();
  const url = req.getUrl();
  const tokenEnv = ctx.cfg.admin?.token_env;
  const token = tokenEnv ? process.env[tokenEnv] : undefined;
  const send = (status: number, body: string, headers: Array<[string, string]> = []): void => {
    res.cork(() => {
      res.writeStatus(statusLine(status)).writeHeader('content-type', 'application/json');
      for (const [k, v] of headers) res.writeHeader(k, v);
      res.end(body, ctx.closing);
    });
    // Counted and logged like every answer: an admin-token brute force shows in /metrics and the log.
    ctx.edgeAnswered(method, url, status, started);
  };
  const fail = (kind: ErrorKind, message: string, param: string | null = null): void => send(kind.status, errorBody(message, kind.type, kind.code, param));
  if (!token) {
    fail(E.unknownRoute, 'The admin API is off: no admin token is configured (admin.token_env).');
    return;
  }
  if (!bearerMatches(req.getHeader('authorization'), tokenDigest(token))) {
    fail(E.invalidKey, 'Missing or wrong admin token.');
    return;
  }
  const store = ctx.store;
  if (store === null) {
    fail(E.unknownRoute, 'The admin API needs a key store (store.kind sqlite or redis).');
    return;
  }
  const query = new URLSearchParams(req.getQuery() ?? '');
  const contentLength = Number(req.getHeader('content-length') || 0);
  let aborted = false;
  res.onAborted(() => (aborted = true));
  const reply = (status: number, body: unknown): void => {
    if (!aborted) send(status, JSON.stringify(body));
  };
  const failed = (err: unknown): void => {
    ctx.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'admin request failed');
    if (!aborted) fail(E.storeUnavailable, 'The key store is unreachable; try again shortly.');
  };
  const keyMatch = /^\/admin\/v1\/keys\/([^/]+)$/.exec(url);

  if (url === '/admin/v1/keys' && method === 'POST') {
    readBody(res, contentLength, 65536, (r) => {
      if (aborted) return;
      if (!r.ok) return fail(E.bodyTooLarge, 'Request body too large.');
      let body: unknown;
      try {
        body = JSON.parse(r.body.toString('utf8'));
      } catch {
        return fail(E.invalidJson, 'We could not parse the JSON body of your request.');
      }
      if (!validateNewKey(body)) {
        const e = validateNewKey.errors![0]!;
        const field =
          e.keyword === 'required' ? (e.params as { missingProperty: string }).missingProperty
          : e.keyword === 'additionalProperties' ? (e.params as { additionalProperty: string }).additionalProperty
          : e.instancePath.slice(1).split('/')[0] ?? '';
        return fail(E.invalidBody, `'${field}' ${e.keyword === 'additionalProperties' ? 'is not a known field' : (e.message ?? 'is invalid')}.`, field || null);
      }
      if (body.expires_at !== undefined && body.expires_at * 1000 <= Date.now()) {
        return fail(E.invalidBody, "'expires_at' must be in the future.", 'expires_at');
      }
      store
        .createKey({ name: body.name, models: body.models, rpm: body.rpm, tpm: body.tpm, expiresAt: body.expires_at === undefined ? undefined : body.expires_at * 1000 })
        .then(({ key, secret }) => reply(201, { ...keyView(key), secret }), failed);
    });
    return;
  }
  if (url === '/admin/v1/keys' && method === 'GET') {
    store.listKeys().then((keys) => reply(200, { object: 'list', data: keys.map(keyView) }), failed);
    return;
  }
  const keyId = keyMatch ? decodePathSegment(keyMatch[1]!) : null;
  if (keyMatch && keyId === null && (method === 'GET' || method === 'DELETE')) {
    fail(E.unknownRoute, 'No such key.', 'id');
    return;
  }
  if (keyId !== null && method === 'GET') {
    store.getKey(keyId).then((k) => (k ? reply(200, keyView(k)) : !aborted && fail(E.unknownRoute, 'No such key.', 'id')), failed);
    return;
  }
  if (keyId !== null && method === 'DELETE') {
    store.revokeKey(keyId).then((k) => {
      if (!k) return !aborted && fail(E.unknownRoute, 'No such key.', 'id');
      ctx.keys.evictHash(k.sha256);
      ctx.broadcastRevocation({ id: k.id, sha256: k.sha256 });
      reply(200, keyView(k));
    }, failed);
    return;
  }
  if (url === '/admin/v1/usage' && method === 'GET') {
    // Pending in-process counts first, so the answer includes this worker's latest.
    ctx.usage
      .flush()
      .then(() => store.usage(query.get('key_id') ?? undefined))
      .then(
        (rows) =>
          reply(200, {
            object: 'list',
            data: rows.map((r) => ({
              key_id: r.keyId,
              model: r.model,
              requests: r.requests,
              estimated_requests: r.estimatedRequests,
              prompt_tokens: r.promptTokens,
              completion_tokens: r.completionTokens,
            })),
          }),
        failed,
      );
    return;
  }
  fail(E.unknownRoute, `Unknown admin URL: ${method} ${url}`);
}
