// Resolves a bearer secret to a key record. Static keys from the config file
// are checked first (a map lookup by hash); store keys through a bounded LRU
// with a TTL, plus a short negative cache so a flood of bad keys cannot hammer
// the store. A cached key costs no I/O: the hot path stays synchronous.
import { sha256Hex } from './key-hash.js';
import type { KeyRecord, KeySource } from './types.js';

export type AuthResult = { key: KeyRecord } | { error: 'invalid' | 'unavailable' };

interface Entry {
  key: KeyRecord | null;
  hash: string;
  expires: number;
  /** Value of KeyCache.seq when the entry was last (re)inserted. */
  seq: number;
}

export interface KeyCacheOptions {
  maxEntries: number;
  ttlMs: number;
  negativeTtlMs: number;
}

// LRU through Map order (insertion order: the first entry is the least
// recently used). A hit re-inserts its entry (delete+set) only once half the
// capacity's worth of insertions has been made since its own, so a busy key
// costs a get and a compare per request. The price of that shortcut: a key in
// use is sure to outlive maxEntries/2 new keys, where a strict LRU would keep
// it for maxEntries.
export class KeyCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<AuthResult>>();
  private seq = 0;
  private readonly refreshAfter: number;

  constructor(
    private readonly staticKeys: ReadonlyMap<string, KeyRecord>,
    private readonly source: KeySource | null,
    private readonly opts: KeyCacheOptions = { maxEntries: 100_000, ttlMs: 60_000, negativeTtlMs: 2_000 },
  ) {
    this.refreshAfter = Math.ceil(opts.maxEntries / 2);
  }

  /** Synchronous when the answer is cached (or the key is static), a promise otherwise. */
  authenticate(secret: string, now = Date.now()): AuthResult | Promise<AuthResult> {
    const e = this.entries.get(secret);
    if (e !== undefined) {
      if (e.expires > now) {
        if (this.seq - e.seq >= this.refreshAfter) this.touch(secret, e);
        return e.key !== null && live(e.key, now) ? { key: e.key } : { error: 'invalid' };
      }
      this.entries.delete(secret);
    }
    const hash = sha256Hex(secret);
    const st = this.staticKeys.get(hash);
    if (st !== undefined) {
      this.remember(secret, hash, st, now + 365 * 86_400_000);
      return { key: st };
    }
    if (this.source === null) {
      this.remember(secret, hash, null, now + this.opts.negativeTtlMs);
      return { error: 'invalid' };
    }
    let p = this.inflight.get(secret);
    if (p === undefined) {
      p = this.fetch(secret, hash, e);
      this.inflight.set(secret, p);
    }
    return p;
  }

  private async fetch(secret: string, hash: string, stale: Entry | undefined): Promise<AuthResult> {
    try {
      const key = await this.source!.lookup(hash);
      const now = Date.now();
      this.remember(secret, hash, key, now + (key ? this.opts.ttlMs : this.opts.negativeTtlMs));
      return key !== null && live(key, now) ? { key } : { error: 'invalid' };
    } catch {
      // Store unreachable: a key we knew keeps working until the store is back.
      if (stale?.key && live(stale.key, Date.now())) {
        this.remember(secret, hash, stale.key, Date.now() + Math.min(this.opts.ttlMs, 5_000));
        return { key: stale.key };
      }
      return { error: 'unavailable' };
    } finally {
      this.inflight.delete(secret);
    }
  }

  private remember(secret: string, hash: string, key: KeyRecord | null, expires: number): void {
    if (!this.entries.delete(secret) && this.entries.size >= this.opts.maxEntries) {
      const lru = this.entries.keys().next().value as string;
      this.entries.delete(lru);
    }
    this.entries.set(secret, { key, hash, expires, seq: ++this.seq });
  }

  /** Moves an entry to the most recently used end. */
  private touch(secret: string, e: Entry): void {
    this.entries.delete(secret);
    e.seq = ++this.seq;
    this.entries.set(secret, e);
  }

  /** Drops every cached entry for a key hash (revocation). */
  evictHash(hash: string): void {
    for (const [secret, e] of this.entries) if (e.hash === hash) this.entries.delete(secret);
  }

  /** Drops every cached entry for a key id (revocation by id). */
  evictId(id: string): void {
    for (const [secret, e] of this.entries) if (e.key?.id === id) this.entries.delete(secret);
  }

  clear(): void {
    this.entries.clear();
  }
}

function live(k: KeyRecord, now: number): boolean {
  return k.revokedAt === undefined && (k.expiresAt === undefined || k.expiresAt > now);
}
