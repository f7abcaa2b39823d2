// Redis key store: shared by many gateway instances.
//   sluice:key:<id>          hash  id name sha256 models(JSON) rpm tpm expiresAt revokedAt createdAt
//   sluice:keyhash:<sha256>  string -> id
//   sluice:keys              set of ids
//   sluice:usage:<keyId>     hash  "<model>|requests" "<model>|prompt_tokens" "<model>|completion_tokens"
//   sluice:usagekeys         set of key ids with usage
//   sluice:rl:<keyId>:<kind>:<windowId>  integer, expires WINDOW_TTL_S after its last change
// Revocations are PUBLISHed on `sluice:revocations` and received on a second
// (subscriber) connection. Commands fail fast while Redis is down (no offline
// queue, no retries, a command timeout); both connections reconnect forever.
import { Redis, type RedisOptions } from 'ioredis';
import { randomBytes } from 'node:crypto';
import type { KeyRecord } from '../auth/types.js';
import { newStoredKey, toInt, toKeyRecord } from './common.js';
import type { KeyStore, NewKey, RevocationListener, StoredKey, UsageDelta, UsageRow } from './types.js';

export const PREFIX = 'sluice:';
export const REVOCATION_CHANNEL = 'sluice:revocations';
const WINDOW_TTL_S = 120;
const USAGE_FIELDS = ['requests', 'prompt_tokens', 'completion_tokens'] as const;

const LEASE_LUA = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local g = limit - used
if g > want then g = want end
if g <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], g)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return g`;

const CHARGE_LUA = `
local n = redis.call('INCRBY', KEYS[1], tonumber(ARGV[1]))
if n < 0 then redis.call('SET', KEYS[1], 0) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return n`;

const REVOKE_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
redis.call('HSETNX', KEYS[1], 'revokedAt', ARGV[1])
return redis.call('HGETALL', KEYS[1])`;

interface ScriptCommands {
  sluiceLease(key: string, want: number, limit: number, ttl: number): Promise<number>;
  sluiceCharge(key: string, n: number, ttl: number): Promise<number>;
  sluiceRevoke(key: string, now: number): Promise<string[] | null>;
}

export interface RedisStoreOptions {
  /** Per-command timeout in ms (default 2000). */
  commandTimeoutMs?: number;
  /** Connect timeout in ms (default 2000). */
  connectTimeoutMs?: number;
  /** Max reconnect backoff in ms (default 1000). */
  maxBackoffMs?: number;
  /** Called with connection errors (default: ignored; they never throw). */
  onError?: (err: Error) => void;
}

function keyFromHash(h: Record<string, string>): StoredKey | null {
  if (!h.id) return null;
  const k: StoredKey = {
    id: h.id,
    name: h.name ?? '',
    models: h.models ? (JSON.parse(h.models) as string[]) : ['*'],
    sha256: h.sha256 ?? '',
    createdAt: Number(h.createdAt ?? 0),
  };
  if (h.rpm !== undefined && h.rpm !== '') k.rpm = Number(h.rpm);
  if (h.tpm !== undefined && h.tpm !== '') k.tpm = Number(h.tpm);
  if (h.expiresAt !== undefined && h.expiresAt !== '') k.expiresAt = Number(h.expiresAt);
  if (h.revokedAt !== undefined && h.revokedAt !== '') k.revokedAt = Number(h.revokedAt);
  return k;
}

function pairsToHash(a: string[]): Record<string, string> {
  const h: Record<string, string> = {};
  for (let i = 0; i + 1 < a.length; i += 2) h[a[i]!] = a[i + 1]!;
  return h;
}

export class RedisKeyStore implements KeyStore {
  readonly kind = 'redis' as const;
  /** The command connection (exposed for tests and diagnostics). */
  readonly redis: Redis;
  private readonly sub: Redis;
    private readonly listeners: RevocationListener[] = [];
  private readonly origin = randomBytes(8).toString('hex');
  private readonly subscribed: Promise<unknown>;
  private closed = false;
  private everReady = false;
  private readonly firstConnectMs: number;

  constructor(url: string, opts: RedisStoreOptions = {}) {
    const maxBackoff = opts.maxBackoffMs ?? 1000;
    const base: RedisOptions = {
      connectTimeout: opts.connectTimeoutMs ?? 2000,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), maxBackoff),
      lazyConnect: false,
    };
    const onError = (err: Error) => {
      if (opts.onError) opts.onError(err);
    };
    this.redis = new Redis(url, {
      ...base,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs ?? 2000,
      enableReadyCheck: true,
    });
    this.redis.on('error', onError);
    this.redis.once('ready', () => (this.everReady = true));
    this.firstConnectMs = opts.connectTimeoutMs ?? 2000;
    this.redis.defineCommand('sluiceLease', { numberOfKeys: 1, lua: LEASE_LUA });
    this.redis.defineCommand('sluiceCharge', { numberOfKeys: 1, lua: CHARGE_LUA });
    this.redis.defineCommand('sluiceRevoke', { numberOfKeys: 1, lua: REVOKE_LUA });

    // The subscriber waits for Redis (offline queue on) and resubscribes after reconnecting.
    this.sub = new Redis(url, { ...base, enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: true });
    this.sub.on('error', onError);
    this.sub.on('message', (channel: string, message: string) => {
      if (channel !== REVOCATION_CHANNEL) return;
      let ev: { id?: unknown; sha256?: unknown; origin?: unknown };
      try {
        ev = JSON.parse(message) as typeof ev;
      } catch {
        return;
      }
      if (ev.origin === this.origin) return; // already delivered locally
      if (typeof ev.id === 'string' && typeof ev.sha256 === 'string') this.emit(ev.id, ev.sha256);
    });
    this.subscribed = this.sub.subscribe(REVOCATION_CHANNEL);
    this.subscribed.catch(() => {});
  }

  /**
   * The command connection. Commands issued before the very first connection
   * wait for it (up to the connect timeout); afterwards they fail fast while
   * Redis is down.
   */
  private async c(): Promise<Redis> {
    if (!this.everReady && this.redis.status !== 'ready' && !this.closed) {
      await this.readyWithin(waitReady(this.redis), this.firstConnectMs).catch(() => {});
    }
    return this.redis;
  }

  private async cmds(): Promise<ScriptCommands> {
    return (await this.c()) as unknown as ScriptCommands;
  }

  private async readyWithin(p: Promise<unknown>, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`redis not reachable within ${ms} ms`)), ms);
    });
    try {
      await Promise.race([p, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private emit(id: string, sha256: string): void {
    for (const l of this.listeners.slice()) {
      try {
        l({ id, sha256 });
      } catch {
        /* a listener's failure is its own */
      }
    }
  }

  async lookup(sha256Hex: string): Promise<KeyRecord | null> {
    const id = await (await this.c()).get(PREFIX + 'keyhash:' + sha256Hex);
    if (id === null) return null;
    const k = keyFromHash(await (await this.c()).hgetall(PREFIX + 'key:' + id));
    return k ? toKeyRecord(k) : null;
  }

  async createKey(input: NewKey): Promise<{ key: StoredKey; secret: string }> {
    const { key, secret } = newStoredKey(input);
    const fields: Record<string, string> = {
      id: key.id,
      name: key.name,
      sha256: key.sha256,
      models: JSON.stringify(key.models),
      createdAt: String(key.createdAt),
    };
    if (key.rpm !== undefined) fields.rpm = String(key.rpm);
    if (key.tpm !== undefined) fields.tpm = String(key.tpm);
    if (key.expiresAt !== undefined) fields.expiresAt = String(key.expiresAt);
    const res = await (await this.c())
      .multi()
      .hset(PREFIX + 'key:' + key.id, fields)
      .set(PREFIX + 'keyhash:' + key.sha256, key.id)
      .sadd(PREFIX + 'keys', key.id)
      .exec();
    throwIfFailed(res);
    return { key, secret };
  }

  async listKeys(): Promise<StoredKey[]> {
    const ids = await (await this.c()).smembers(PREFIX + 'keys');
    if (ids.length === 0) return [];
    const p = (await this.c()).pipeline();
    for (const id of ids) p.hgetall(PREFIX + 'key:' + id);
    const res = throwIfFailed(await p.exec());
    const keys: StoredKey[] = [];
    for (const [, h] of res) {
      const k = keyFromHash(h as Record<string, string>);
      if (k) keys.push(k);
    }
    return keys.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async getKey(id: string): Promise<StoredKey | null> {
    return keyFromHash(await (await this.c()).hgetall(PREFIX + 'key:' + id));
  }

  async revokeKey(id: string): Promise<StoredKey | null> {
    const r = await (await this.cmds()).sluiceRevoke(PREFIX + 'key:' + id, Date.now());
    if (!r) return null;
    const key = keyFromHash(pairsToHash(r));
    if (!key) return null;
    this.emit(key.id, key.sha256);
    await (await this.c()).publish(REVOCATION_CHANNEL, JSON.stringify({ id: key.id, sha256: key.sha256, origin: this.origin }));
    return key;
  }

  async addUsage(deltas: UsageDelta[]): Promise<void> {
    if (deltas.length === 0) return;
    const m = (await this.c()).multi();
    const ids = new Set<string>();
    for (const d of deltas) {
      const h = PREFIX + 'usage:' + d.keyId;
      ids.add(d.keyId);
      const req = toInt(d.requests);
      const pt = toInt(d.promptTokens);
      const ct = toInt(d.completionTokens);
      if (req) m.hincrby(h, d.model + '|requests', req);
      if (pt) m.hincrby(h, d.model + '|prompt_tokens', pt);
      if (ct) m.hincrby(h, d.model + '|completion_tokens', ct);
      if (!req && !pt && !ct) m.hincrby(h, d.model + '|requests', 0);
    }
    m.sadd(PREFIX + 'usagekeys', ...ids);
    throwIfFailed(await m.exec());
  }

  async usage(keyId?: string): Promise<UsageRow[]> {
    const ids = keyId === undefined ? (await (await this.c()).smembers(PREFIX + 'usagekeys')).sort() : [keyId];
    if (ids.length === 0) return [];
    const p = (await this.c()).pipeline();
    for (const id of ids) p.hgetall(PREFIX + 'usage:' + id);
    const res = throwIfFailed(await p.exec());
    const rows: UsageRow[] = [];
    ids.forEach((id, i) => {
      const h = res[i]![1] as Record<string, string>;
      const byModel = new Map<string, UsageRow>();
      for (const [field, val] of Object.entries(h)) {
        const bar = field.lastIndexOf('|');
        if (bar < 0) continue;
        const model = field.slice(0, bar);
        const what = field.slice(bar + 1) as (typeof USAGE_FIELDS)[number];
        let row = byModel.get(model);
        if (!row) byModel.set(model, (row = { keyId: id, model, requests: 0, promptTokens: 0, completionTokens: 0 }));
        const n = Number(val);
        if (what === 'requests') row.requests = n;
        else if (what === 'prompt_tokens') row.promptTokens = n;
        else if (what === 'completion_tokens') row.completionTokens = n;
      }
      rows.push(...[...byModel.values()].sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0)));
    });
    return rows;
  }

  private windowKey(keyId: string, kind: string, windowId: number): string {
    return `${PREFIX}rl:${keyId}:${kind}:${toInt(windowId)}`;
  }

  async lease(keyId: string, kind: 'req' | 'tok', windowId: number, want: number, limit: number): Promise<number> {
    want = toInt(want);
    limit = toInt(limit);
    if (want <= 0 || limit <= 0) return 0;
    return Number(await (await this.cmds()).sluiceLease(this.windowKey(keyId, kind, windowId), want, limit, WINDOW_TTL_S));
  }

  async charge(keyId: string, kind: 'req' | 'tok', windowId: number, n: number): Promise<void> {
    n = toInt(n);
    if (n === 0) return;
    await (await this.cmds()).sluiceCharge(this.windowKey(keyId, kind, windowId), n, WINDOW_TTL_S);
  }

  async windowUsed(keyId: string, kind: 'req' | 'tok', windowId: number): Promise<number> {
    return Number((await (await this.c()).get(this.windowKey(keyId, kind, windowId))) ?? 0);
  }

  onRevoked(listener: RevocationListener): void {
    this.listeners.push(listener);
  }

  async ready(timeoutMs?: number): Promise<void> {
    if (this.closed) throw new Error('redis store is closed');
    const wait = Promise.all([waitReady(this.redis), this.subscribed]).then(() => undefined);
    if (timeoutMs === undefined) return wait;
    await this.readyWithin(wait, timeoutMs);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.redis, this.sub].map((c) => quit(c)));
  }
}

function waitReady(c: Redis): Promise<void> {
  if (c.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onReady = () => {
      c.off('end', onEnd);
      resolve();
    };
    const onEnd = () => {
      c.off('ready', onReady);
      reject(new Error('redis connection closed'));
    };
    c.once('ready', onReady);
    c.once('end', onEnd);
  });
}

async function quit(c: Redis): Promise<void> {
  if (c.status === 'end') return;
  if (c.status !== 'ready') {
    c.disconnect();
    return;
  }
  try {
    await Promise.race([c.quit(), new Promise((r) => setTimeout(r, 1000).unref())]);
  } catch {
    /* ignore */
  }
  c.disconnect();
}

function throwIfFailed(res: [Error | null, unknown][] | null): [Error | null, unknown][] {
  if (res === null) throw new Error('redis transaction aborted');
  for (const [err] of res) if (err) throw err;
  return res;
}
