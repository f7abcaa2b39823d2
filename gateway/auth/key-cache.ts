// Resolves a bearer secret to a key record. Static keys from the config file
// are checked first (a map lookup by hash); store keys through a bounded LRU
// with a TTL, plus a short negative cache so a flood of bad keys cannot hammer
// the store. A cached key costs no I/O: the hot path stays synchronous.
import { sha256Hex } from './key-hash.js';
import type { KeyRecord, KeySource } from './types.js';

export type AuthResult = { key: KeyRecord } | { error: 'invalid' | 'unavailable' };

interface Entry {
  key: KeyRecord;
  hash: string;
  expires: number;
  /** Value of KeyCache.seq when the entry was last (re)inserted. */
  seq: number;
}

export interface KeyCacheOptions {
  /** Bound of the cache of known keys. */
  maxEntries: number;
  ttlMs: number;
  negativeTtlMs: number;
  /**
   * Bound of the negative cache (secrets the store does not know), kept apart
   * from maxEntries: a flood of random secrets evicts only other bad secrets,
   * never a valid key. Default 10,000.
   */
  negativeMaxEntries?: number;
}

const DEFAULTS: Required<KeyCacheOptions> = { maxEntries: 100_000, ttlMs: 60_000, negativeTtlMs: 2_000, negativeMaxEntries: 10_000 };

/** Revocations remembered per hash and per id while lookups are in flight (past it, every such lookup counts as raced). */
const REVOCATION_MEMORY = 1024;

// LRU through Map order (insertion order: the first entry is the least
// recently used). A hit re-inserts its entry (delete+set) only once half the
// capacity's worth of insertions has been made since its own, so a busy key
// costs a get and a compare per request. The price of that shortcut: a key in
// use is sure to outlive maxEntries/2 new keys, where a strict LRU would keep
// it for maxEntries.
//
// Revocation race: a lookup started before a revocation can resolve with the
// record as it was (live) after evictHash/evictId ran, when there was nothing
// cached to evict yet. Caching that answer would bring the revoked key back
// for the TTL. So every revocation (and clear()) bumps revSeq and, while
// lookups are in flight, notes its hash or id with that number; a lookup
// compares against the revSeq it started with, and if its hash or key was
// revoked (or the cache cleared) meanwhile it neither caches nor trusts the
// answer: it asks the store once more, after the revocation.
export class KeyCache {
  private readonly entries = new Map<string, Entry>();
  /** Secrets the store did not know: secret -> expiry. Insertion order is eviction order. */
  private readonly negative = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<AuthResult>>();
  private seq = 0;
  private readonly refreshAfter: number;
  private readonly opts: Required<KeyCacheOptions>;
  private revSeq = 0;
  private readonly revokedHashes = new Map<string, number>();
  private readonly revokedIds = new Map<string, number>();
  /** revSeq of the last clear() or of the newest revocation dropped from the maps above: lookups started before it count as raced. */
  private uncertainSeq = 0;

  constructor(
    private readonly staticKeys: ReadonlyMap<string, KeyRecord>,
    private readonly source: KeySource | null,
    opts: KeyCacheOptions = DEFAULTS,
  ) {
    this.opts = { ...DEFAULTS, ...opts };
    this.refreshAfter = Math.ceil(this.opts.maxEntries / 2);
  }

  /** Synchronous when the answer is cached (or the key is static), a promise otherwise. */
  authenticate(secret: string, now = Date.now()): AuthResult | Promise<AuthResult> {
    const e = this.entries.get(secret);
    if (e !== undefined) {
      if (e.expires > now) {
        if (this.seq - e.seq >= this.refreshAfter) this.touch(secret, e);
        return live(e.key, now) ? { key: e.key } : { error: 'invalid' };
      }
      this.entries.delete(secret);
    }
    const bad = this.negative.get(secret);
    if (bad !== undefined) {
      if (bad > now) return { error: 'invalid' };
      this.negative.delete(secret);
    }
    const hash = sha256Hex(secret);
    const st = this.staticKeys.get(hash);
    if (st !== undefined) {
      this.remember(secret, hash, st, now + 365 * 86_400_000);
      return { key: st };
    }
    if (this.source === null) {
      this.rememberBad(secret, now + this.opts.negativeTtlMs);
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
    const first = this.revSeq;
    try {
      for (let retried = false; ; retried = true) {
        const start = this.revSeq;
        let key: KeyRecord | null;
        try {
          key = await this.source!.lookup(hash);
        } catch {
          // Store unreachable: a key we knew keeps working until the store is
          // back, unless it was revoked (or the cache cleared) since.
          const now = Date.now();
          if (stale !== undefined && live(stale.key, now) && !this.raced(first, hash, stale.key.id)) {
            this.remember(secret, hash, stale.key, now + Math.min(this.opts.ttlMs, 5_000));
            return { key: stale.key };
          }
          return { error: 'unavailable' };
        }
        const now = Date.now();
        if (this.raced(start, hash, key?.id)) {
          // The answer may predate the revocation: ask again. A second race
          // answers this once, uncached (as for a request just before it).
          if (!retried) continue;
        } else if (key !== null) this.remember(secret, hash, key, now + this.opts.ttlMs);
        else this.rememberBad(secret, now + this.opts.negativeTtlMs);
        return key !== null && live(key, now) ? { key } : { error: 'invalid' };
      }
    } finally {
      this.inflight.delete(secret);
      if (this.inflight.size === 0) this.forgetRevocations();
    }
  }

  /** Whether the hash or key id was revoked, or the cache cleared, since revSeq was `start`. */
  private raced(start: number, hash: string, id: string | undefined): boolean {
    if (this.revSeq === start) return false;
    if (this.uncertainSeq > start) return true;
    if ((this.revokedHashes.get(hash) ?? 0) > start) return true;
    return id !== undefined && (this.revokedIds.get(id) ?? 0) > start;
  }

  private noteRevocation(map: Map<string, number>, k: string): void {
    const seq = ++this.revSeq;
    // Only a lookup in flight can race; with none, there is nothing to note.
    if (this.inflight.size === 0) return;
    map.delete(k);
    if (map.size >= REVOCATION_MEMORY) {
      const [oldest, s] = map.entries().next().value as [string, number];
      map.delete(oldest);
      if (s > this.uncertainSeq) this.uncertainSeq = s;
    }
    map.set(k, seq);
  }

  private forgetRevocations(): void {
    if (this.revokedHashes.size > 0) this.revokedHashes.clear();
    if (this.revokedIds.size > 0) this.revokedIds.clear();
  }

  private remember(secret: string, hash: string, key: KeyRecord, expires: number): void {
    if (!this.entries.delete(secret) && this.entries.size >= this.opts.maxEntries) {
      const lru = this.entries.keys().next().value as string;
      this.entries.delete(lru);
    }
    this.entries.set(secret, { key, hash, expires, seq: ++this.seq });
  }

  private rememberBad(secret: string, expires: number): void {
    if (!this.negative.delete(secret) && this.negative.size >= this.opts.negativeMaxEntries) {
      const oldest = this.negative.keys().next().value as string;
      this.negative.delete(oldest);
    }
    this.negative.set(secret, expires);
  }

  /** Moves an entry to the most recently used end. */
  private touch(secret: string, e: Entry): void {
    this.entries.delete(secret);
    e.seq = ++this.seq;
    this.entries.set(secret, e);
  }

  /** Drops every cached entry for a key hash (revocation); a lookup of it in flight is not cached. */
  evictHash(hash: string): void {
    this.noteRevocation(this.revokedHashes, hash);
    for (const [secret, e] of this.entries) if (e.hash === hash) this.entries.delete(secret);
  }

  /** Drops every cached entry for a key id (revocation by id); a lookup of it in flight is not cached. */
  evictId(id: string): void {
    this.noteRevocation(this.revokedIds, id);
    for (const [secret, e] of this.entries) if (e.key.id === id) this.entries.delete(secret);
  }

  /** Forgets everything (e.g. the store resynced after a reconnect); lookups in flight are not cached. */
  clear(): void {
    this.uncertainSeq = ++this.revSeq;
    this.forgetRevocations();
    this.entries.clear();
    this.negative.clear();
  }
}

function live(k: KeyRecord, now: number): boolean {
  return k.revokedAt === undefined && (k.expiresAt === undefined || k.expiresAt > now);
}
