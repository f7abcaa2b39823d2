// SQLite key store: one file, WAL, shared by the gateway's cluster workers.
// Every write that must be atomic across processes runs in an IMMEDIATE
// transaction (takes the write lock up front; busy_timeout makes others wait).
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { KeyRecord } from '../auth/types.js';
import { NotAppliedError, newStoredKey, toInt, toKeyRecord } from './common.js';
import type { KeyStore, NewKey, RevocationListener, StoredKey, UsageBatch, UsageDelta, UsageRow } from './types.js';

/** Ordered migrations; migration i brings the schema to user_version i+1. Append only. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE keys (
     id          TEXT PRIMARY KEY,
     name        TEXT NOT NULL,
     sha256      TEXT NOT NULL UNIQUE,
     models      TEXT NOT NULL,
     rpm         INTEGER,
     tpm         INTEGER,
     expires_at  INTEGER,
     revoked_at  INTEGER,
     created_at  INTEGER NOT NULL
   );
   CREATE TABLE usage (
     key_id            TEXT NOT NULL,
     model             TEXT NOT NULL,
     requests          INTEGER NOT NULL DEFAULT 0,
     prompt_tokens     INTEGER NOT NULL DEFAULT 0,
     completion_tokens INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (key_id, model)
   );
   CREATE TABLE rate_windows (
     key_id     TEXT NOT NULL,
     kind       TEXT NOT NULL,
     window_id  INTEGER NOT NULL,
     used       INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (key_id, kind, window_id)
   );
   CREATE INDEX rate_windows_created ON rate_windows (created_at);`,
  // Workers poll for revocations made by other processes: only revoked keys are indexed.
  `CREATE INDEX keys_revoked ON keys (revoked_at) WHERE revoked_at IS NOT NULL;`,
  // Requests whose tokens the gateway estimated (the upstream reported none).
  `ALTER TABLE usage ADD COLUMN estimated_requests INTEGER NOT NULL DEFAULT 0;`,
];

const USAGE_COLUMNS = 'key_id, model, requests, prompt_tokens, completion_tokens, estimated_requests';

/** Windows older than this are dropped (windows are expected to be about a minute long). */
const WINDOW_RETENTION_MS = 5 * 60_000;
const SWEEP_EVERY_MS = 30_000;

interface KeyRow {
  id: string;
  name: string;
  sha256: string;
  models: string;
  rpm: number | null;
  tpm: number | null;
  expires_at: number | null;
  revoked_at: number | null;
  created_at: number;
}

function toKey(r: KeyRow): StoredKey {
  const k: StoredKey = { id: r.id, name: r.name, models: JSON.parse(r.models) as string[], sha256: r.sha256, createdAt: r.created_at };
  if (r.rpm !== null) k.rpm = r.rpm;
  if (r.tpm !== null) k.tpm = r.tpm;
  if (r.expires_at !== null) k.expiresAt = r.expires_at;
  if (r.revoked_at !== null) k.revokedAt = r.revoked_at;
  return k;
}

export interface SqliteStoreOptions {
  /** busy_timeout in ms (default 5000). */
  busyTimeoutMs?: number;
}

export function migrate(db: Database.Database): number {
  const run = db.transaction(() => {
    let v = db.pragma('user_version', { simple: true }) as number;
    for (; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }
    return v;
  });
  return run.immediate();
}

export class SqliteKeyStore implements KeyStore {
  readonly kind = 'sqlite' as const;
  readonly path: string;
  private readonly db: Database.Database;
  private readonly listeners: RevocationListener[] = [];
  private lastSweep = 0;
  private readonly st;
  private readonly leaseTx: (keyId: string, kind: string, windowId: number, want: number, limit: number, now: number) => number;
  private readonly chargeTx: (keyId: string, kind: string, windowId: number, n: number, now: number) => void;
  private readonly usageTx: (deltas: UsageDelta[]) => void;
  private readonly revokeTx: (id: string, now: number) => KeyRow | undefined;

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    this.path = path === ':memory:' ? path : resolve(path);
    if (this.path !== ':memory:') mkdirSync(dirname(this.path), { recursive: true });
    const db = (this.db = new Database(this.path));
    try {
      db.pragma(`busy_timeout = ${Math.floor(opts.busyTimeoutMs ?? 5000)}`);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      migrate(db);
    } catch (err) {
      db.close();
      throw err;
    }
    this.st = {
      insertKey: db.prepare(
        `INSERT INTO keys (id, name, sha256, models, rpm, tpm, expires_at, revoked_at, created_at)
         VALUES (@id, @name, @sha256, @models, @rpm, @tpm, @expires_at, NULL, @created_at)`,
      ),
      byHash: db.prepare<[string], KeyRow>('SELECT * FROM keys WHERE sha256 = ?'),
      byId: db.prepare<[string], KeyRow>('SELECT * FROM keys WHERE id = ?'),
      all: db.prepare<[], KeyRow>('SELECT * FROM keys ORDER BY created_at, id'),
      revokedSince: db.prepare<[number], { id: string; sha256: string }>(
        'SELECT id, sha256 FROM keys WHERE revoked_at IS NOT NULL AND revoked_at >= ?',
      ),
      revoke: db.prepare('UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      addUsage: db.prepare(
        `INSERT INTO usage (key_id, model, requests, prompt_tokens, completion_tokens, estimated_requests) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (key_id, model) DO UPDATE SET
           requests = requests + excluded.requests,
           prompt_tokens = prompt_tokens + excluded.prompt_tokens,
           completion_tokens = completion_tokens + excluded.completion_tokens,
           estimated_requests = estimated_requests + excluded.estimated_requests`,
      ),
      usageAll: db.prepare(`SELECT ${USAGE_COLUMNS} FROM usage ORDER BY key_id, model`),
      usageOne: db.prepare(`SELECT ${USAGE_COLUMNS} FROM usage WHERE key_id = ? ORDER BY model`),
      windowGet: db.prepare<[string, string, number], { used: number }>(
        'SELECT used FROM rate_windows WHERE key_id = ? AND kind = ? AND window_id = ?',
      ),
      windowAdd: db.prepare(
        `INSERT INTO rate_windows (key_id, kind, window_id, used, created_at) VALUES (?, ?, ?, max(?, 0), ?)
         ON CONFLICT (key_id, kind, window_id) DO UPDATE SET used = max(used + excluded.used, 0)`,
      ),
      windowCharge: db.prepare(
        `INSERT INTO rate_windows (key_id, kind, window_id, used, created_at) VALUES (?, ?, ?, max(?, 0), ?)
         ON CONFLICT (key_id, kind, window_id) DO UPDATE SET used = max(used + ?, 0)`,
      ),
      sweep: db.prepare('DELETE FROM rate_windows WHERE created_at < ?'),
    };
    const st = this.st;
    this.leaseTx = db.transaction((keyId: string, kind: string, windowId: number, want: number, limit: number, now: number) => {
      const used = st.windowGet.get(keyId, kind, windowId)?.used ?? 0;
      const grant = Math.max(0, Math.min(want, limit - used));
      if (grant > 0) st.windowAdd.run(keyId, kind, windowId, grant, now);
      return grant;
    }).immediate;
    this.chargeTx = db.transaction((keyId: string, kind: string, windowId: number, n: number, now: number) => {
      st.windowCharge.run(keyId, kind, windowId, n, now, n);
    }).immediate;
    this.usageTx = db.transaction((deltas: UsageDelta[]) => {
      for (const d of deltas)
        st.addUsage.run(d.keyId, d.model, toInt(d.requests), toInt(d.promptTokens), toInt(d.completionTokens), toInt(d.estimatedRequests ?? 0));
    }).immediate;
    this.revokeTx = db.transaction((id: string, now: number) => {
      st.revoke.run(now, id);
      return st.byId.get(id);
    }).immediate;
  }

  async lookup(sha256Hex: string): Promise<KeyRecord | null> {
    const r = this.st.byHash.get(sha256Hex);
    return r ? toKeyRecord(toKey(r)) : null;
  }

  async createKey(input: NewKey): Promise<{ key: StoredKey; secret: string }> {
    const { key, secret } = newStoredKey(input);
    this.st.insertKey.run({
      id: key.id,
      name: key.name,
      sha256: key.sha256,
      models: JSON.stringify(key.models),
      rpm: key.rpm ?? null,
      tpm: key.tpm ?? null,
      expires_at: key.expiresAt ?? null,
      created_at: key.createdAt,
    });
    return { key, secret };
  }

  async listKeys(): Promise<StoredKey[]> {
    return this.st.all.all().map(toKey);
  }

  /**
   * Keys revoked at or after `since` (ms), by any process using the file. An
   * index lookup, not a scan: gateway workers call it twice a second.
   */
  revokedSince(since: number): Array<{ id: string; sha256: string }> {
    return this.st.revokedSince.all(since);
  }

  async getKey(id: string): Promise<StoredKey | null> {
    const r = this.st.byId.get(id);
    return r ? toKey(r) : null;
  }

  async revokeKey(id: string): Promise<StoredKey | null> {
    const r = this.revokeTx(id, Date.now());
    if (!r) return null;
    const key = toKey(r);
    for (const l of this.listeners.slice()) {
      try {
        l({ id: key.id, sha256: key.sha256 });
      } catch {
        /* a listener's failure is its own */
      }
    }
    return key;
  }

  /** A local transaction: applied once or rolled back, so `batch` needs no bookkeeping here. */
  async addUsage(deltas: UsageDelta[], _batch?: UsageBatch): Promise<void> {
    if (deltas.length === 0) return;
    try {
      this.usageTx(deltas);
    } catch (err) {
      // Rolled back (busy past busy_timeout, disk full, closed): nothing of the batch was written.
      throw new NotAppliedError(`usage not written: ${err instanceof Error ? err.message : String(err)}`, 'not_sent', { cause: err });
    }
  }

  async usage(keyId?: string): Promise<UsageRow[]> {
    const rows = (keyId === undefined ? this.st.usageAll.all() : this.st.usageOne.all(keyId)) as {
      key_id: string;
      model: string;
      requests: number;
      prompt_tokens: number;
      completion_tokens: number;
      estimated_requests: number;
    }[];
    return rows.map((r) => ({
      keyId: r.key_id,
      model: r.model,
      requests: r.requests,
      promptTokens: r.prompt_tokens,
      completionTokens: r.completion_tokens,
      estimatedRequests: r.estimated_requests,
    }));
  }

  async lease(keyId: string, kind: 'req' | 'tok', windowId: number, want: number, limit: number): Promise<number> {
    want = toInt(want);
    limit = toInt(limit);
    if (want <= 0 || limit <= 0) return 0;
    const now = Date.now();
    this.maybeSweep(now);
    return this.leaseTx(keyId, kind, toInt(windowId), want, limit, now);
  }

  async charge(keyId: string, kind: 'req' | 'tok', windowId: number, n: number): Promise<void> {
    n = toInt(n);
    if (n === 0) return;
    const now = Date.now();
    this.maybeSweep(now);
    this.chargeTx(keyId, kind, toInt(windowId), n, now);
  }

  async windowUsed(keyId: string, kind: 'req' | 'tok', windowId: number): Promise<number> {
    return this.st.windowGet.get(keyId, kind, toInt(windowId))?.used ?? 0;
  }

  private maybeSweep(now: number): void {
    if (now - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = now;
    try {
      this.st.sweep.run(now - WINDOW_RETENTION_MS);
    } catch {
      /* busy: another process will sweep, or we will next time */
    }
  }

  onRevoked(listener: RevocationListener): void {
    this.listeners.push(listener);
  }

  /** Never called: revocations by other processes are found by polling revokedSince, which covers its own gaps. */
  onResync(_listener: () => void): void {}

  async ready(): Promise<void> {
    if (!this.db.open) throw new Error('sqlite store is closed');
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
