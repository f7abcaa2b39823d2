// The gateway's primary process: checks that the port is ours alone, forks one
// worker per core, replaces workers that die, aggregates metrics, and on
// SIGTERM/SIGINT lets every worker drain before exiting 0.
import cluster, { type Worker } from 'node:cluster';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createLogger, flushLogs } from '../common/logger.js';
import type { GatewayConfig } from './config/schema.js';
import { promClient } from './metrics.js';
import { MSG, type WorkerMessage } from './ipc.js';
import { ConfigError } from './config/load.js';

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

export async function runPrimary(cfg: GatewayConfig): Promise<void> {
  const logger = createLogger(cfg.log.level, { component: 'gateway-primary' });
  const port = await claimPort(cfg.listen.host, cfg.listen.port);
  const resolved: GatewayConfig = { ...cfg, listen: { ...cfg.listen, port }, store: resolveStore(cfg) };
  if (resolved.store?.kind === 'sqlite') {
    try {
      mkdirSync(dirname(resolved.store.path!), { recursive: true });
    } catch (err) {
      throw new ConfigError(`config: store.path: cannot create the directory of ${resolved.store.path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  const count = cfg.workers === 'auto' ? availableParallelism() : cfg.workers;
  const aggregator = new promClient.AggregatorRegistry();

  cluster.setupPrimary({
    exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)),
    args: [],
  });
  const env = { SLUICE_GATEWAY_CONFIG: JSON.stringify(resolved) };

  let stopping = false;
  let announced = false;
  const listening = new Set<number>();
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

  const fork = (): Worker => {
    const w = cluster.fork(env);
    w.on('message', (m: WorkerMessage) => {
      if (m.type === MSG.listening) {
        listening.add(w.id);
        if (!announced && !stopping && listening.size >= count) {
          announced = true;
          logger.info({ host: resolved.listen.host, port, workers: count }, 'gateway listening');
          flushLogs();
          // One plain JSON line, so scripts and tests learn the port.
          process.stdout.write(JSON.stringify({ msg: 'gateway listening', host: resolved.listen.host, port, workers: count }) + '\n');
        }
      } else if (m.type === MSG.metricsRequest) {
        metricsWaiting.push({ w, id: m.id });
        if (metricsWaiting.length === 1) aggregate();
      } else if (m.type === MSG.broadcast) {
        for (const other of Object.values(cluster.workers ?? {})) if (other && other !== w && other.isConnected()) other.send(m);
      }
    });
    return w;
  };

  cluster.on('exit', (w, code, signal) => {
    listening.delete(w.id);
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        logger.info('gateway stopped');
        flushLogs();
        process.exit(0);
      }
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
    if (!announced && recentDeaths.length >= count * 3) {
      // Never listened, and keeps failing at start-up (its error is on stderr): restarting will not help,
      // and a primary that stays up serving nothing would fool a supervisor.
      logger.fatal({ deaths: recentDeaths.length }, 'workers keep failing at start-up; stopping');
      flushLogs();
      process.exit(1);
    }
    // A worker that keeps dying at once is not helped by instant restarts.
    const delay = recentDeaths.length > count * 3 ? 1000 : 0;
    logger.warn({ worker: w.id, code, signal, restartInMs: delay }, 'worker died; replacing it');
    setTimeout(() => {
      if (!stopping) fork();
    }, delay);
  });

  for (let i = 0; i < count; i++) fork();

  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping: draining workers');
    const workers = Object.values(cluster.workers ?? {});
    if (workers.length === 0) {
      // Between a worker's death and its replacement: nothing to drain.
      logger.info('gateway stopped');
      flushLogs();
      process.exit(0);
    }
    for (const w of workers) if (w?.isConnected()) w.send({ type: MSG.shutdown });
    // Workers exit by themselves after their drain timeout; this is the backstop.
    setTimeout(() => {
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
      flushLogs();
      process.exit(1);
    }, cfg.shutdown.drain_timeout_ms + 5000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // A closed terminal or a supervisor's hang-up: drain as for SIGTERM rather than die at once.
  process.on('SIGHUP', stop);
}
