import { randomBytes } from 'node:crypto';
import type { KeyRecord } from '../auth/types.js';
import { sha256Hex } from '../auth/key-hash.js';
import type { NewKey, StoredKey } from './types.js';

/** 'sk-' + base64url of 32 random bytes (43 chars). */
export function newSecret(): string {
  return 'sk-' + randomBytes(32).toString('base64url');
}

export function newKeyId(): string {
  return 'key_' + randomBytes(9).toString('base64url');
}

/** Non-negative integer or undefined; throws on nonsense. */
export function optInt(v: number | undefined, what: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new TypeError(`${what} must be a non-negative number`);
  return Math.floor(v);
}

export function validateNewKey(input: { name: string; models?: string[] }): void {
  if (typeof input.name !== 'string' || input.name.length === 0) throw new TypeError('name is required');
  if (input.models !== undefined && (!Array.isArray(input.models) || input.models.some((m) => typeof m !== 'string')))
    throw new TypeError('models must be an array of strings');
}

/** Integer count for leases/charges; NaN and negatives become 0 where asked. */
export function toInt(n: number): number {
  return Number.isFinite(n) ? Math.trunc(n) : 0;
}

/** Validates a new key's fields and makes its secret and record (the store only persists the record). */
export function newStoredKey(input: NewKey): { key: StoredKey; secret: string } {
  validateNewKey(input);
  const secret = newSecret();
  const key: StoredKey = {
    id: newKeyId(),
    name: input.name,
    models: input.models ?? ['*'],
    sha256: sha256Hex(secret),
    createdAt: Date.now(),
  };
  const rpm = optInt(input.rpm, 'rpm');
  const tpm = optInt(input.tpm, 'tpm');
  const expiresAt = optInt(input.expiresAt, 'expiresAt');
  if (rpm !== undefined) key.rpm = rpm;
  if (tpm !== undefined) key.tpm = tpm;
  if (expiresAt !== undefined) key.expiresAt = expiresAt;
  return { key, secret };
}

/** What the hot path gets from a stored key: everything but its hash and creation time. */
export function toKeyRecord(k: StoredKey): KeyRecord {
  const { sha256: _s, createdAt: _c, ...rec } = k;
  return rec;
}

/**
 * A store write that certainly did not take place: refused before it was sent,
 * or rolled back. The caller may retry it freely, even with other contents.
 * Any other error from a write leaves its outcome unknown (it may still apply).
 */
export class NotAppliedError extends Error {
  constructor(
    message: string,
    /** not_sent: never reached the store; expired: refused because its id may have been forgotten (see USAGE_BATCH_MAX_AGE_MS). */
    readonly reason: 'not_sent' | 'expired' = 'not_sent',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'NotAppliedError';
  }
}

/** How long a store remembers a usage batch id (Redis: the marker's TTL). */
export const USAGE_BATCH_TTL_S = 3600;
/**
 * A batch first sent longer ago than this is refused (NotAppliedError 'expired')
 * rather than applied: its id may be forgotten by the time it runs. The margin
 * below the TTL absorbs clock skew between a gateway and the store.
 */
export const USAGE_BATCH_MAX_AGE_MS = (USAGE_BATCH_TTL_S - 600) * 1000;
