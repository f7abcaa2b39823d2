import { randomBytes } from 'node:crypto';
import { createHash } from 'node:crypto';

/** 'sk-' + base64url of 32 random bytes (43 chars). */
export function newSecret(): string {
  return 'sk-' + randomBytes(32).toString('base64url');
}

export function newKeyId(): string {
  return 'key_' + randomBytes(9).toString('base64url');
}

export function sha256Hex(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
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
