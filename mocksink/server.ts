// The mock OpenAI-compatible upstream: answers chat completions, completions
// and embeddings with valid bodies after a configurable wait, streams SSE with
// a configurable time to first token and inter-token latency, and injects
// errors and dropped connections at seeded rates.
import { performance } from 'node:perf_hooks';
import { uws, statusLine, type HttpResponse, type HttpRequest, type TemplatedApp, type us_listen_socket } from '../common/uws.js';
import { readBodyTransient } from '../common/uws-body.js';
import { errorBody, typeForStatus } from '../common/openai-error.js';
import { estimatePromptTokens } from '../common/tokens.js';
import { MAX_TIMER_MS } from '../common/timer-limit.js';
import { mulberry32 } from './prng.js';
import * as R from './responses.js';
import { Deadlines, type WaitStats } from './deadline.js';

export interface SinkOptions {
  host: string;
  port: number;
  /**
   * Wait before the response starts, in ms, counted from the request's arrival
   * (see deadline.ts for how precisely); 0 answers at once, with no timer.
   */
  waitMs: number;
  /** Streaming: from the start of the response to the first token. */
  ttftMs: number;
  /** Streaming: between two tokens. */
  itlMs: number;
  /** Completion tokens per response; a request's max_tokens caps it. */
  outputTokens: number;
  models: string[];
  errorRate: number;
  errorStatus: number;
  dropRate: number;
  seed: number;
  maxBodyBytes: number;
  embeddingDims: number;
  /** Graceful stop: how long in-flight requests may take to finish. */
  drainTimeoutMs: number;
}

export const SINK_DEFAULTS: SinkOptions = {
  host: '127.0.0.1',
  port: 8081,
  waitMs: 0,
  ttftMs: 0,
  itlMs: 0,
  outputTokens: 16,
  models: ['benchmark-model'],
  errorRate: 0,
  errorStatus: 500,
  dropRate: 0,
  seed: 1,
  maxBodyBytes: 64 * 1024 * 1024,
  embeddingDims: 16,
  drainTimeoutMs: 30_000,
};

export interface SinkStats {
  requests: number;
  byPath: Record<string, number>;
  streamed: number;
  promptTokens: number;
  completionTokens: number;
  bodyBytes: number;
  errorsInjected: number;
  dropsInjected: number;
  /** Requests whose client went away before the response ended. */
  aborted: number;
  inFlight: number;
  /** How close waited responses started to arrival + wait (deadline.ts). */
  wait: WaitStats;
  /** How close streamed tokens (after the first) went out to start + ttft + i × itl; `responses` counts tokens. */
  tokens: WaitStats;
}

type Kind = 'chat' | 'completion' | 'embedding';

const JSON_HEADER = 'application/json';
/** OpenAI's limit on the items of an embeddings request's input array. */
const MAX_EMBEDDING_INPUTS = 2048;

interface Exchange {
  res: HttpResponse;
  done: boolean;
  timer: NodeJS.Timeout | null;
  dropping: boolean;
}

export class Sink {
  readonly opts: SinkOptions;
  private readonly deadlines = new Deadlines();
  /** Token times of streams: kept apart so that `wait` in /sink/stats stays about response starts. */
  private readonly tokenClock = new Deadlines();
  readonly stats: SinkStats = {
    requests: 0,
    byPath: { '/v1/models': 0, '/v1/chat/completions': 0, '/v1/completions': 0, '/v1/embeddings': 0 },
    streamed: 0,
    promptTokens: 0,
    completionTokens: 0,
    bodyBytes: 0,
    errorsInjected: 0,
    dropsInjected: 0,
    aborted: 0,
    inFlight: 0,
    wait: this.deadlines.stats,
    tokens: this.tokenClock.stats,
  };
  private app: TemplatedApp;
  private listenSocket: us_listen_socket | null = null;
  private rng: () => number;
  private seq = 0;
  private drained: (() => void) | null = null;
  private readonly modelsBody: string;
  // A one-entry memo of the last parsed body. Load generators send the same
  // bytes again and again, and JSON.parse of a 1 KB body (plus the garbage it
  // leaves) was ~20% of the sink's CPU per request; a memcmp is not.
  private lastBody: Buffer | null = null;
  private lastParsed: unknown = null;

  constructor(options: Partial<SinkOptions> = {}) {
    this.opts = { ...SINK_DEFAULTS, ...options };
    this.rng = mulberry32(this.opts.seed);
    this.modelsBody = R.modelList(this.opts.models, 1_700_000_000);
    const app = uws().App();
    app.get('/healthz', (res) => {
      res.writeHeader('content-type', JSON_HEADER).end('{"status":"ok"}');
    });
    app.get('/sink/stats', (res) => {
      res.writeHeader('content-type', JSON_HEADER).end(JSON.stringify(this.stats));
    });
    app.get('/v1/models', (res) => {
      this.count('/v1/models');
      res.writeHeader('content-type', JSON_HEADER).end(this.modelsBody);
    });
    app.post('/v1/chat/completions', (res, req) => this.handle(res, req, 'chat', '/v1/chat/completions'));
    app.post('/v1/completions', (res, req) => this.handle(res, req, 'completion', '/v1/completions'));
    app.post('/v1/embeddings', (res, req) => this.handle(res, req, 'embedding', '/v1/embeddings'));
    app.any('/*', (res, req) => {
      const url = req.getUrl();
      res
        .writeStatus(statusLine(404))
        .writeHeader('content-type', JSON_HEADER)
        .end(errorBody(`Unknown request URL: ${req.getMethod().toUpperCase()} ${url}`, 'invalid_request_error', 'unknown_url'));
    });
    this.app = app;
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(this.opts.host, this.opts.port, (socket) => {
        if (!socket) {
          reject(new Error(`sink: cannot listen on ${this.opts.host}:${this.opts.port} (port in use or address not available)`));
          return;
        }
        this.listenSocket = socket;
        resolve(uws().us_socket_local_port(socket as never));
      });
    });
  }

  /** Stops listening, lets in-flight requests finish (up to drainTimeoutMs), then resolves. */
  close(): Promise<{ drained: boolean }> {
    if (this.listenSocket) {
      uws().us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
    }
    if (this.stats.inFlight === 0) return Promise.resolve({ drained: true });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.drained = null;
        resolve({ drained: false });
      }, this.opts.drainTimeoutMs);
      this.drained = () => {
        clearTimeout(timer);
        resolve({ drained: true });
      };
    });
  }

  private count(path: string): void {
    this.stats.requests++;
    this.stats.byPath[path]!++;
  }

  private finish(ex: Exchange): void {
    if (ex.done) return;
    ex.done = true;
    if (ex.timer) clearTimeout(ex.timer);
    this.stats.inFlight--;
    if (this.stats.inFlight === 0 && this.drained) this.drained();
  }

  private handle(res: HttpResponse, req: HttpRequest, kind: Kind, path: string): void {
    const ex: Exchange = { res, done: false, timer: null, dropping: false };
    res.onAborted(() => {
      if (!ex.dropping) this.stats.aborted++;
      this.finish(ex);
    });
    // req is only valid synchronously: read everything we need now.
    const contentLength = Number(req.getHeader('content-length') || 0);
    const waitHeader = req.getHeader('x-sluice-wait-ms');
    let waitMs = this.opts.waitMs;
    let badWait = false;
    if (waitHeader !== '') {
      const w = Number(waitHeader);
      if (Number.isFinite(w) && w >= 0) {
        if (w > MAX_TIMER_MS) badWait = true;
        else waitMs = w;
      }
    }
    // The wait is counted from here, not from when the body has been read (no
    // clock read for wait 0, the throughput path).
    const arrived = waitMs > 0 ? performance.now() : 0;
    this.stats.inFlight++;
    this.count(path);
    readBodyTransient(res, contentLength, this.opts.maxBodyBytes, (result) => {
      if (ex.done) return;
      if (!result.ok) {
        this.fail(ex, 413, `Request body exceeds ${this.opts.maxBodyBytes} bytes.`, 'request_too_large', null, true);
        return;
      }
      if (badWait) {
        // A Node timer fires at once past MAX_TIMER_MS: the wait would silently be 0.
        this.fail(ex, 400, `x-sluice-wait-ms must be at most ${MAX_TIMER_MS}.`, 'invalid_header', null);
        return;
      }
      this.onBody(ex, kind, result.body, waitMs, arrived);
    });
  }

  private onBody(ex: Exchange, kind: Kind, body: Buffer, waitMs: number, arrived: number): void {
    this.stats.bodyBytes += body.length;
    let parsed: unknown;
    const last = this.lastBody;
    if (last !== null && last.length === body.length && last.equals(body)) {
      parsed = this.lastParsed;
    } else {
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        this.fail(ex, 400, 'We could not parse the JSON body of your request.', 'invalid_json', null);
        return;
      }
      // The body may be a view of uWS's transient buffer: keep a copy.
      if (body.length <= 65536) {
        this.lastBody = Buffer.from(body);
        this.lastParsed = parsed;
      }
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      this.fail(ex, 400, 'The request body must be a JSON object.', 'invalid_body', null);
      return;
    }
    const p = parsed as Record<string, unknown>;
    if (typeof p.model !== 'string' || p.model === '') {
      this.fail(ex, 400, "you must provide a model parameter ('model' must be a non-empty string)", 'missing_required_parameter', 'model');
      return;
    }
    if (kind === 'embedding' && p.input === undefined) {
      this.fail(ex, 400, "'input' is a required property", 'missing_required_parameter', 'input');
      return;
    }
    if (Array.isArray(p.input) && p.input.length > MAX_EMBEDDING_INPUTS) {
      // OpenAI's limit; without it a 6 MB body asks for a response too big for a string.
      this.fail(ex, 400, `'input' must have at most ${MAX_EMBEDDING_INPUTS} items.`, 'invalid_value', 'input');
      return;
    }

    const r = this.opts.dropRate > 0 || this.opts.errorRate > 0 ? this.rng() : 1;
    if (r < this.opts.dropRate) {
      this.stats.dropsInjected++;
      ex.dropping = true;
      ex.res.close();
      return;
    }
    if (r < this.opts.dropRate + this.opts.errorRate) {
      this.stats.errorsInjected++;
      const st = this.opts.errorStatus;
      this.fail(ex, st, `Injected failure (sink --error-rate ${this.opts.errorRate}).`, 'injected_error', null);
      return;
    }
    const model = p.model;
    const prompt = estimatePromptTokens(body.length);
    if (kind === 'embedding') {
      const inputs = Array.isArray(p.input) && p.input.length > 0 && typeof p.input[0] !== 'number' ? p.input.length : 1;
      const out = R.embeddings(model, inputs, this.opts.embeddingDims, p.encoding_format === 'base64', prompt);
      this.stats.promptTokens += prompt;
      this.after(ex, waitMs, arrived, () => this.send(ex, out));
      return;
    }
    const cap = typeof p.max_tokens === 'number' ? p.max_tokens : typeof p.max_completion_tokens === 'number' ? p.max_completion_tokens : Infinity;
    if (!Number.isInteger(cap) && cap !== Infinity) {
      // 2.5 tokens cannot be sent; and each fraction would be a new entry in the text cache.
      const field = typeof p.max_tokens === 'number' ? 'max_tokens' : 'max_completion_tokens';
      this.fail(ex, 400, `Invalid type for '${field}': expected an integer.`, 'invalid_type', field);
      return;
    }
    const n = Math.max(0, Math.min(this.opts.outputTokens, cap));
    const finishReason = n < this.opts.outputTokens ? 'length' : 'stop';
    const usage = { prompt, completion: n };
    this.stats.promptTokens += prompt;
    this.stats.completionTokens += n;
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-sink${(++this.seq).toString(36)}`;
    const created = Math.floor(Date.now() / 1000);
    if (p.stream === true) {
      this.stats.streamed++;
      const so = p.stream_options as { include_usage?: unknown } | undefined;
      const includeUsage = typeof so === 'object' && so !== null && so.include_usage === true;
      this.after(ex, waitMs, arrived, () => this.stream(ex, kind, id, created, model, n, finishReason, includeUsage ? usage : null));
      return;
    }
    const out =
      kind === 'chat'
        ? R.chatCompletion(id, created, model, n, finishReason, usage)
        : R.completion(id, created, model, n, finishReason, usage);
    this.after(ex, waitMs, arrived, () => this.send(ex, out));
  }

  /** Runs fn `ms` after the request arrived (at once for 0: no timer, no measurement). */
  private after(ex: Exchange, ms: number, arrived: number, fn: () => void): void {
    if (ms <= 0) fn();
    else ex.timer = this.deadlines.at(arrived + ms, fn);
  }

  private send(ex: Exchange, body: string): void {
    if (ex.done) return;
    ex.res.cork(() => {
      // No writeStatus: uWS writes "200 OK" itself, and the call costs ~5% of the sink's rate.
      ex.res.writeHeader('content-type', JSON_HEADER).end(body);
    });
    this.finish(ex);
  }

  private fail(ex: Exchange, status: number, message: string, code: string, param: string | null, close = false): void {
    if (ex.done) return;
    ex.res.cork(() => {
      ex.res
        .writeStatus(statusLine(status))
        .writeHeader('content-type', JSON_HEADER)
        .end(errorBody(message, typeForStatus(status), code, param), close);
    });
    this.finish(ex);
  }

  private stream(
    ex: Exchange,
    kind: Kind,
    id: string,
    created: number,
    model: string,
    n: number,
    finishReason: string,
    usage: R.Usage | null,
  ): void {
    if (ex.done) return;
    const res = ex.res;
    const chat = kind === 'chat';
    res.cork(() => {
      res.writeStatus('200 OK').writeHeader('content-type', 'text/event-stream').writeHeader('cache-control', 'no-cache');
      if (chat) res.write(R.chatChunk(id, created, model, '{"role":"assistant","content":""}', null));
      else res.write('');
    });
    let i = 0;
    // Token i is due at start + ttft + i × itl, each on the precise clock the
    // waits use: a chain of setTimeout(itl) fired ~0.4 ms late each and the
    // lateness added up (64 tokens at 10 ms took 755 ms instead of 730).
    const start = performance.now();
    const { ttftMs, itlMs } = this.opts;
    // Writes the next token, or with no inter-token latency all of them, and
    // the tail ([finish chunk], [usage chunk], [DONE]) after the last one. A
    // token already due is written by the clock at once, from inside this
    // function: `again` turns that into another turn of the loop, not a
    // deeper call (a stream far behind would otherwise recurse per token).
    let running = false;
    let again = false;
    const next = (): void => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      do {
        again = false;
        ex.timer = null;
        if (ex.done) break;
        res.cork(() => {
          do {
            if (i < n) {
              const t = R.token(i);
              res.write(chat ? R.chatChunk(id, created, model, `{"content":${JSON.stringify(t)}}`, null) : R.completionChunk(id, created, model, t, null));
              i++;
            }
          } while (i < n && itlMs <= 0);
          if (i < n) return;
          let tail = chat ? R.chatChunk(id, created, model, '{}', finishReason) : R.completionChunk(id, created, model, '', finishReason);
          if (usage) tail += chat ? R.chatUsageChunk(id, created, model, usage) : R.completionUsageChunk(id, created, model, usage);
          res.end(tail + 'data: [DONE]\n\n');
        });
        if (i >= n) this.finish(ex);
        else ex.timer = this.tokenClock.at(start + ttftMs + i * itlMs, next);
      } while (again);
      running = false;
    };
    if (n === 0 || ttftMs <= 0) next();
    else ex.timer = this.tokenClock.at(start + ttftMs, next);
  }
}
