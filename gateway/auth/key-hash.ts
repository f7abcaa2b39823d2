// How a key's secret is stored and looked up: only its SHA-256, in hex. One
// definition for the key cache, the stores and the CLI.
import { createHash } from 'node:crypto';

export function sha256Hex(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}
