// The CLI side of the daemon: `sluice orchestrator runs|show|cancel|compare`
// and `sluice bench --daemon URL` (submit, then follow the run's events with
// the same progress bar and tables as a local run).
import { request } from 'undici';
import { sseFrames } from '../../common/sse-frames.js';
import { benchProgress } from '../progress.js';
import type { RunEvent } from '../runner.js';
import type { Matrix } from '../matrix/types.js';
import type { ClientOptions } from './command.js';

interface ApiErrorBody {
  error?: { message?: string; param?: string | null };
}

/** One line and an exit code: 2 for what the user asked wrong (4xx), 1 when the daemon cannot be reached or failed. */
function die(message: string, code: number): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(code);
}

function base(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    die(`--url: "${url}" is not a URL`, 2);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') die(`--url: must be http:// or https://, not ${u.protocol}`, 2);
  return u.origin;
}

async function call<T>(o: ClientOptions, method: string, path: string, body?: unknown): Promise<T> {
  const token = process.env[o.tokenEnv];
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await request(`${base(o.url)}${path}`, { method: method as 'GET', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    die(`cannot reach the daemon at ${o.url}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1);
  }
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    die(`the daemon at ${o.url} answered ${res.statusCode} with something that is not JSON`, 1);
  }
  if (res.statusCode >= 400) {
    const msg = (json as ApiErrorBody).error?.message ?? `status ${res.statusCode}`;
    die(res.statusCode === 401 && !token ? `${msg} (set ${o.tokenEnv})` : msg, res.statusCode < 500 ? 2 : 1);
  }
  return json as T;
}

interface RunView {
  id: string;
  status: string;
  label: string | null;
  created_at: string;
  finished_at: string | null;
  error: string | null;
  progress: { done: number; total: number; label: string | null; fraction: number } | null;
  scenarios: string[];
  systems: string[];
  regressions: number | null;
  compared_with: string | null;
}

const progressText = (r: RunView): string => (r.progress === null ? '' : `${r.progress.done}/${r.progress.total} cells`);

export async function listRuns(o: ClientOptions & { status?: string; label?: string; limit: number; json: boolean }): Promise<void> {
  const q = new URLSearchParams({ limit: String(o.limit) });
  if (o.status) q.set('status', o.status);
  if (o.label) q.set('label', o.label);
  const list = await call<{ data: RunView[]; has_more: boolean }>(o, 'GET', `/v1/runs?${q}`);
  if (o.json) {
    process.stdout.write(JSON.stringify(list, null, 1) + '\n');
    return;
  }
  const rows = list.data.map((r) => [r.id, r.status, r.label ?? '', r.created_at.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), progressText(r), r.regressions ? `${r.regressions} regression(s) vs ${r.compared_with}` : '']);
  const head = ['id', 'status', 'label', 'created', 'progress', ''];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) process.stdout.write(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n');
  if (list.has_more) process.stdout.write(`… more with --limit (up to 100)\n`);
}

export async function showRun(id: string, o: ClientOptions & { json: boolean }): Promise<void> {
  const r = await call<RunView & { tables: string | null; comparison: string | null }>(o, 'GET', `/v1/runs/${encodeURIComponent(id)}`);
  if (o.json) {
    process.stdout.write(JSON.stringify(r, null, 1) + '\n');
    return;
  }
  process.stdout.write(`${r.id}  ${r.status}${r.label ? `  ${r.label}` : ''}  ${progressText(r)}${r.error ? `\n${r.error}` : ''}\n`);
  if (r.tables) process.stdout.write('\n' + r.tables);
  if (r.comparison) process.stdout.write('\n' + r.comparison);
}

export async function cancelRun(id: string, o: ClientOptions): Promise<void> {
  const r = await call<RunView>(o, 'DELETE', `/v1/runs/${encodeURIComponent(id)}`);
  process.stdout.write(`${r.id}  ${r.status === 'running' ? 'cancelling' : r.status}\n`);
}

export async function compareRuns(baseId: string, headId: string, o: ClientOptions & { json: boolean }): Promise<void> {
  const c = await call<{ markdown: string; regressions: number }>(o, 'GET', `/v1/compare?base=${encodeURIComponent(baseId)}&head=${encodeURIComponent(headId)}`);
  process.stdout.write(o.json ? JSON.stringify(c, null, 1) + '\n' : c.markdown);
  if (c.regressions > 0) process.exit(1);
}

/**
 * `sluice bench --daemon URL`: submits the matrix; with `detach` prints the run id and returns,
 * otherwise follows the run with the progress bar and prints its tables. Ctrl-C stops following
 * (the run goes on in the daemon; `sluice orchestrator cancel ID` stops it). Returns the exit code.
 */
export async function benchOnDaemon(matrix: Matrix, o: ClientOptions & { detach: boolean; label?: string; provider?: string }): Promise<number> {
  const created = await call<RunView>(o, 'POST', '/v1/runs', { matrix, ...(o.label ? { label: o.label } : {}), ...(o.provider && o.provider !== 'local' ? { provider: o.provider } : {}) });
  if (o.detach) {
    process.stdout.write(created.id + '\n');
    return 0;
  }
  process.stderr.write(`run ${created.id} queued on ${o.url}\n`);
  const token = process.env[o.tokenEnv];
  const progress = benchProgress();
  let final: RunView | null = null;
  process.once('SIGINT', () => {
    progress.stop();
    process.stderr.write(`\nstopped following; the run goes on: sluice orchestrator cancel ${created.id} --url ${o.url}\n`);
    process.exit(130);
  });
  try {
    const ev = await request(`${base(o.url)}/v1/runs/${created.id}/events`, { headers: { accept: 'text/event-stream', ...(token ? { authorization: `Bearer ${token}` } : {}) }, bodyTimeout: 0 });
    for await (const { event, data } of sseFrames(ev.body)) {
      if (event === 'runner') progress.onEvent((JSON.parse(data) as { event: RunEvent }).event);
      else if (event === 'status') {
        const r = JSON.parse(data) as RunView;
        if (r.status !== 'queued' && r.status !== 'running') final = r;
      }
    }
  } finally {
    progress.stop();
  }
  const r = await call<RunView & { tables: string | null }>(o, 'GET', `/v1/runs/${created.id}`);
  final = r;
  if (r.tables) process.stdout.write('\n' + r.tables);
  process.stderr.write(`\nrun ${r.id}: ${r.status}${r.error ? ` (${r.error})` : ''}; report: ${base(o.url)}/v1/runs/${r.id}/report\n`);
  return final.status === 'completed' ? 0 : 1;
}
