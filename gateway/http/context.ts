// What a worker's request handlers share: config, routes, keys, metrics, the
// logger, and the in-flight count that graceful shutdown waits on.
import { infoLineWriter, type Logger } from '../../common/logger.js';
import type { GatewayConfig } from '../config/schema.js';
import type { KeyCache } from '../auth/key-cache.js';
import type { GatewayMetrics } from '../metrics.js';
import type { Router } from '../routing/router.js';
import type { RateLimiter } from '../limits/rate-limiter.js';
import type { UsageAccumulator } from '../usage/accumulator.js';
import type { KeyStore } from '../store/types.js';
import type { KeyRecord } from '../auth/types.js';

export interface FinishedExchange {
  key: KeyRecord | null;
  usage: { prompt: number; completion: number } | null;
  /** The usage was estimated by the gateway (no usage object from the upstream). */
  usageEstimated: boolean;
  /** The configured model the request was routed by ('' before routing, or for an unknown one). */
  model: string;
  /** An unknown model's name as the client sent it, clipped; only for the log line. */
  requestedModel: string;
  upstream: { label: string; labelJson: string } | null;
  startedAt: number;
  streamed: boolean;
  method: string;
  url: string;
}

export class GatewayContext {
  inFlight = 0;
  /** A SIGTERM drain: /readyz answers 503, so a load balancer takes this instance out. */
  draining = false;
  /** New /v1 requests are refused with 503 (a SIGTERM drain with `shutdown.while_draining: refuse`). */
  refusing = false;
  /** This worker is going away (a drain or a reload): every response asks the client to close its connection. */
  closing = false;
  private onIdle: (() => void) | null = null;

  constructor(
    readonly cfg: GatewayConfig,
    readonly router: Router,
    readonly keys: KeyCache,
    readonly metrics: GatewayMetrics,
    readonly logger: Logger,
    /** Cluster-wide metrics text (asks the primary to aggregate). */
    readonly metricsText: () => Promise<string>,
    readonly store: KeyStore | null,
    readonly limiter: RateLimiter,
    readonly usage: UsageAccumulator,
    /** Tells the other workers of this instance that a key was revoked. */
    readonly broadcastRevocation: (ev: { id: string; sha256: string }) => void,
  ) {
    metrics.inFlightSource = () => this.inFlight;
    this.requestLog = cfg.log.requests ? infoLineWriter(logger, 'request') : null;
  }

  /** One line per request, or null when request logging is off. */
  private readonly requestLog: ((fields: string) => void) | null;

  requestStarted(): void {
    this.inFlight++;
  }

  /**
   * An answer the edge gave before any exchange existed (refused keys, paths,
   * routes): counted and logged as every request is, with no key (none is
   * known, and the secret is never logged).
   */
  edgeAnswered(method: string, url: string, status: number, startedAt: number): void {
    // requestFinished counts the request out of inFlight: count it in first, so one code path logs every request.
    this.inFlight++;
    this.requestFinished(
      { key: null, usage: null, usageEstimated: false, model: '', requestedModel: '', upstream: null, startedAt, streamed: false, method, url },
      status,
    );
  }

  /** Something threw while a request was handled (null: before its exchange existed): logged and counted; the caller answers 500. */
  internalError(err: unknown, ex: FinishedExchange | null): void {
    this.metrics.internalError('request');
    this.logger.error(
      {
        err: err instanceof Error ? err.message : String(err),
        stack: err instanceof Error ? err.stack : undefined,
        key: ex?.key?.id ?? null,
        method: ex?.method,
        path: ex?.url,
      },
      'request failed inside the gateway',
    );
  }

  requestFinished(ex: FinishedExchange, status: number): void {
    this.inFlight--;
    const ms = performance.now() - ex.startedAt;
    this.metrics.observe(ex.model === '' ? '-' : ex.model, status, ms / 1000);
    const u = ex.usage;
    if (u !== null && ex.key !== null) {
      this.usage.add(ex.key.id, ex.model, u.prompt, u.completion, ex.usageEstimated);
      this.metrics.tokens(ex.model, u.prompt, u.completion);
      this.limiter.consumeTokens(ex.key, u.prompt + u.completion);
    }
    const log = this.requestLog;
    if (log !== null) {
      // JSON.stringify for every value a client or config chose (model, path, ids).
      log(
        '"key":' +
          (ex.key === null ? 'null' : JSON.stringify(ex.key.id)) +
          ',"method":' +
          JSON.stringify(ex.method) +
          ',"path":' +
          JSON.stringify(ex.url) +
          ',"model":' +
          (ex.model !== '' ? JSON.stringify(ex.model) : ex.requestedModel !== '' ? JSON.stringify(ex.requestedModel) : 'null') +
          ',"status":' +
          status +
          ',"upstream":' +
          (ex.upstream === null ? 'null' : ex.upstream.labelJson) +
          ',"stream":' +
          ex.streamed +
          ',"ms":' +
          Math.round(ms * 100) / 100,
      );
    }
    if (this.inFlight === 0 && this.onIdle !== null) this.onIdle();
  }

  /** Resolves true once no request is in flight, false when `timeoutMs` passes first. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.onIdle = null;
        resolve(false);
      }, timeoutMs);
      this.onIdle = () => {
        this.onIdle = null;
        clearTimeout(t);
        resolve(true);
      };
    });
  }
}
