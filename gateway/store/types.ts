// The key store: keys (hashed), usage counters and rate-limit windows, kept in
// SQLite (one host, several processes) or Redis (many gateway instances).
import type { KeyRecord, KeySource } from '../auth/types.js';
import { RedisKeyStore, type RedisStoreOptions } from './redis.js';
import { SqliteKeyStore, type SqliteStoreOptions } from './sqlite.js';

export interface NewKey {
  name: string;
  models?: string[];
  rpm?: number;
  tpm?: number;
  expiresAt?: number;
}

export interface StoredKey extends KeyRecord {
  sha256: string;
  createdAt: number;
}

export interface UsageDelta {
  keyId: string;
  model: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  /** Requests among `requests` whose tokens the gateway estimated (see README, "Usage"). */
  estimatedRequests?: number;
}

export interface UsageRow extends UsageDelta {
  estimatedRequests: number;
}

/** Identifies a usage batch so that the store applies it at most once however often it is sent. */
export interface UsageBatch {
  /** Unique per batch; a retry carries the same id and the same deltas. */
  id: string;
  /** When the first attempt that may have reached the store was made (ms since the epoch). */
  firstSentAt: number;
}

export type RevocationListener = (ev: { id: string; sha256: string }) => void;

export interface KeyStore extends KeySource {
  readonly kind: 'sqlite' | 'redis';
  /** Creates a key: secret = 'sk-' + base64url of 32 random bytes (crypto.randomBytes); only its SHA-256 is stored. */
  createKey(input: NewKey): Promise<{ key: StoredKey; secret: string }>;
  listKeys(): Promise<StoredKey[]>;
  getKey(id: string): Promise<StoredKey | null>;
  /** Sets revokedAt (idempotent); returns the key, or null if unknown. Publishes the revocation (redis). */
  revokeKey(id: string): Promise<StoredKey | null>;
  /**
   * Adds usage counters, the whole batch atomically. With `batch`, at most once per batch id: a
   * batch already applied is a no-op that resolves. Throws NotAppliedError when the write certainly
   * did not take place; after any other error its outcome is unknown: retry it with the same id
   * and deltas (a retry of a batch first sent longer than USAGE_BATCH_MAX_AGE_MS ago is refused).
   */
  addUsage(deltas: UsageDelta[], batch?: UsageBatch): Promise<void>;
  /** Totals per key and model, optionally for one key. */
  usage(keyId?: string): Promise<UsageRow[]>;
  /**
   * Rate-limit lease: atomically grants up to `want` units from the budget `limit` of the window
   * `windowId` (e.g. the minute number) for key+kind, and returns how many were granted (0..want).
   * `used` in the window never exceeds `limit` through leases. Exactly once: units of an earlier
   * lease whose reply was lost (a timeout) are given back to the window by the next lease there.
   */
  lease(keyId: string, kind: 'req' | 'tok', windowId: number, want: number, limit: number): Promise<number>;
  /**
   * Adds `n` units of usage to a window without a limit check (for tokens counted after the fact).
   * A negative n refunds (used never goes below 0). Exactly once: a charge that fails is retried
   * by the store itself (do not retry it) until it applies, or its window is over; the promise
   * reports the first attempt.
   */
  charge(keyId: string, kind: 'req' | 'tok', windowId: number, n: number): Promise<void>;
  /** Units used so far in a window (0 if none). */
  windowUsed(keyId: string, kind: 'req' | 'tok', windowId: number): Promise<number>;
  /** Called for every revocation made by ANY instance (redis pub/sub). For sqlite: only revocations made through this store object. */
  onRevoked(listener: RevocationListener): void;
  /**
   * Called when revocations may have been missed and cannot be recovered one by one (redis: the
   * subscriber was away longer than the revocation log reaches back, Redis lost its data, or the
   * catch-up read kept failing): the listener must forget every cached key. Never called by sqlite
   * (the worker's poll of revokedSince covers its own gaps).
   */
  onResync(listener: () => void): void;
  /** Resolves when the store is reachable (redis: connected). With timeoutMs, rejects if not reachable by then. */
  ready(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export type OpenStoreConfig = { kind: 'sqlite'; path: string } | { kind: 'redis'; url: string };

/** Opens a store (does not wait for it: call ready()). */
export function openStore(cfg: OpenStoreConfig, opts: SqliteStoreOptions & RedisStoreOptions = {}): KeyStore {
  if (cfg.kind === 'sqlite') return new SqliteKeyStore(cfg.path, opts);
  if (cfg.kind === 'redis') return new RedisKeyStore(cfg.url, opts);
  throw new Error(`unknown store kind ${(cfg as { kind: string }).kind}`);
}
