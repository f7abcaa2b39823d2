// The gateway's primary process: checks that the port is ours alone, forks one
// worker per core, replaces workers that die, aggregates metrics, reloads the
// config on SIGHUP (a new set of workers, then the old ones drain), and on
// SIGTERM/SIGINT lets every worker drain before exiting 0.
import cluster, { type Worker } from 'node:cluster';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createLogger, flushLogs } from '../common/logger.js';
import type { GatewayConfig } from './config/schema.js';
import { promClient } from './metrics.js';
import { MSG, type WorkerMessage } from './ipc.js';
import { ConfigError } from './config/load.js';
import { MAX_TIMER_MS } from '../common/timer-limit.js';

export class PortInUseError extends Error {
  override name = 'PortInUseError';
}

/**
 * Binds the port without SO_REUSEPORT and releases it: this fails when any
 * other process holds it, even one that bound with SO_REUSEPORT and would
 * otherwise silently take a share of our traffic. Port 0 picks a free port.
 */
export function claimPort(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new PortInUseError(
          err.code === 'EADDRINUSE' ? `port ${port} on ${host} is already in use by another process` : `cannot bind ${host}:${port}: ${err.code ?? err.message}`,
        ),
      ),
    );
    srv.listen({ host, port, exclusive: true }, () => {
      const addr = srv.address();
      const actual = typeof addr === 'object' && addr !== null ? addr.port : port;
      srv.close(() => resolve(actual));
    });
  });
}

/** No store configured: SQLite in $SLUICE_DATA_DIR (default ./data) as sluice.db. Paths become absolute. */
export function resolveStore(cfg: GatewayConfig): GatewayConfig['store'] {
  const s = cfg.store;
  if (s === undefined) return { kind: 'sqlite', path: resolve(process.env.SLUICE_DATA_DIR ?? 'data', 'sluice.db') };
  if (s.kind === 'sqlite') return { kind: 'sqlite', path: resolve(s.path ?? resolve(process.env.SLUICE_DATA_DIR ?? 'data', 'sluice.db')) };
  return s;
}

/** A set of workers forked with one config; a reload forks the next one beside it. */
interface Generation {
  id: number;
  cfg: GatewayConfig;
  env: NodeJS.ProcessEnv;
  count: number;
  workers: Set<number>;
  listening: Set<number>;
}

/** net.ipv4.tcp_migrate_req of this network namespace, or null where it cannot be read (kernel < 5.14). */
function readMigrateReq(): number | null {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim());
  } catch {
    return null;
  }
}

/** How long a reload's new workers may take to listen before the reload is given up. */
const RELOAD_TIMEOUT_MS = 30_000;

/** The config as workers get it: the claimed port, the store resolved (its directory made). */
function resolveForWorkers(cfg: GatewayConfig, port: number): GatewayConfig {
  const resolved: GatewayConfig = { ...cfg, listen: { ...cfg.listen, port }, store: resolveStore(cfg) };
  if (resolved.store?.kind === 'sqlite') {
    try {
      mkdirSync(dirname(resolved.store.path!), { recursive: true });
    } catch (err) {
      throw new ConfigError(`config: store.path: cannot create the directory of ${resolved.store.path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  return resolved;
}

/**
 * Runs the gateway's primary. `reload` reads the config again (SIGHUP): a valid one gets a new
 * set of workers, and the old ones stop accepting once all the new ones listen, finish what they
 * have and exit; an invalid one is logged and changes nothing.
 */
export async function runPrimary(cfg: GatewayConfig, reload?: () => GatewayConfig): Promise<void> {
  const logger = createLogger(cfg.log.level, { component: 'gateway-primary' });
  const port = await claimPort(cfg.listen.host, cfg.listen.port);
  const aggregator = new promClient.AggregatorRegistry();

  cluster.setupPrimary({
    exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)),
    args: [],
  });

  let generations = 0;
  const generation = (c: GatewayConfig): Generation => {
    const resolved = resolveForWorkers(c, port);
    return {
      id: ++generations,
      cfg: c,
      env: { SLUICE_GATEWAY_CONFIG: JSON.stringify(resolved) },
      count: c.workers === 'auto' ? availableParallelism() : c.workers,
      workers: new Set(),
      listening: new Set(),
    };
  };
  let active = generation(cfg);
  /** A reload under way: its workers are starting. */
  let pending: Generation | null = null;
  let pendingTimer: NodeJS.Timeout | null = null;
  let reloadQueued = false;
  let migrateWarned = false;
  const genOf = new Map<number, Generation>();
  /** Workers of an earlier generation, finishing their requests. */
  const retired = new Set<number>();

  let stopping = false;
  let announced = false;
  let recentDeaths: number[] = [];

  // Workers asking for metrics while an aggregation runs share its answer (each worker has one request out at most).
  let metricsWaiting: Array<{ w: Worker; id: number }> = [];
  const aggregate = (): void => {
    const answer = (text: string | null): void => {
      const waiting = metricsWaiting;
      metricsWaiting = [];
      if (text !== null) for (const { w, id } of waiting) if (w.isConnected()) w.send({ type: MSG.metricsResponse, id, text });
    };
    aggregator.clusterMetrics().then(answer, (err: Error) => {
      logger.warn({ err: err.message }, 'metrics aggregation failed');
      answer(null);
    });
  };

  const fork = (gen: Generation): Worker => {
    const w = cluster.fork(gen.env);
    genOf.set(w.id, gen);
    gen.workers.add(w.id);
    w.on('message', (m: WorkerMessage) => {
      if (m.type === MSG.listening) {
        gen.listening.add(w.id);
        if (gen === active && !announced && !stopping && gen.listening.size >= gen.count) {
          announced = true;
          logger.info({ host: cfg.listen.host, port, workers: gen.count }, 'gateway listening');
          flushLogs();
          // One plain JSON line, so scripts and tests learn the port.
          process.stdout.write(JSON.stringify({ msg: 'gateway listening', host: cfg.listen.host, port, workers: gen.count }) + '\n');
        } else if (gen === pending && gen.listening.size >= gen.count) commitReload();
      } else if (m.type === MSG.metricsRequest) {
        metricsWaiting.push({ w, id: m.id });
        if (metricsWaiting.length === 1) aggregate();
      } else if (m.type === MSG.broadcast) {
        for (const other of Object.values(cluster.workers ?? {})) if (other && other !== w && other.isConnected()) other.send(m);
      }
    });
    return w;
  };

  /**
   * Retires a generation in two steps: every worker stops accepting, and only once all of them
   * have do they answer with Connection: close. Otherwise a client sent away by the first could
   * reconnect into the accept queue of a second just before it closes its listener, and be reset.
   */
  const retire = (gen: Generation): void => {
    const closing = new Set<number>();
    for (const id of gen.workers) {
      const w = cluster.workers?.[id];
      if (w === undefined) continue;
      retired.add(id);
      // One that never listened holds no connection: it can go at once.
      if (gen.listening.has(id) && w.isConnected()) {
        closing.add(id);
        w.send({ type: MSG.retire });
      } else w.process.kill('SIGKILL');
    }
    if (closing.size === 0) return;
    const release = (): void => {
      clearTimeout(timer);
      for (const w of Object.values(cluster.workers ?? {})) if (w) w.off('message', onClosed);
      for (const id of closing) {
        const w = cluster.workers?.[id];
        if (w?.isConnected()) w.send({ type: MSG.closeConnections });
      }
    };
    const onClosed = (m: WorkerMessage): void => {
      if (m.type !== MSG.stoppedAccepting) return;
      pendingClose.delete(m.worker);
      if (pendingClose.size === 0) release();
    };
    const pendingClose = new Set(closing);
    // A worker that does not answer (it died meanwhile) does not hold the others.
    const timer = setTimeout(release, 2000);
    for (const id of closing) cluster.workers?.[id]?.on('message', onClosed);
  };

  const commitReload = (): void => {
    if (pending === null) return;
    if (pendingTimer !== null) clearTimeout(pendingTimer);
    pendingTimer = null;
    const old = active;
    active = pending;
    pending = null;
    recentDeaths = [];
    retire(old);
    logger.info({ generation: active.id, workers: active.count, retiring: old.workers.size }, 'config reloaded');
    flushLogs();
    if (reloadQueued) {
      reloadQueued = false;
      startReload();
    }
  };

  const abortReload = (reason: string): void => {
    if (pending === null) return;
    if (pendingTimer !== null) clearTimeout(pendingTimer);
    pendingTimer = null;
    const failed = pending;
    pending = null;
    retire(failed);
    logger.error({ reason }, 'reload failed; the running workers keep serving');
    flushLogs();
  };

  const startReload = (): void => {
    if (stopping) return;
    if (pending !== null) {
      // One more reload after this one: the file may have changed again meanwhile.
      reloadQueued = true;
      return;
    }
    let next: GatewayConfig;
    try {
      if (reload === undefined) throw new ConfigError('config: no config file to reload');
      next = reload();
      if (next.listen.host !== cfg.listen.host || next.listen.port !== cfg.listen.port) {
        throw new ConfigError(`config: listen: cannot change on reload (${cfg.listen.host}:${cfg.listen.port}); restart the gateway to move it`);
      }
      pending = generation(next);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      logger.error({ error: err.message }, 'reload refused; the running config stays');
      flushLogs();
      return;
    }
    logger.info({ generation: pending.id, workers: pending.count }, 'reloading: starting workers with the new config');
    if (!migrateWarned && readMigrateReq() === 0) {
      migrateWarned = true;
      logger.warn(
        { sysctl: 'net.ipv4.tcp_migrate_req' },
        'net.ipv4.tcp_migrate_req is 0: connections queued on the old workers\' listeners when they close are reset; set it to 1 (README)',
      );
    }
    const gen = pending;
    for (let i = 0; i < gen.count; i++) fork(gen);
    pendingTimer = setTimeout(() => abortReload(`the new workers did not listen within ${RELOAD_TIMEOUT_MS} ms`), RELOAD_TIMEOUT_MS);
  };

  const exitWhenEmpty = (): void => {
    if (Object.keys(cluster.workers ?? {}).length === 0) {
      logger.info('gateway stopped');
      flushLogs();
      process.exit(0);
    }
  };

  cluster.on('exit', (w, code, signal) => {
    const gen = genOf.get(w.id);
    genOf.delete(w.id);
    gen?.workers.delete(w.id);
    gen?.listening.delete(w.id);
    if (stopping) {
      exitWhenEmpty();
      return;
    }
    if (retired.delete(w.id)) return;
    if (gen !== undefined && gen === pending) {
      abortReload(`a worker with the new config exited at start-up (code ${code ?? 'none'}, signal ${signal ?? 'none'}; its error is on stderr)`);
      return;
    }
    const now = Date.now();
    recentDeaths = recentDeaths.filter((t) => now - t < 10_000);
    recentDeaths.push(now);
    if (code === 3) {
      logger.fatal({ port }, 'a worker could not bind the port; stopping');
      flushLogs();
      process.exit(1);
    }
    if (!announced && recentDeaths.length >= active.count * 3) {
      // Never listened, and keeps failing at start-up (its error is on stderr): restarting will not help,
      // and a primary that stays up serving nothing would fool a supervisor.
      logger.fatal({ deaths: recentDeaths.length }, 'workers keep failing at start-up; stopping');
      flushLogs();
      process.exit(1);
    }
    // A worker that keeps dying at once is not helped by instant restarts.
    const delay = recentDeaths.length > active.count * 3 ? 1000 : 0;
    logger.warn({ worker: w.id, code, signal, restartInMs: delay }, 'worker died; replacing it');
    setTimeout(() => {
      if (!stopping) fork(active);
    }, delay);
  });

  for (let i = 0; i < active.count; i++) fork(active);

  const stop = (graceMs: number): void => {
    if (stopping) return;
    stopping = true;
    if (pendingTimer !== null) clearTimeout(pendingTimer);
    logger.info({ graceMs }, 'stopping: draining workers');
    const workers = Object.values(cluster.workers ?? {});
    if (workers.length === 0) {
      // Between a worker's death and its replacement: nothing to drain.
      logger.info('gateway stopped');
      flushLogs();
      process.exit(0);
    }
    for (const w of workers) if (w?.isConnected()) w.send({ type: MSG.shutdown, graceMs });
    // Workers exit by themselves after the grace and their drain timeout; this is the backstop.
    const drainMs = Math.max(0, ...[...new Set(genOf.values())].map((g) => g.cfg.shutdown.drain_timeout_ms));
    setTimeout(
      () => {
        for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
        flushLogs();
        process.exit(1);
      },
      Math.min(MAX_TIMER_MS, graceMs + drainMs + 5000),
    ).unref();
  };
  process.on('SIGTERM', () => stop(active.cfg.shutdown.grace_ms));
  // Ctrl-C is a person at a terminal, not a load balancer's client: no grace period.
  process.on('SIGINT', () => stop(0));
  // systemd's ExecReload (kill -HUP $MAINPID): read the config again, replace the workers without failing a request.
  process.on('SIGHUP', () => startReload());
}
