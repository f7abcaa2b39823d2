// Operator tokens (the gateway's admin API and /metrics, the orchestrator daemon) compared in constant time: both sides
// are hashed first, so neither the length nor a prefix of the token leaks
// through timing.
import { createHash, timingSafeEqual } from 'node:crypto';

export const tokenDigest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** The bearer token of an Authorization header, trimmed ('' when there is none). */
export function bearerToken(authorization: string): string {
  return authorization.slice(0, 7).toLowerCase() === 'bearer ' ? authorization.slice(7).trim() : '';
}

/** Whether an Authorization header carries the token whose tokenDigest is `expected`. */
export function bearerMatches(authorization: string, expected: Buffer): boolean {
  const given = bearerToken(authorization);
  return given !== '' && timingSafeEqual(tokenDigest(given), expected);
}
