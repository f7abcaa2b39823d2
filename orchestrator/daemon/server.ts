// `sluice orchestrator serve`: the REST API (JSON, OpenAI-shaped errors), the
// run events as SSE, the reports, /metrics and the web page. node:http is
// plenty: this server answers a handful of requests while a run drives load
// from other processes.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { serveAsset, webAssets } from '../../common/web-assets.js';
import { Cron } from 'croner';
import { listenOn, readBodyLimited, refuseCrossSite, refuseNonJson, sendError, sendJson } from '../../common/http-guard.js';
import { bearerMatches, tokenDigest } from '../../common/bearer-token.js';
import { DEFAULT_MATRIX_YAML, defaultMatrix } from '../matrix/default.js';
import { MatrixError, parseMatrix, validateMatrix } from '../matrix/schema.js';
import type { Matrix } from '../matrix/types.js';
import { compareResults, formatComparison } from '../report/compare.js';
import { reportHtml } from '../report/html.js';
import { formatTables } from '../report/tables.js';
import type { DaemonEvent, Executor } from './executor.js';
import { plan, type RunEvent } from '../runner.js';
import type { Scheduler } from './scheduler.js';
import { PROVIDERS, RUN_STATUSES, type DaemonStore, type Provider, type RunRecord, type RunStatus } from './store.js';
import { netnsRefusal } from '../providers/netns.js';

const MAX_BODY = 1024 * 1024;
const STATIC = webAssets(fileURLToPath(new URL('./web/', import.meta.url)));

/** A request the API refuses: its status, message, code and the field at fault. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

export interface DaemonServerOptions {
  /** Bearer token every API request must carry (the web page asks for it once). */
  token?: string;
  /** Custom systems with a `command` run it with sh: refused unless the operator allows it. */
  allowCommands: boolean;
  /** `provider: gcp` runs: refused unless the operator allowed them (--allow-gcp); the project when the matrix names none. */
  allowGcp?: boolean;
  gcpProject?: string;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

/** The public view of a run (what the list and the events carry). */
function runView(r: RunRecord): Record<string, unknown> {
  return {
    id: r.id,
    object: 'run',
    status: r.status,
    label: r.label,
    created_at: r.createdAt,
    started_at: r.startedAt,
    finished_at: r.finishedAt,
    error: r.error,
    progress: r.progress,
    schedule_id: r.scheduleId,
    matrix_key: r.matrixKey,
    provider: r.provider,
    scenarios: r.matrix.scenarios.map((s) => s.name),
    systems: r.matrix.systems,
    compared_with: r.comparedWith,
    regressions: r.regressions,
    summary: r.summary,
  };
}

export class DaemonServer {
  private readonly server: Server;
  private listenHost = '';
  private readonly tokenDigest: Buffer | null;
  private readonly listeners = new Map<string, Set<ServerResponse>>();
  private readonly log: NonNullable<DaemonServerOptions['log']>;
  /** API answer times (ms), the last 1,000: the daemon's own responsiveness, in /metrics. */
  private readonly answerMs: number[] = [];

  constructor(
    private readonly store: DaemonStore,
    private readonly executor: Executor,
    private readonly scheduler: Scheduler,
    private readonly opts: DaemonServerOptions,
  ) {
    this.tokenDigest = opts.token ? tokenDigest(opts.token) : null;
    this.log = opts.log ?? (() => undefined);
    this.server = createServer((req, res) => {
      const started = performance.now();
      res.on('finish', () => {
        if (this.answerMs.length >= 1000) this.answerMs.shift();
        this.answerMs.push(performance.now() - started);
      });
      this.route(req, res).catch((err: unknown) => {
        if (err instanceof ApiError) {
          if (!res.headersSent) sendError(res, err.status, err.message, err.code, err.param);
          return;
        }
        this.log('error', 'request failed inside the daemon', { err: err instanceof Error ? err.message : String(err), path: req.url });
        if (!res.headersSent) sendError(res, 500, 'The daemon failed while handling this request.', 'internal_error');
        else res.destroy();
      });
    });
    this.server.keepAliveTimeout = 5000;
    executor.on('event', (e) => this.broadcast(e));
  }

  listen(port: number, host: string): Promise<number> {
    this.listenHost = host.toLowerCase();
    return listenOn(this.server, port, host);
  }

  async close(): Promise<void> {
    for (const set of this.listeners.values()) for (const l of set) l.end();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://daemon');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const refused = refuseCrossSite(req, this.listenHost);
    if (refused) return sendError(res, refused.status, refused.message, refused.code);
    // The page itself holds nothing secret; it asks for the token when the API wants one.
    if (await serveAsset(STATIC, path, method, res)) return;
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (this.tokenDigest !== null && !bearerMatches(req.headers.authorization ?? '', this.tokenDigest)) {
      throw new ApiError(401, 'Missing or wrong token: send it as "Authorization: Bearer <token>" (the daemon was started with --token-env).', 'invalid_token');
    }
    if (path === '/metrics' && method === 'GET') return this.metrics(res);
    if (path === '/v1/matrix/default' && method === 'GET') return sendJson(res, 200, { object: 'matrix', yaml: DEFAULT_MATRIX_YAML, matrix: defaultMatrix() });
    if (path === '/v1/providers' && method === 'GET') return sendJson(res, 200, { object: 'list', data: PROVIDERS.map((id) => ({ id, ...this.providerRefusal(id) })) });
    if (path === '/v1/runs') {
      if (method === 'POST') return this.createRun(req, res);
      if (method === 'GET') return this.listRuns(url, res);
      throw new ApiError(405, `Method ${method} is not allowed on ${path}.`, 'method_not_allowed');
    }
    const run = /^\/v1\/runs\/([^/]+)(\/events|\/report|\/tables)?$/.exec(path);
    if (run) {
      const r = this.findRun(run[1]!);
      const sub = run[2];
      if (sub === undefined && method === 'GET') return this.showRun(r, res);
      if (sub === undefined && method === 'DELETE') return sendJson(res, 200, runView(this.executor.cancel(r.id) ?? r));
      if (sub === '/events' && method === 'GET') return this.events(r, req, res);
      if (sub === '/report' && method === 'GET') return this.report(r, res);
      throw new ApiError(405, `Method ${method} is not allowed on ${path}.`, 'method_not_allowed');
    }
    if (path === '/v1/compare' && method === 'GET') return this.compare(url, res);
    if (path === '/v1/schedules') {
      if (method === 'POST') return this.createSchedule(req, res);
      if (method === 'GET') return sendJson(res, 200, { object: 'list', data: this.store.listSchedules().map((s) => this.scheduleView(s.id)) });
      throw new ApiError(405, `Method ${method} is not allowed on ${path}.`, 'method_not_allowed');
    }
    const sched = /^\/v1\/schedules\/([^/]+)$/.exec(path);
    if (sched) {
      const id = decode(sched[1]!);
      const s = id === null ? null : this.store.schedule(id);
      if (s === null) throw new ApiError(404, `No schedule with id '${sched[1]}'.`, 'schedule_not_found', 'id');
      if (method === 'GET') return sendJson(res, 200, this.scheduleView(s.id));
      if (method === 'DELETE') {
        this.scheduler.remove(s.id);
        this.store.deleteSchedule(s.id);
        return sendJson(res, 200, { id: s.id, object: 'schedule', deleted: true });
      }
      throw new ApiError(405, `Method ${method} is not allowed on ${path}.`, 'method_not_allowed');
    }
    throw new ApiError(404, `Unknown request URL: ${method} ${path}`, 'unknown_url');
  }

  private findRun(raw: string): RunRecord {
    const id = decode(raw);
    const r = id === null ? null : this.store.run(id);
    if (r === null) throw new ApiError(404, `No run with id '${raw}'.`, 'run_not_found', 'id');
    return r;
  }

  /** The JSON body of a POST (415, 413 and 400 as the load generator's API). */
  private async jsonBody(req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown>> {
    const notJson = refuseNonJson(req);
    if (notJson) {
      res.setHeader('connection', 'close');
      throw new ApiError(notJson.status, notJson.message, notJson.code, notJson.param ?? null);
    }
    const body = await readBodyLimited(req, MAX_BODY);
    if (body === null) {
      res.setHeader('connection', 'close');
      throw new ApiError(413, `The request body exceeds ${MAX_BODY} bytes.`, 'request_too_large', 'body');
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      throw new ApiError(400, 'We could not parse the JSON body of your request.', 'invalid_json', 'body');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ApiError(400, 'The request body must be a JSON object.', 'invalid_request', 'body');
    return parsed as Record<string, unknown>;
  }

  /** `matrix`: an object, or the text of a matrix file (YAML or JSON); the bench issue's one schema. */
  private matrixOf(body: Record<string, unknown>): Matrix {
    const raw = body.matrix;
    if (raw === undefined) throw new ApiError(400, "'matrix' is required: a matrix object, or its YAML text (GET /v1/matrix/default for a start).", 'invalid_matrix', 'matrix');
    let m: Matrix;
    try {
      m = typeof raw === 'string' ? parseMatrix(raw) : validateMatrix(raw);
    } catch (err) {
      if (err instanceof MatrixError) {
        // "matrix: scenarios.0.wait_ms: must be >= 0" names a field; "matrix: not valid YAML …" does not.
        const field = /^matrix: ([\w.-]+):/.exec(err.message)?.[1];
        throw new ApiError(400, err.message, 'invalid_matrix', field === undefined ? 'matrix' : `matrix.${field}`);
      }
      throw err;
    }
    if (!this.opts.allowCommands) {
      for (const [name, c] of Object.entries(m.custom)) {
        if (c.command !== undefined) {
          throw new ApiError(
            403,
            `matrix: custom.${name}.command: this daemon does not start commands from submitted matrices (start it with --allow-commands); describe a gateway that runs already with url alone`,
            'commands_not_allowed',
            `matrix.custom.${name}.command`,
          );
        }
      }
    }
    return m;
  }

  /** Whether this daemon runs a provider's runs: `{available: true}`, or false and why (GET /v1/providers, and the check of a submitted run). */
  private providerRefusal(p: Provider): { available: boolean; reason?: string } {
    if (p === 'netns') {
      const why = netnsRefusal();
      if (why !== null) return { available: false, reason: `netns is not possible on this machine: ${why}` };
    }
    if (p === 'gcp' && !this.opts.allowGcp) return { available: false, reason: 'gcp runs create VMs that cost money; this daemon does not allow them (sluice orchestrator serve --allow-gcp)' };
    return { available: true };
  }

  /** `provider`: local (default), netns (where this machine allows namespaces) or gcp (where the operator allowed it). */
  private providerOf(body: Record<string, unknown>): Provider {
    const p = body.provider ?? 'local';
    if (typeof p !== 'string' || !PROVIDERS.includes(p as Provider)) throw new ApiError(400, `'provider' must be one of ${PROVIDERS.join(', ')}.`, 'invalid_provider', 'provider');
    const refusal = this.providerRefusal(p as Provider);
    if (!refusal.available) throw new ApiError(400, `'provider': ${refusal.reason}.`, 'invalid_provider', 'provider');
    return p as Provider;
  }

  private labelOf(body: Record<string, unknown>): string | null {
    const l = body.label;
    if (l === undefined || l === null) return null;
    if (typeof l !== 'string' || l.length === 0 || l.length > 200) throw new ApiError(400, "'label' must be a string of 1 to 200 characters.", 'invalid_label', 'label');
    return l;
  }

  private async createRun(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await this.jsonBody(req, res);
    const matrix = this.matrixOf(body);
    const provider = this.providerOf(body);
    if (provider === 'gcp' && matrix.gcp?.project === undefined && this.opts.gcpProject === undefined) {
      throw new ApiError(400, "'matrix.gcp.project': a gcp run needs the GCP project (this daemon has no --gcp-project).", 'invalid_matrix', 'matrix.gcp.project');
    }
    const run = this.store.createRun(matrix, this.labelOf(body), null, provider);
    this.log('info', 'run queued', { run: run.id, label: run.label });
    this.executor.pump();
    sendJson(res, 202, runView(this.store.run(run.id)!));
  }

  private listRuns(url: URL, res: ServerResponse): void {
    const q = url.searchParams;
    const limitText = q.get('limit') ?? '20';
    const limit = Number(limitText);
    if (!/^\d+$/.test(limitText) || limit < 1 || limit > 100) throw new ApiError(400, "'limit' must be an integer from 1 to 100.", 'invalid_limit', 'limit');
    const status = q.get('status') ?? undefined;
    if (status !== undefined && !RUN_STATUSES.includes(status as RunStatus)) throw new ApiError(400, `'status' must be one of ${RUN_STATUSES.join(', ')}.`, 'invalid_status', 'status');
    const after = q.get('after') ?? undefined;
    if (after !== undefined && this.store.run(after) === null) throw new ApiError(400, `'after' names no run: '${after}'.`, 'invalid_after', 'after');
    const { runs, hasMore } = this.store.listRuns({ limit, after, status: status as RunStatus | undefined, label: q.get('label') ?? undefined, matrixKey: q.get('matrix_key') ?? undefined });
    sendJson(res, 200, { object: 'list', data: runs.map(runView), has_more: hasMore, last_id: runs.at(-1)?.id ?? null });
  }

  private showRun(r: RunRecord, res: ServerResponse): void {
    const results = this.store.readResults(r.id);
    sendJson(res, 200, { ...runView(r), matrix: r.matrix, results, tables: results === null ? null : formatTables(results), comparison: this.store.readFile(r.id, 'compare.md') });
  }

  private report(r: RunRecord, res: ServerResponse): void {
    // A finished run's report as written; one under way (or cut off) from what it finished so far.
    const html = r.status === 'running' || r.status === 'interrupted' ? null : this.store.readFile(r.id, 'report.html');
    const results = html === null ? this.store.readResults(r.id) : null;
    if (html === null && results === null) throw new ApiError(404, `Run ${r.id} has no results yet (${r.status}).`, 'report_not_ready', 'id');
    const text = html ?? reportHtml(results!);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private compare(url: URL, res: ServerResponse): void {
    const ids = ['base', 'head'].map((k) => {
      const v = url.searchParams.get(k);
      if (v === null) throw new ApiError(400, `'${k}' is required: the id of a run.`, 'invalid_compare', k);
      const r = this.store.run(v);
      if (r === null) throw new ApiError(404, `No run with id '${v}'.`, 'run_not_found', k);
      const results = this.store.readResults(v);
      if (results === null) throw new ApiError(409, `Run ${v} has no results yet (${r.status}).`, 'run_not_ready', k);
      return results;
    });
    const c = compareResults(ids[0]!, ids[1]!);
    sendJson(res, 200, { object: 'comparison', base_id: url.searchParams.get('base'), head_id: url.searchParams.get('head'), ...c, markdown: formatComparison(c) });
  }

  private scheduleView(id: string): Record<string, unknown> {
    const s = this.store.schedule(id)!;
    return {
      id: s.id,
      object: 'schedule',
      cron: s.cron,
      label: s.label,
      created_at: s.createdAt,
      last_run_id: s.lastRunId,
      next_run_at: this.scheduler.nextRun(s.id)?.toISOString() ?? null,
      scenarios: s.matrix.scenarios.map((x) => x.name),
      systems: s.matrix.systems,
    };
  }

  private async createSchedule(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await this.jsonBody(req, res);
    const cron = body.cron;
    if (typeof cron !== 'string' || cron.trim() === '') throw new ApiError(400, "'cron' is required: a cron expression (5 fields, or 6 with seconds first).", 'invalid_cron', 'cron');
    try {
      new Cron(cron, { paused: true }).stop();
    } catch (err) {
      throw new ApiError(400, `'cron' is not a valid cron expression: ${err instanceof Error ? err.message : String(err)}`, 'invalid_cron', 'cron');
    }
    const matrix = this.matrixOf(body);
    const s = this.store.createSchedule(cron, matrix, this.labelOf(body));
    this.scheduler.add(s);
    this.log('info', 'schedule created', { schedule: s.id, cron });
    sendJson(res, 201, this.scheduleView(s.id));
  }

  private events(r: RunRecord, req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write(`event: status\ndata: ${JSON.stringify(runView(r))}\n\n`);
    if (r.status !== 'queued' && r.status !== 'running') {
      res.end();
      return;
    }
    if (r.status === 'running') {
      // A client that joins late gets the plan and the cell under way, as one that came early did.
      const now: RunEvent[] = [{ type: 'plan', units: plan(r.matrix) }];
      if (r.progress?.label) now.push({ type: 'start', unit: r.progress.done, label: r.progress.label });
      for (const event of now) res.write(`event: runner\ndata: ${JSON.stringify({ type: 'runner', runId: r.id, event })}\n\n`);
    }
    let set = this.listeners.get(r.id);
    if (set === undefined) this.listeners.set(r.id, (set = new Set()));
    set.add(res);
    req.on('close', () => {
      set.delete(res);
      if (set.size === 0) this.listeners.delete(r.id);
    });
  }

  private broadcast(e: DaemonEvent): void {
    const id = e.type === 'status' ? e.run.id : e.runId;
    const set = this.listeners.get(id);
    if (set === undefined) return;
    const data = e.type === 'status' ? runView(e.run) : e;
    const frame = `event: ${e.type}\ndata: ${JSON.stringify(data)}\n\n`;
    const final = e.type === 'status' && e.run.status !== 'queued' && e.run.status !== 'running';
    for (const l of set) {
      l.write(frame);
      if (final) l.end();
    }
    if (final) this.listeners.delete(id);
  }

  private metrics(res: ServerResponse): void {
    const counts = this.store.countByStatus();
    const sorted = [...this.answerMs].sort((a, b) => a - b);
    const q = (p: number): number => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! / 1000);
    const lines = [
      '# HELP sluice_orchestrator_regressions_total Regressions flagged on scheduled runs against the previous run of their schedule.',
      '# TYPE sluice_orchestrator_regressions_total counter',
      `sluice_orchestrator_regressions_total ${this.store.regressionsTotal()}`,
      '# HELP sluice_orchestrator_runs Runs in the history by status.',
      '# TYPE sluice_orchestrator_runs gauge',
      ...RUN_STATUSES.map((s) => `sluice_orchestrator_runs{status="${s}"} ${counts[s]}`),
      '# HELP sluice_orchestrator_schedules Schedules defined.',
      '# TYPE sluice_orchestrator_schedules gauge',
      `sluice_orchestrator_schedules ${this.store.listSchedules().length}`,
      '# HELP sluice_orchestrator_api_seconds API answer time over the last 1,000 requests.',
      '# TYPE sluice_orchestrator_api_seconds summary',
      `sluice_orchestrator_api_seconds{quantile="0.5"} ${q(0.5)}`,
      `sluice_orchestrator_api_seconds{quantile="0.99"} ${q(0.99)}`,
      `sluice_orchestrator_api_seconds_count ${sorted.length}`,
    ];
    const text = lines.join('\n') + '\n';
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }
}

function decode(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}
