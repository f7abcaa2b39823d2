// A throwaway self-signed certificate from the openssl CLI (Debian's openssl),
// valid one day for the given subjectAltName ("IP:127.0.0.1,DNS:localhost").
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function makeCert(san: string): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cert-'));
  try {
    execFileSync('/usr/bin/openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', `subjectAltName=${san}`, '-keyout', join(dir, 'k'), '-out', join(dir, 'c'),
    ], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'k')), cert: readFileSync(join(dir, 'c')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
