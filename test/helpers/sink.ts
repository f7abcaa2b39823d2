// Starts real `sluice sink` child processes on loopback port 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface RunningProcess {
  proc: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output: () => string;
  /** Resolves with the exit code (or signal name) once the process ends. */
  exited: Promise<number | string>;
}

/** Spawns `node dist/cli.js ...args` and resolves on the first stdout JSON line that `isReady` accepts (default: has `port`). */
export function spawnCli(
  t: Test,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  isReady: (msg: Record<string, unknown>) => boolean = (m) => typeof m.port === 'number',
): Promise<RunningProcess & { ready: Record<string, unknown> }> {
  const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! });
    let resolved = false;
    rl.on('line', (line) => {
      out += line + '\n';
      if (resolved) return;
      try {
        const msg = JSON.parse(line) as Record<string, unknown>;
        if (isReady(msg)) {
          resolved = true;
          resolve({ proc, output: () => out, exited, ready: msg });
        }
      } catch {
        /* not a JSON line */
      }
    });
    void exited.then((code) => {
      if (!resolved) reject(new Error(`process exited (${code}) before it was ready:\n${out}`));
    });
  });
}

export interface SinkHandle extends RunningProcess {
  port: number;
  /** Base URL ending in /v1. */
  url: string;
  origin: string;
  stats: () => Promise<SinkStats>;
}

export interface SinkStats {
  requests: number;
  byPath: Record<string, number>;
  streamed: number;
  promptTokens: number;
  completionTokens: number;
  errorsInjected: number;
  dropsInjected: number;
  aborted: number;
  inFlight: number;
  /** Waited responses: start minus (arrival + wait), µs; compensationUs is the learned timer lateness. */
  wait: { responses: number; meanLateUs: number; minLateUs: number; maxLateUs: number; compensationUs: number };
  /** Streamed tokens after the first: sent minus start + ttft + i × itl, µs. */
  tokens: { responses: number; meanLateUs: number; minLateUs: number; maxLateUs: number; compensationUs: number };
}

/** The addresses of a server started on 127.0.0.1: its origin and its base URL ending in /v1. */
export function loopbackEndpoints(port: number): { port: number; origin: string; url: string } {
  const origin = `http://127.0.0.1:${port}`;
  return { port, origin, url: `${origin}/v1` };
}

export async function startSink(t: Test, args: string[] = []): Promise<SinkHandle> {
  const p = await spawnCli(t, ['sink', '--port', '0', ...args]);
  const at = loopbackEndpoints(p.ready.port as number);
  return {
    ...p,
    ...at,
    stats: async () => (await (await fetch(`${at.origin}/sink/stats`)).json()) as SinkStats,
  };
}

/** Runs the CLI to completion and returns its exit code and output. */
export function runCli(args: string[], input?: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('close', (code) => resolve({ code, stdout, stderr }));
    proc.stdin.end(input ?? '');
  });
}
