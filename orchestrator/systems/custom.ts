// A gateway described in the matrix file (`custom:`), so that LiteLLM,
// Bifrost or a team's own proxy sits in the same tables: a start command (or
// an existing URL), the key and its header, a readiness URL, the process
// tree to sample.
import type { CustomSystem } from '../matrix/types.js';
import type { RunningSystem, SystemContext, SystemModule } from './types.js';

const READY_TIMEOUT_MS = 60_000;

/** Replaces {sink_url}, {sink_origin}, {sink_host}, {sink_port}, {host} and {port} in a template. */
function fill(template: string, vars: Record<string, string>): string {
  return template.replace(/\{(sink_url|sink_origin|sink_host|sink_port|host|port)\}/g, (_, k: string) => vars[k]!);
}

async function waitReady(ctx: SystemContext, url: string, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    if (exited()) throw new Error('its command exited before it was ready');
    const status = await ctx.probe(url);
    if (status !== null && status >= 200 && status < 300) return;
    last = status === null ? 'no answer' : `status ${status}`;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer 2xx within ${READY_TIMEOUT_MS / 1000} s (last: ${last})`);
}

export function customSystem(name: string, c: CustomSystem): SystemModule {
  return {
    name,
    unavailable: async () => null,
    start: async (ctx): Promise<RunningSystem> => {
      const vars = {
        sink_url: ctx.sink.url,
        sink_origin: ctx.sink.origin,
        sink_host: ctx.sink.host,
        sink_port: String(ctx.sink.port),
        host: ctx.host,
        port: String(await ctx.freePort()),
      };
      const url = fill(c.url, vars).replace(/\/+$/, '');
      const started = c.command === undefined ? null : await ctx.procs.start(name, '/bin/sh', ['-c', fill(c.command, vars)], { cwd: ctx.dir });
      const stop = async (): Promise<void> => {
        if (started) await ctx.procs.stop(started);
      };
      try {
        if (c.ready_url !== undefined) await waitReady(ctx, fill(c.ready_url, vars), () => started !== null && started.proc.exitCode !== null);
      } catch (err) {
        const out = started?.output().split('\n').slice(-2).join(' | ');
        await stop();
        throw new Error(`${err instanceof Error ? err.message : String(err)}${out ? ` (${out})` : ''}`);
      }
      const headers: Record<string, string> = { ...(c.headers ?? {}) };
      let key: string | undefined;
      if (c.key !== undefined) {
        const h = (c.key_header ?? 'authorization').toLowerCase();
        if (h === 'authorization') key = c.key;
        else headers[h] = c.key;
      }
      const pids = typeof c.sample === 'number' ? [c.sample] : started ? [started.pid] : [];
      const r: RunningSystem = { url, headers, pids, version: c.version ?? name, stop };
      if (key !== undefined) r.key = key;
      return r;
    },
  };
}
