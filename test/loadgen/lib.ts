// Helpers for the load generator's tests: run `sluice loadgen run --json`.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { CLI, runCli } from '../helpers/sink.js';

export interface Result {
  requests: number;
  ok: number;
  errors: number;
  errorsByKind: Record<string, number>;
  errorsByStatus: Record<string, number>;
  durationS: number;
  rps: number;
  latencyMs: Record<'avg' | 'p50' | 'p90' | 'p99' | 'p999' | 'max', number>;
  ttftMs?: Record<'avg' | 'p50' | 'p90' | 'p99' | 'p999' | 'max', number>;
  itlMs?: Record<'avg' | 'p50' | 'p90' | 'p99' | 'p999' | 'max', number>;
  histogram: string;
}

/** Runs the load generator to completion; rejects unless it exits 0 with one JSON object on stdout. */
export async function loadgen(url: string, args: string[]): Promise<Result> {
  const r = await runCli(['loadgen', 'run', '--url', url, '--json', ...args]);
  if (r.code !== 0) throw new Error(`loadgen exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Result;
}

/** Starts the load generator and returns its result promise at once (for tests that act during the run). */
export function loadgenBackground(url: string, args: string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CLI, 'loadgen', 'run', '--url', url, '--json', ...args]);
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('close', (code) => {
      if (code !== 0) reject(new Error(`loadgen exited ${code}: ${stderr}`));
      else resolve(JSON.parse(stdout) as Result);
    });
  });
}

/** A loopback port that nothing listens on (bound, then released). */
export function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
