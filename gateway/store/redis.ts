// Redis key store: shared by many gateway instances.
//   sluice:key:<id>          hash  id name sha256 models(JSON) rpm tpm expiresAt revokedAt createdAt
//   sluice:keyhash:<sha256>  string -> id
//   sluice:keys              set of ids
//   sluice:usage:<keyId>     hash  "<model>|requests" "<model>|prompt_tokens" "<model>|completion_tokens" "<model>|estimated_requests"
//   sluice:usagekeys         set of key ids with usage
//   sluice:usagebatch:<id>   "1" for USAGE_BATCH_TTL_S: the batch was applied (a retry is a no-op)
//   sluice:rl:<keyId>:<kind>:<windowId>   integer, expires WINDOW_TTL_S after its last change
//   sluice:rlog:<keyId>:<kind>:<windowId> hash  lease id -> units granted ('x': void), charge id -> 'c';
//                                          same TTL: what makes leases and charges exactly once
//   sluice:revocations:seq   integer, one more per revocation
//   sluice:revoked           sorted set  {"id","sha256"} by seq, the last revocationLogSize of them
//   sluice:revocations:trimmed  the highest seq trimmed from sluice:revoked
//   sluice:revocations:epoch    random, set once: a new one means Redis lost its data
// Revocations are PUBLISHed on `sluice:revocations` (with their seq) and received on a second
// (subscriber) connection; after every (re)subscription the store reads the log from the last seq
// it saw, so a revocation published while it was away is not lost. Commands fail fast while Redis
// is down (no offline queue, no retries, a command timeout); both connections reconnect forever.
//
// Exactly once: a command that timed out on the client may still run in Redis (later, or twice:
// ioredis resends unanswered commands after a reconnect). So every write that counts carries an
// id, and the script that applies it records the id in the same atomic step.
import { Redis, type RedisOptions } from 'ioredis';
import { randomBytes } from 'node:crypto';
import type { KeyRecord } from '../auth/types.js';
import { NotAppliedError, USAGE_BATCH_MAX_AGE_MS, USAGE_BATCH_TTL_S, newStoredKey, toInt, toKeyRecord } from './common.js';
import type { KeyStore, NewKey, RevocationListener, StoredKey, UsageBatch, UsageDelta, UsageRow } from './types.js';

export const PREFIX = 'sluice:';
export const REVOCATION_CHANNEL = 'sluice:revocations';
const WINDOW_TTL_S = 120;
const REVOCATION_LOG_SIZE = 10_000;
const K = {
  usageKeys: PREFIX + 'usagekeys',
  revSeq: PREFIX + 'revocations:seq',
  revLog: PREFIX + 'revoked',
  revTrimmed: PREFIX + 'revocations:trimmed',
  revEpoch: PREFIX + 'revocations:epoch',
};

// KEYS[1] batch marker, KEYS[2] usagekeys, KEYS[2+i] usage hash of delta i.
// ARGV[1] marker TTL, ARGV[2] first sent at (ms), ARGV[3] max age (ms); then 6 per delta:
// keyId model requests prompt completion estimated. Returns 1 applied, 0 already applied, -1 too old.
const USAGE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if now - tonumber(ARGV[2]) > tonumber(ARGV[3]) then return -1 end
redis.call('SET', KEYS[1], '1', 'EX', tonumber(ARGV[1]))
for i = 3, #KEYS do
  local a = 4 + (i - 3) * 6
  local h = KEYS[i]
  local m = ARGV[a + 1]
  redis.call('HINCRBY', h, m .. '|requests', ARGV[a + 2])
  if ARGV[a + 3] ~= '0' then redis.call('HINCRBY', h, m .. '|prompt_tokens', ARGV[a + 3]) end
  if ARGV[a + 4] ~= '0' then redis.call('HINCRBY', h, m .. '|completion_tokens', ARGV[a + 4]) end
  if ARGV[a + 5] ~= '0' then redis.call('HINCRBY', h, m .. '|estimated_requests', ARGV[a + 5]) end
  redis.call('SADD', KEYS[2], ARGV[a])
end
return 1`;

// KEYS[1] window counter, KEYS[2] window log. ARGV[1] want, ARGV[2] limit, ARGV[3] TTL,
// ARGV[4] this lease's id, ARGV[5..] ids of this store's earlier leases on the window whose
// reply was lost: what they took is refunded, and one that has not run yet is voided ('x'), so
// it takes nothing if it ever does. A lease id already in the log (ioredis resent it) replays.
const LEASE_LUA = `
local ttl = tonumber(ARGV[3])
local refund = 0
for i = 5, #ARGV do
  local v = redis.call('HGET', KEYS[2], ARGV[i])
  if v ~= 'x' then
    if v then refund = refund + tonumber(v) end
    redis.call('HSET', KEYS[2], ARGV[i], 'x')
    redis.call('EXPIRE', KEYS[2], ttl)
  end
end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if refund > 0 then
  used = used - refund
  if used < 0 then used = 0 end
  redis.call('SET', KEYS[1], used, 'EX', ttl)
end
local seen = redis.call('HGET', KEYS[2], ARGV[4])
if seen == 'x' then return 0 end
if seen then return tonumber(seen) end
local g = tonumber(ARGV[2]) - used
if g > tonumber(ARGV[1]) then g = tonumber(ARGV[1]) end
if g < 0 then g = 0 end
if g > 0 then redis.call('SET', KEYS[1], used + g, 'EX', ttl) end
redis.call('HSET', KEYS[2], ARGV[4], g)
redis.call('EXPIRE', KEYS[2], ttl)
return g`;

// KEYS[1] window counter, KEYS[2] window log. ARGV[1] n, ARGV[2] TTL, ARGV[3] charge id.
const CHARGE_LUA = `
if redis.call('HSETNX', KEYS[2], ARGV[3], 'c') == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
local n = redis.call('INCRBY', KEYS[1], tonumber(ARGV[1]))
if n < 0 then redis.call('SET', KEYS[1], 0) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1`;

// KEYS[1] key hash, KEYS[2] seq, KEYS[3] log, KEYS[4] trimmed. ARGV[1] now, ARGV[2] log size,
// ARGV[3] channel, ARGV[4] origin. Logged and published in one step: a subscriber that catches
// up from the log after a reconnect sees every revocation it could have missed.
const REVOKE_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
redis.call('HSETNX', KEYS[1], 'revokedAt', ARGV[1])
local id = redis.call('HGET', KEYS[1], 'id')
local sha = redis.call('HGET', KEYS[1], 'sha256')
local seq = redis.call('INCR', KEYS[2])
local ev = '{"id":' .. cjson.encode(id) .. ',"sha256":' .. cjson.encode(sha)
redis.call('ZADD', KEYS[3], seq, ev .. '}')
local over = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[2])
if over > 0 then
  local gone = redis.call('ZRANGE', KEYS[3], over - 1, over - 1, 'WITHSCORES')
  redis.call('SET', KEYS[4], gone[2])
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, over - 1)
end
redis.call('PUBLISH', ARGV[3], ev .. ',"origin":' .. cjson.encode(ARGV[4]) .. ',"seq":' .. seq .. '}')
return redis.call('HGETALL', KEYS[1])`;

// KEYS: seq, log, trimmed, epoch. ARGV[1] the last seq seen ('' for none), ARGV[2] a new epoch.
const REVOCATIONS_SINCE_LUA = `
redis.call('SET', KEYS[4], ARGV[2], 'NX')
local entries = {}
if ARGV[1] ~= '' then entries = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf', 'WITHSCORES') end
return {redis.call('GET', KEYS[4]), tonumber(redis.call('GET', KEYS[1]) or '0'), tonumber(redis.call('GET', KEYS[3]) or '0'), entries}`;

interface ScriptCommands {
  sluiceUsage(...args: (string | number)[]): Promise<number>;
  sluiceLease(counter: string, log: string, want: number, limit: number, ttl: number, id: string, ...lost: string[]): Promise<number>;
  sluiceCharge(counter: string, log: string, n: number, ttl: number, id: string): Promise<number>;
  sluiceRevoke(key: string, seq: string, log: string, trimmed: string, now: number, size: number, channel: string, origin: string): Promise<string[] | null>;
  sluiceRevocationsSince(seq: string, log: string, trimmed: string, epoch: string, since: string, newEpoch: string): Promise<[string, number, number, string[]]>;
}

export interface RedisStoreOptions {
  /** Per-command timeout in ms (default 2000). */
  commandTimeoutMs?: number;
  /** Connect timeout in ms (default 2000). */
  connectTimeoutMs?: number;
  /** Max reconnect backoff in ms (default 1000). */
  maxBackoffMs?: number;
  /** Revocations kept for subscribers catching up after a reconnect (default 10,000). */
  revocationLogSize?: number;
  /** Called with connection errors, and with charges or leases given up (default: ignored; they never throw). */
  onError?: (err: Error) => void;
}

/** Errors after which the command certainly did not run: it was never written to a connection. */
function neverSent(err: unknown): boolean {
  const m = err instanceof Error ? err.message : '';
  return m.startsWith("Stream isn't writeable") || m === 'Connection is closed.';
}

/** A lease or charge whose outcome is unknown, kept to settle it exactly once. */
interface PendingCharge {
  counter: string;
  log: string;
  n: number;
  id: string;
  /** Given up after this (ms): the window's counter has expired by then anyway. */
  until: number;
}

/** Leases whose replies were lost, per window; bounded (see LOST_LEASES_MAX). */
const LOST_LEASES_MAX = 64;
const LOST_WINDOWS_MAX = 10_000;
const PENDING_CHARGES_MAX = 10_000;
const CHARGE_RETRY_MS = 250;
const CATCH_UP_RETRIES_BEFORE_RESYNC = 3;

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
  /** The subscriber connection (exposed for tests and diagnostics). */
  readonly sub: Redis;
  private readonly listeners: RevocationListener[] = [];
  private readonly resyncListeners: Array<() => void> = [];
  private readonly origin = randomBytes(8).toString('hex');
  private opSeq = 0;
  private readonly subscribed: Promise<void>;
  private closed = false;
  private everReady = false;
  private readonly firstConnectMs: number;
  private readonly onError: (err: Error) => void;
  private readonly revocationLogSize: number;
  /** Window counter key -> ids of this store's leases there whose reply was lost. */
  private readonly lostLeases = new Map<string, { windowId: number; ids: string[] }>();
  private lostPrunedFor = -Infinity;
  private readonly pendingCharges: PendingCharge[] = [];
  private chargeTimer: NodeJS.Timeout | null = null;
  private chargeRetrying = false;
  // Revocation catch-up: the seq of the last revocation known to have been seen, the log's epoch,
  // and whether the current subscription has caught up (only then do messages advance lastSeq).
  private lastSeq: number | null = null;
  private epoch: string | null = null;
  private synced = false;
  private subscriptions = 0;
  /** Bumped whenever the subscriber connection closes: a catch-up of an older subscription stops. */
  private subGen = 0;

  constructor(url: string, opts: RedisStoreOptions = {}) {
    const maxBackoff = opts.maxBackoffMs ?? 1000;
    const base: RedisOptions = {
      connectTimeout: opts.connectTimeoutMs ?? 2000,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), maxBackoff),
      lazyConnect: false,
    };
    this.onError = (err: Error) => {
      if (opts.onError) opts.onError(err);
    };
    this.revocationLogSize = Math.max(1, Math.floor(opts.revocationLogSize ?? REVOCATION_LOG_SIZE));
    this.redis = new Redis(url, {
      ...base,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs ?? 2000,
      enableReadyCheck: true,
    });
    this.redis.on('error', this.onError);
    this.redis.once('ready', () => (this.everReady = true));
    this.firstConnectMs = opts.connectTimeoutMs ?? 2000;
    this.redis.defineCommand('sluiceUsage', { lua: USAGE_LUA });
    this.redis.defineCommand('sluiceLease', { numberOfKeys: 2, lua: LEASE_LUA });
    this.redis.defineCommand('sluiceCharge', { numberOfKeys: 2, lua: CHARGE_LUA });
    this.redis.defineCommand('sluiceRevoke', { numberOfKeys: 4, lua: REVOKE_LUA });
    this.redis.defineCommand('sluiceRevocationsSince', { numberOfKeys: 4, lua: REVOCATIONS_SINCE_LUA });

    // The subscriber waits for Redis (offline queue on). It subscribes itself on every 'ready'
    // (not ioredis' autoResubscribe) so that it knows when a subscription is live again and can
    // read what was published while it was away.
    this.sub = new Redis(url, { ...base, enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: false });
    this.sub.on('error', this.onError);
    this.sub.on('message', (channel: string, message: string) => {
      if (channel !== REVOCATION_CHANNEL) return;
      let ev: { id?: unknown; sha256?: unknown; origin?: unknown; seq?: unknown };
      try {
        ev = JSON.parse(message) as typeof ev;
      } catch {
        return;
      }
      // Messages arrive in seq order on one subscription; before it has caught up, only the catch-up moves lastSeq.
      if (this.synced && typeof ev.seq === 'number' && this.lastSeq !== null && ev.seq > this.lastSeq) this.lastSeq = ev.seq;
      if (ev.origin === this.origin) return; // already delivered locally
      if (typeof ev.id === 'string' && typeof ev.sha256 === 'string') this.emit(ev.id, ev.sha256);
    });
    let firstSubscription!: () => void;
    this.subscribed = new Promise((resolve) => (firstSubscription = resolve));
    this.sub.on('ready', () => {
      const gen = this.subGen;
      this.sub.subscribe(REVOCATION_CHANNEL).then(
        () => {
          if (gen !== this.subGen || this.closed) return;
          this.subscriptions++;
          firstSubscription();
          void this.catchUp(gen);
        },
        () => undefined, // the connection dropped again: its next 'ready' subscribes
      );
    });
    this.sub.on('close', () => {
      this.synced = false;
      this.subGen++;
    });
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

  /** Unique across stores (random origin) without a random draw per call. */
  private nextId(): string {
    return this.origin + (++this.opSeq).toString(36);
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

  private resync(): void {
    for (const l of this.resyncListeners.slice()) {
      try {
        l();
      } catch {
        /* a listener's failure is its own */
      }
    }
  }

  /**
   * After a subscription is live: reads the revocations logged since the last seq seen and emits
   * them. The first subscription only learns the seq (nothing can have been missed before it).
   * When what was missed cannot be told, the resync listeners are called.
   */
  private async catchUp(gen: number): Promise<void> {
    const again = this.subscriptions > 1;
    let failures = 0;
    let resynced = false;
    while (!this.closed && gen === this.subGen) {
      try {
        const since = again && this.lastSeq !== null ? String(this.lastSeq) : '';
        const [epoch, seq, trimmed, entries] = await (
          await this.cmds()
        ).sluiceRevocationsSince(K.revSeq, K.revLog, K.revTrimmed, K.revEpoch, since, randomBytes(8).toString('hex'));
        const last = this.lastSeq;
        for (let i = 0; i + 1 < entries.length; i += 2) {
          try {
            const ev = JSON.parse(entries[i]!) as { id?: unknown; sha256?: unknown };
            if (typeof ev.id === 'string' && typeof ev.sha256 === 'string') this.emit(ev.id, ev.sha256);
          } catch {
            /* not ours */
          }
        }
        const lost =
          again &&
          (last === null || // never caught up before: no seq to start from
            (this.epoch !== null && epoch !== this.epoch) || // Redis lost its data
            Number(seq) < last || // likewise (the counter went back)
            Number(trimmed) > last); // the log no longer reaches back to our seq
        this.epoch = epoch;
        if (this.lastSeq === null || Number(seq) > this.lastSeq || lost) this.lastSeq = Number(seq);
        if (lost && !resynced) this.resync();
        if (gen === this.subGen) this.synced = true;
        return;
      } catch {
        failures++;
        if (again && failures === CATCH_UP_RETRIES_BEFORE_RESYNC && !resynced) {
          resynced = true;
          this.resync();
        }
        await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** failures, 1000)).unref());
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
    const r = await (
      await this.cmds()
    ).sluiceRevoke(PREFIX + 'key:' + id, K.revSeq, K.revLog, K.revTrimmed, Date.now(), this.revocationLogSize, REVOCATION_CHANNEL, this.origin);
    if (!r) return null;
    const key = keyFromHash(pairsToHash(r));
    if (!key) return null;
    this.emit(key.id, key.sha256);
    return key;
  }

  async addUsage(deltas: UsageDelta[], batch?: UsageBatch): Promise<void> {
    if (deltas.length === 0) return;
    const b = batch ?? { id: this.nextId(), firstSentAt: Date.now() };
    const keys: string[] = [PREFIX + 'usagebatch:' + b.id, K.usageKeys];
    const args: (string | number)[] = [USAGE_BATCH_TTL_S, Math.floor(b.firstSentAt), USAGE_BATCH_MAX_AGE_MS];
    for (const d of deltas) {
      keys.push(PREFIX + 'usage:' + d.keyId);
      args.push(d.keyId, d.model, toInt(d.requests), toInt(d.promptTokens), toInt(d.completionTokens), toInt(d.estimatedRequests ?? 0));
    }
    let r: number;
    try {
      r = Number(await (await this.cmds()).sluiceUsage(keys.length, ...keys, ...args));
    } catch (err) {
      if (neverSent(err)) throw new NotAppliedError(`usage not written: ${(err as Error).message}`, 'not_sent', { cause: err });
      throw err;
    }
    if (r === -1)
      throw new NotAppliedError(`usage batch ${b.id} refused: first sent more than ${USAGE_BATCH_MAX_AGE_MS / 1000} s ago, it may have been applied already`, 'expired');
  }

  async usage(keyId?: string): Promise<UsageRow[]> {
    const ids = keyId === undefined ? (await (await this.c()).smembers(K.usageKeys)).sort() : [keyId];
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
        const what = field.slice(bar + 1);
        let row = byModel.get(model);
        if (!row) byModel.set(model, (row = { keyId: id, model, requests: 0, promptTokens: 0, completionTokens: 0, estimatedRequests: 0 }));
        const n = Number(val);
        if (what === 'requests') row.requests = n;
        else if (what === 'prompt_tokens') row.promptTokens = n;
        else if (what === 'completion_tokens') row.completionTokens = n;
        else if (what === 'estimated_requests') row.estimatedRequests = n;
      }
      rows.push(...[...byModel.values()].sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0)));
    });
    return rows;
  }

  private windowKey(keyId: string, kind: string, windowId: number): string {
    return `${PREFIX}rl:${keyId}:${kind}:${toInt(windowId)}`;
  }

  private windowLog(keyId: string, kind: string, windowId: number): string {
    return `${PREFIX}rlog:${keyId}:${kind}:${toInt(windowId)}`;
  }

  async lease(keyId: string, kind: 'req' | 'tok', windowId: number, want: number, limit: number): Promise<number> {
    want = toInt(want);
    limit = toInt(limit);
    if (want <= 0 || limit <= 0) return 0;
    const counter = this.windowKey(keyId, kind, windowId);
    const id = this.nextId();
    if (this.lostLeases.size !== 0) this.pruneLost(toInt(windowId));
    // Healthy: nothing lost, one EVALSHA. Concurrent leases may both carry the same lost ids: the
    // script refunds each once (it voids them as it goes).
    const lost = this.lostLeases.size === 0 ? undefined : this.lostLeases.get(counter)?.ids.slice();
    try {
      const g = Number(
        await (await this.cmds()).sluiceLease(counter, this.windowLog(keyId, kind, windowId), want, limit, WINDOW_TTL_S, id, ...(lost ?? [])),
      );
      if (lost !== undefined) this.settleLost(counter, lost);
      return g;
    } catch (err) {
      if (!neverSent(err)) this.rememberLost(counter, toInt(windowId), id);
      throw err;
    }
  }

  private rememberLost(counter: string, windowId: number, id: string): void {
    let e = this.lostLeases.get(counter);
    if (e === undefined) {
      if (this.lostLeases.size >= LOST_WINDOWS_MAX) {
        // Oldest first (insertion order): a window long over needs no refund.
        for (const [k] of this.lostLeases) {
          this.lostLeases.delete(k);
          if (this.lostLeases.size < LOST_WINDOWS_MAX / 2) break;
        }
      }
      this.lostLeases.set(counter, (e = { windowId, ids: [] }));
    }
    e.ids.push(id);
    if (e.ids.length > LOST_LEASES_MAX) {
      e.ids.shift();
      this.onError(new Error(`rate-limit lease: more than ${LOST_LEASES_MAX} lost replies on ${counter}; the oldest stays counted in its window`));
    }
  }

  /** Lost leases of windows before the previous one need no refund: their windows are over. */
  private pruneLost(windowId: number): void {
    if (windowId <= this.lostPrunedFor) return;
    this.lostPrunedFor = windowId;
    for (const [k, e] of this.lostLeases) if (e.windowId < windowId - 1) this.lostLeases.delete(k);
  }

  private settleLost(counter: string, ids: string[]): void {
    const e = this.lostLeases.get(counter);
    if (e === undefined) return;
    e.ids = e.ids.filter((x) => !ids.includes(x));
    if (e.ids.length === 0) this.lostLeases.delete(counter);
  }

  async charge(keyId: string, kind: 'req' | 'tok', windowId: number, n: number): Promise<void> {
    n = toInt(n);
    if (n === 0) return;
    const op: PendingCharge = {
      counter: this.windowKey(keyId, kind, windowId),
      log: this.windowLog(keyId, kind, windowId),
      n,
      id: this.nextId(),
      until: Date.now() + WINDOW_TTL_S * 1000,
    };
    try {
      await (await this.cmds()).sluiceCharge(op.counter, op.log, op.n, WINDOW_TTL_S, op.id);
    } catch (err) {
      this.queueCharge(op);
      throw err;
    }
  }

  /** A charge that failed: retried with its id (so it applies once) until it does or its window is gone. */
  private queueCharge(op: PendingCharge): void {
    if (this.closed) return;
    this.pendingCharges.push(op);
    if (this.pendingCharges.length > PENDING_CHARGES_MAX) {
      const gone = this.pendingCharges.shift()!;
      this.onError(new Error(`rate-limit charge of ${gone.n} on ${gone.counter} given up: more than ${PENDING_CHARGES_MAX} charges waiting for Redis`));
    }
    if (this.chargeTimer === null) {
      this.chargeTimer = setInterval(() => void this.retryCharges(), CHARGE_RETRY_MS);
      this.chargeTimer.unref();
    }
  }

  private async retryCharges(): Promise<void> {
    if (this.chargeRetrying) return;
    this.chargeRetrying = true;
    try {
      while (this.pendingCharges.length > 0 && !this.closed) {
        const op = this.pendingCharges[0]!;
        if (Date.now() > op.until) {
          this.pendingCharges.shift();
          this.onError(new Error(`rate-limit charge of ${op.n} on ${op.counter} given up: Redis unreachable until its window was over`));
          continue;
        }
        try {
          await (await this.cmds()).sluiceCharge(op.counter, op.log, op.n, WINDOW_TTL_S, op.id);
        } catch {
          return; // in order: the next tick tries again from this one
        }
        this.pendingCharges.shift();
      }
      if (this.chargeTimer !== null) clearInterval(this.chargeTimer);
      this.chargeTimer = null;
    } finally {
      this.chargeRetrying = false;
    }
  }

  async windowUsed(keyId: string, kind: 'req' | 'tok', windowId: number): Promise<number> {
    return Number((await (await this.c()).get(this.windowKey(keyId, kind, windowId))) ?? 0);
  }

  onRevoked(listener: RevocationListener): void {
    this.listeners.push(listener);
  }

  onResync(listener: () => void): void {
    this.resyncListeners.push(listener);
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
    if (this.chargeTimer !== null) clearInterval(this.chargeTimer);
    this.chargeTimer = null;
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
