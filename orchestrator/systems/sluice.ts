// sluice itself, run as a user runs it: `sluice gateway --config FILE` with a
// key created in its store by `sluice keys create`, request logging on.
// `sluice` uses the embedded SQLite store; `sluice-redis` a Redis store, with
// a redis-server of its own.
import { join } from 'node:path';
import { stringify } from 'yaml';
import { sluiceVersion } from '../environment.js';
import { jsonLine } from '../providers/processes.js';
import type { RunningSystem, SystemContext, SystemModule } from './types.js';

export const REDIS_SERVER = '/usr/bin/redis-server';

/** On the system's host, with the sluice installed there. */
async function createKey(ctx: SystemContext, store: string): Promise<string> {
  const [node, ...args] = ctx.cli;
  const { stdout } = await ctx.procs.exec(node!, [...args, 'keys', 'create', '--store', store, '--name', 'bench']);
  return (JSON.parse(stdout) as { secret: string }).secret;
}

async function startGateway(ctx: SystemContext, store: Record<string, string>, storeTarget: string): Promise<RunningSystem> {
  const key = await createKey(ctx, storeTarget);
  const config = join(ctx.dir, 'sluice.yaml');
  await ctx.files.write(
    config,
    stringify({
      listen: { host: ctx.host, port: 0 },
      workers: 'auto',
      models: { [ctx.model]: { upstreams: [{ url: ctx.sink.url }] } },
      store,
      log: { level: 'info', requests: true },
      // Nothing balances load over it here: no grace period before the port closes at the end of a cell.
      shutdown: { grace_ms: 0 },
    }),
  );
  const [node, ...args] = ctx.cli;
  const gw = await ctx.procs.start('sluice gateway', node!, [...args, 'gateway', '--config', config], {
    ready: jsonLine((m) => m.msg === 'gateway listening'),
  });
  const port = (gw.ready as { port: number }).port;
  return {
    url: `http://${ctx.host}:${port}/v1`,
    key,
    headers: {},
    pids: [gw.pid],
    version: `sluice ${sluiceVersion()}`,
    stop: () => ctx.procs.stop(gw),
  };
}

export const sluice: SystemModule = {
  name: 'sluice',
  unavailable: async () => null,
  start: (ctx) => {
    const db = join(ctx.dir, 'sluice.db');
    return startGateway(ctx, { kind: 'sqlite', path: db }, db);
  },
};

export const sluiceRedis: SystemModule = {
  name: 'sluice-redis',
  unavailable: async (ctx) =>
    (await ctx.files.exists(REDIS_SERVER)) ? null : `redis-server is not installed (${REDIS_SERVER}); install it with: apt-get install -y --no-install-recommends redis-server`,
  start: async (ctx) => {
    const port = await ctx.freePort();
    const redis = await ctx.procs.start(
      'redis-server',
      REDIS_SERVER,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
      { ready: (l) => l.includes('Ready to accept connections') },
    );
    try {
      const url = `redis://127.0.0.1:${port}`;
      const gw = await startGateway(ctx, { kind: 'redis', url }, url);
      const { stdout } = await ctx.procs.exec(REDIS_SERVER, ['--version']);
      const v = /v=(\S+)/.exec(stdout)?.[1] ?? '?';
      return {
        ...gw,
        // The store is part of what this system costs.
        pids: [...gw.pids, redis.pid],
        version: `${gw.version}, redis ${v}`,
        stop: async () => {
          await gw.stop();
          await ctx.procs.stop(redis);
        },
      };
    } catch (err) {
      await ctx.procs.stop(redis);
      throw err;
    }
  },
};
