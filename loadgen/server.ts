// `sluice loadgen serve`: a REST API that starts, watches (JSON or SSE) and
// cancels one load test at a time, and the web page that drives it. node:http
// is plenty here: this server handles a handful of requests per run, and the
// load itself comes from the worker threads.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { serveAsset, webAssets } from '../common/web-assets.js';
import { randomUUID } from 'node:crypto';
import { listenOn, readBodyLimited, refuseCrossSite, refuseNonJson, sendError, sendJson } from '../common/http-guard.js';
import { parseSpec, publicSpec, SpecError, type RunSpec } from './spec.js';
import { runLoad, type Progress } from './run.js';
import { percentileCurve, type LoadgenResult } from './result.js';

export type BenchmarkStatus = 'running' | 'completed' | 'canceled' | 'failed';

export interface Benchmark {
  id: string;
  object: 'benchmark';
  status: BenchmarkStatus;
  spec: RunSpec;
  createdAt: string;
  finishedAt: string | null;
  progress: Progress | null;
  result: LoadgenResult | null;
  /** Latency (ms) at percentiles from 0 to 100, for the page's chart. */
  percentiles: { p: number; ms: number }[] | null;
  error: string | null;
}

const STATIC = webAssets(fileURLToPath(new URL('./web/', import.meta.url)));
const MAX_BODY = 1024 * 1024;
const KEEP = 100;

interface Entry {
  bench: Benchmark;
  abort: AbortController;
  listeners: Set<ServerResponse>;
}

export class LoadgenServer {
  private readonly server: Server;
  private readonly entries = new Map<string, Entry>();
  private current: Entry | null = null;
  /** The address given to listen(): a Host header naming it is ours. */
  private listenHost = '';

  constructor() {
    this.server = createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.fail(res, 500, err instanceof Error ? err.message : String(err), 'internal_error');
        else res.destroy();
      });
    });
    this.server.keepAliveTimeout = 5000;
  }

  listen(port: number, host: string): Promise<number> {
    this.listenHost = host.toLowerCase();
    return listenOn(this.server, port, host);
  }

  async close(): Promise<void> {
    if (this.current) {
      this.current.abort.abort();
      await new Promise<void>((r) => {
        const t = setInterval(() => {
          if (!this.current) {
            clearInterval(t);
            r();
          }
        }, 20);
      });
    }
    for (const e of this.entries.values()) for (const l of e.listeners) l.end();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private send(res: ServerResponse, status: number, body: unknown): void {
    sendJson(res, status, body);
  }

  private fail(res: ServerResponse, status: number, message: string, code: string, param: string | null = null): void {
    sendError(res, status, message, code, param);
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    const method = req.method ?? 'GET';
    const refused = refuseCrossSite(req, this.listenHost);
    if (refused) return this.fail(res, refused.status, refused.message, refused.code);
    if (await serveAsset(STATIC, path, method, res)) return;
    if (path === '/healthz' && (method === 'GET' || method === 'HEAD')) return this.send(res, 200, { status: 'ok' });
    if (path === '/v1/benchmarks') {
      if (method === 'POST') return this.create(req, res);
      if (method === 'GET') {
        this.send(res, 200, { object: 'list', data: [...this.entries.values()].map((e) => e.bench).reverse() });
        return;
      }
      return this.fail(res, 405, `Method ${method} is not allowed on ${path}.`, 'method_not_allowed');
    }
    const m = /^\/v1\/benchmarks\/([^/]+)(\/events)?$/.exec(path);
    if (m) {
      let id: string;
      try {
        id = decodeURIComponent(m[1]!);
      } catch {
        // A malformed %-escape names no benchmark.
        id = '';
      }
      const entry = id === '' ? undefined : this.entries.get(id);
      if (!entry) return this.fail(res, 404, `No benchmark with id '${m[1]}'.`, 'benchmark_not_found', 'id');
      if (m[2] && method === 'GET') return this.events(entry, req, res);
      if (!m[2] && method === 'GET') return this.send(res, 200, entry.bench);
      if (!m[2] && method === 'DELETE') {
        if (entry.bench.status === 'running') entry.abort.abort();
        return this.send(res, 200, entry.bench);
      }
      return this.fail(res, 405, `Method ${method} is not allowed on ${path}.`, 'method_not_allowed');
    }
    this.fail(res, 404, `Unknown request URL: ${method} ${path}`, 'unknown_url');
  }

  private parseJson(body: Buffer): unknown {
    try {
      return JSON.parse(body.toString('utf8'));
    } catch {
      throw new SpecError('we could not parse the JSON body of your request', 'body');
    }
  }

  private async create(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const notJson = refuseNonJson(req);
    if (notJson) {
      res.setHeader('connection', 'close');
      return this.fail(res, notJson.status, notJson.message, notJson.code, notJson.param);
    }
    const body = await readBodyLimited(req, MAX_BODY);
    if (body === null) {
      res.setHeader('connection', 'close');
      return this.fail(res, 413, `The request body exceeds ${MAX_BODY} bytes.`, 'request_too_large', 'body');
    }
    let spec: RunSpec;
    try {
      spec = parseSpec(this.parseJson(body));
    } catch (err) {
      if (err instanceof SpecError) return this.fail(res, 400, `Invalid benchmark: ${err.message}.`, 'invalid_spec', err.field);
      throw err;
    }
    if (this.current) {
      return this.fail(res, 409, `Benchmark ${this.current.bench.id} is running; cancel it (DELETE /v1/benchmarks/${this.current.bench.id}) or wait for it to end.`, 'benchmark_running');
    }
    const bench: Benchmark = {
      id: `bench_${randomUUID().replace(/-/g, '').slice(0, 16)}`,
      object: 'benchmark',
      status: 'running',
      spec: publicSpec(spec),
      createdAt: new Date().toISOString(),
      finishedAt: null,
      progress: null,
      result: null,
      percentiles: null,
      error: null,
    };
    const entry: Entry = { bench, abort: new AbortController(), listeners: new Set() };
    this.entries.set(bench.id, entry);
    for (const id of [...this.entries.keys()].slice(0, Math.max(0, this.entries.size - KEEP))) this.entries.delete(id);
    this.current = entry;
    void this.execute(entry, spec);
    this.send(res, 201, bench);
  }

  private async execute(entry: Entry, spec: RunSpec): Promise<void> {
    const b = entry.bench;
    try {
      const result = await runLoad(spec, {
        signal: entry.abort.signal,
        progressMs: 250,
        onProgress: (p) => {
          b.progress = p;
          this.broadcast(entry, 'progress', p);
        },
      });
      const { canceled, ...rest } = result;
      b.result = rest;
      b.percentiles = percentileCurve(rest.histogram);
      b.status = canceled ? 'canceled' : 'completed';
    } catch (err) {
      b.status = entry.abort.signal.aborted ? 'canceled' : 'failed';
      b.error = err instanceof Error ? err.message : String(err);
    }
    b.finishedAt = new Date().toISOString();
    this.current = null;
    this.broadcast(entry, 'done', b);
    for (const l of entry.listeners) l.end();
    entry.listeners.clear();
  }

  private broadcast(entry: Entry, event: string, data: unknown): void {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const l of entry.listeners) l.write(frame);
  }

  private events(entry: Entry, req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    if (entry.bench.status !== 'running') {
      res.end(`event: done\ndata: ${JSON.stringify(entry.bench)}\n\n`);
      return;
    }
    if (entry.bench.progress) res.write(`event: progress\ndata: ${JSON.stringify(entry.bench.progress)}\n\n`);
    else res.write(': started\n\n');
    entry.listeners.add(res);
    req.on('close', () => entry.listeners.delete(res));
  }
}

export { hostAllowed } from '../common/http-guard.js';
