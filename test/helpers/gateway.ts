// Starts real `sluice gateway` processes (primary + workers) on loopback port 0.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { sha256Hex } from '../../gateway/auth/key-hash.js';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { stringify } from 'yaml';
import type { Test } from 'tap';
import { loopbackEndpoints, spawnCli, type RunningProcess } from './sink.js';

export interface GatewayHandle extends RunningProcess {
  port: number;
  origin: string;
  /** Base URL ending in /v1. */
  url: string;
  configPath: string;
  /** Worker pids (children of the primary). */
  workerPids: () => number[];
}

export function newKey(): { secret: string; sha256: string } {
  const secret = `sk-test-${randomBytes(16).toString('hex')}`;
  return { secret, sha256: sha256Hex(secret) };
}

export function writeConfig(config: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-gw-'));
  const path = join(dir, 'sluice.yaml');
  writeFileSync(path, stringify(config));
  return path;
}

export async function startGateway(t: Test, config: Record<string, unknown>, env: NodeJS.ProcessEnv = {}, args: string[] = []): Promise<GatewayHandle> {
  // No store unless a test asks for one: tests run in parallel and must not share ./data.
  // No grace period on SIGTERM unless a test asks for one: tests stop gateways all the time.
  const shutdown = { grace_ms: 0, ...(config.shutdown as object | undefined) };
  const configPath = writeConfig({ listen: { host: '127.0.0.1', port: 0 }, workers: 2, store: { kind: 'none' }, ...config, shutdown });
  const p = await spawnCli(t, ['gateway', '--config', configPath, ...args], env, (m) => m.msg === 'gateway listening');
  return {
    ...p,
    ...loopbackEndpoints(p.ready.port as number),
    configPath,
    workerPids: () => {
      try {
        return readFileSync(`/proc/${p.proc.pid}/task/${p.proc.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      } catch {
        return [];
      }
    },
  };
}

export interface EchoRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** A plain node:http upstream that answers with what it received (sha256, size, headers). */
export async function startEchoUpstream(t: Test): Promise<{ url: string; requests: EchoRequest[]; server: Server }> {
  const requests: EchoRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-echo', 'yes');
      res.end(
        JSON.stringify({
          bytes: body.length,
          sha256: createHash('sha256').update(body).digest('hex'),
          url: req.url,
          model: body.length > 0 && body.length < 1_000_000 ? (JSON.parse(body.toString()) as { model?: string }).model : undefined,
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/v1`, requests, server };
}

/** A TCP port on loopback that nothing listens on. */
export async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export const auth = (secret: string): Record<string, string> => ({ authorization: `Bearer ${secret}`, 'content-type': 'application/json' });

/** Polls `check` every 50 ms until it returns true or `ms` pass; returns whether it did. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}
