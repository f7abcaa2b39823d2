// A gateway worker process: one uWS server on the shared port (SO_REUSEPORT:
// the kernel spreads connections over the workers).
import cluster from 'node:cluster';
import { uws, type us_listen_socket } from '../common/uws.js';
import { createLogger, flushLogs } from '../common/logger.js';
import type { GatewayConfig } from './config/schema.js';
import { GatewayMetrics, promClient } from './metrics.js';
import { Router } from './routing/router.js';
import { KeyCache } from './auth/key-cache.js';
import type { KeyRecord } from './auth/types.js';
import { GatewayContext } from './http/context.js';
import { createApp } from './http/server.js';
import { MSG, type PrimaryMessage } from './ipc.js';
import { openStore, SqliteKeyStore, type KeyStore } from './store/index.js';
import { RateLimiter } from './limits/rate-limiter.js';
import { UsageAccumulator } from './usage/accumulator.js';

export async function runWorker(): Promise<void> {
  const cfg = JSON.parse(process.env.SLUICE_GATEWAY_CONFIG ?? '') as GatewayConfig;
  const workerId = cluster.worker?.id ?? 0;
  const logger = createLogger(cfg.log.level, { component: 'gateway', worker: workerId });
  const metrics = new GatewayMetrics();
  // Node 20 ends the process on an unhandled rejection, and with it every request in flight here.
  // The request path fails its own requests; this catches what slips through, logged and counted.
  process.on('unhandledRejection', (reason: unknown) => {
    metrics.internalError('unhandled_rejection');
    logger.error(
      { err: reason instanceof Error ? reason.message : String(reason), stack: reason instanceof Error ? reason.stack : undefined },
      'unhandled promise rejection',
    );
  });
  promClient.AggregatorRegistry.setRegistries([metrics.registry]);
  // Constructing one is what makes prom-client answer the primary's requests.
  new promClient.AggregatorRegistry();
  const router = new Router(cfg);
  const staticKeys = new Map<string, KeyRecord>(cfg.keys.map((k) => [k.sha256, { id: `config:${k.name}`, name: k.name, models: k.models }]));
  const store: KeyStore | null = cfg.store === undefined || cfg.store.kind === 'none' ? null : openStore(cfg.store as Parameters<typeof openStore>[0]);
  if (store !== null) {
    // Start even when the store is down: cached and static keys work, the rest gets 503 until it is back.
    await store.ready(3000).catch((err: unknown) => logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'key store not reachable yet'));
  }
  const keys = new KeyCache(staticKeys, store);
  const revoked = (ev: { id: string; sha256: string }): void => keys.evictHash(ev.sha256);
  store?.onRevoked(revoked);
  store?.onResync(() => {
    // Revocations may have been missed: every cached key is asked again.
    keys.clear();
    logger.warn('key store resynced: the key cache was cleared');
  });
  if (store instanceof SqliteKeyStore) {
    // Revocations made by other processes on the same file (another instance,
    // or `sluice keys revoke` against the file) are seen by polling (an index
    // lookup of the recently revoked keys; the windows overlap by 2 s).
    let since = Date.now() - 2000;
    setInterval(() => {
      const from = since;
      since = Date.now() - 2000;
      try {
        for (const k of store.revokedSince(from)) keys.evictHash(k.sha256);
      } catch {
        /* the file is busy or gone: the next poll covers this window too */
        since = from;
      }
    }, 500).unref();
  }
  const limiter = new RateLimiter(store, (err) =>
    logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'rate-limit lease failed; admitting the request'),
  );
  const usage = new UsageAccumulator(store, { onError: (msg, fields) => logger.error(fields, msg) });
  usage.start(1000);

  // One aggregation at a time, shared by every scrape that arrives while it runs:
  // a flood of /metrics requests costs the primary one aggregation, and holds one entry here.
  let metricsSeq = 0;
  let pendingMetrics: { id: number; resolve: (text: string) => void; promise: Promise<string> } | null = null;
  const metricsText = (): Promise<string> => {
    if (pendingMetrics !== null) return pendingMetrics.promise;
    const id = ++metricsSeq;
    let resolve!: (text: string) => void;
    const promise = new Promise<string>((res, reject) => {
      const timer = setTimeout(() => {
        if (pendingMetrics?.id === id) pendingMetrics = null;
        reject(new Error('metrics aggregation timed out'));
      }, 5000);
      resolve = (text) => {
        clearTimeout(timer);
        res(text);
      };
    });
    pendingMetrics = { id, resolve, promise };
    process.send!({ type: MSG.metricsRequest, id });
    return promise;
  };
  const metricsAnswered = (id: number, text: string): void => {
    // An answer that comes after its timeout is for no one.
    if (pendingMetrics?.id !== id) return;
    const p = pendingMetrics;
    pendingMetrics = null;
    p.resolve(text);
  };

  const ctx = new GatewayContext(cfg, router, keys, metrics, logger, metricsText, store, limiter, usage, (ev) =>
    process.send!({ type: MSG.broadcast, payload: { revoked: ev } }),
  );
  const app = createApp(ctx);

  const listened = await new Promise<us_listen_socket | false>((resolve) => app.listen(cfg.listen.host, cfg.listen.port, resolve));
  if (!listened) {
    logger.error({ host: cfg.listen.host, port: cfg.listen.port }, 'cannot listen');
    flushLogs();
    process.exit(3);
  }
  let listenSocket: us_listen_socket | null = listened;
  const closeListener = (): void => {
    // With SO_REUSEPORT, connections still in this listener's accept queue are reset unless
    // net.ipv4.tcp_migrate_req=1 hands them to another listener of the port (README).
    if (listenSocket !== null) uws().us_listen_socket_close(listenSocket);
    listenSocket = null;
  };

  let stopping = false;
  /** Waits for what is in flight (until `deadline`), flushes usage, exits. */
  const finish = async (deadline: number): Promise<void> => {
    let drained = await ctx.idle(Math.max(0, deadline - Date.now()));
    // A keep-alive connection idle just now may still bring one more request (answered with
    // Connection: close): wait until none has arrived for a moment, or the deadline.
    while (drained && Date.now() < deadline) {
      await sleep(Math.min(IDLE_GRACE_MS, deadline - Date.now()));
      if (ctx.inFlight === 0) break;
      drained = await ctx.idle(Math.max(0, deadline - Date.now()));
    }
    await usage.stop().catch(() => undefined);
    await store?.close().catch(() => undefined);
    logger.info({ drained, inFlight: ctx.inFlight }, 'worker stopped');
    flushLogs();
    process.exit(0);
  };
  /**
   * A stop (SIGTERM, the primary's shutdown): for `graceMs` keep the listener, /readyz answering
   * 503, so a load balancer takes this instance out before connections are refused; then stop
   * accepting and drain.
   */
  const shutdown = async (graceMs: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    ctx.draining = true;
    ctx.closing = true;
    ctx.refusing = cfg.shutdown.while_draining === 'refuse';
    if (graceMs > 0) await sleep(graceMs);
    closeListener();
    await finish(Date.now() + cfg.shutdown.drain_timeout_ms);
  };
  /**
   * A reload: the new workers listen already. Stop accepting at once and say so; requests on kept-alive
   * connections are still served as usual until the primary says every retiring worker stopped
   * accepting (closeConnections): then each response asks its client to reconnect, and the worker drains
   * and exits.
   */
  let retiring = false;
  const retire = (): void => {
    if (stopping || retiring) return;
    retiring = true;
    closeListener();
    process.send!({ type: MSG.stoppedAccepting, worker: workerId });
    // Should the primary not answer, go on alone.
    setTimeout(() => void closeConnections(), 5000).unref();
  };
  const closeConnections = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    ctx.closing = true;
    closeListener();
    await finish(Date.now() + cfg.shutdown.drain_timeout_ms);
  };

  process.on('message', (m: PrimaryMessage) => {
    if (m.type === MSG.metricsResponse) metricsAnswered(m.id, m.text);
    else if (m.type === MSG.shutdown) void shutdown(m.graceMs);
    else if (m.type === MSG.retire) retire();
    else if (m.type === MSG.closeConnections) void closeConnections();
    else if (m.type === MSG.broadcast) {
      const ev = (m.payload as { revoked?: { id: string; sha256: string } }).revoked;
      if (ev) revoked(ev);
    }
  });
  // systemd's stop signals every process of the unit: a worker drains as the primary would have
  // told it to. Ctrl-C (the whole process group) stops without the grace period.
  process.on('SIGTERM', () => void shutdown(cfg.shutdown.grace_ms));
  process.on('SIGINT', () => void shutdown(0));
  // A hang-up of the terminal reaches the whole group; the primary reloads, workers go on.
  process.on('SIGHUP', () => undefined);
  process.send!({ type: MSG.listening, port: cfg.listen.port });
}

/** After the last request of a drain, how long a worker waits for one more on a kept-alive connection. */
const IDLE_GRACE_MS = 1000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
