// `sluice orchestrator serve` end to end: real daemons on loopback, real
// matrix runs (tiny ones), SIGKILL and restart on the same data directory.
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { runCli, spawnCli, type RunningProcess } from '../helpers/sink.js';
import { waitFor } from '../helpers/gateway.js';
import { checkResults } from '../../orchestrator/results-schema.js';
import type { Results } from '../../orchestrator/results.js';
import { alive, descendants } from '../../common/procs.js';
import { netnsRefusal } from '../../orchestrator/providers/netns.js';
import { netnsLock } from '../helpers/netns-lock.js';

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return String(pid);
  }
}

interface Daemon extends RunningProcess {
  origin: string;
  dir: string;
}

async function startDaemon(t: Test, dir = mkdtempSync(join(tmpdir(), 'sluice-daemon-')), args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
  const p = await spawnCli(t, ['orchestrator', 'serve', '--port', '0', '--data', dir, ...args], env, (m) => m.msg === 'orchestrator listening');
  return { ...p, origin: `http://127.0.0.1:${p.ready.port as number}`, dir };
}

/** One scenario of `seconds` per cell, on the systems given: a cell takes about a second more than that. */
const tiny = (name: string, systems: string[] = ['baseline'], seconds = 1) => ({
  scenarios: [{ name, workers: 4, wait_ms: 10, duration_s: seconds }],
  systems,
  warmup_s: 0,
});
/** A quick cell, then one of `seconds` through sluice: a run to cut in its second cell. */
const twoCells = (name: string, seconds: number) => ({
  scenarios: [
    { name: `${name}-quick`, workers: 4, wait_ms: 10, duration_s: 1 },
    { name, workers: 4, wait_ms: 10, duration_s: seconds },
  ],
  systems: ['baseline'],
  warmup_s: 0,
});

interface RunView {
  id: string;
  status: string;
  label: string | null;
  started_at: string | null;
  finished_at: string | null;
  progress: { done: number; total: number } | null;
  compared_with: string | null;
  regressions: number | null;
  summary: Record<string, number> | null;
  error: string | null;
}

async function api<T = RunView>(d: Daemon, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: T }> {
  const res = await request(`${d.origin}${path}`, {
    method: method as 'GET',
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: (text.startsWith('{') ? JSON.parse(text) : text) as T };
}

const submit = async (d: Daemon, matrix: unknown, label?: string): Promise<RunView> => {
  const r = await api(d, 'POST', '/v1/runs', { matrix, ...(label ? { label } : {}) });
  if (r.status !== 202) throw new Error(`POST /v1/runs: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};

const finished = (d: Daemon, id: string, ms = 60_000): Promise<boolean> =>
  waitFor(async () => {
    const r = await api(d, 'GET', `/v1/runs/${id}`);
    return !['queued', 'running'].includes(r.body.status);
  }, ms);

t.test('a run submitted over REST completes; its history, results, tables and report are served; two runs go in order', async (t) => {
  const d = await startDaemon(t);
  const first = await submit(d, tiny('first', ['baseline', 'sluice']), 'nightly');
  const second = await submit(d, stringify(tiny('second')), 'yaml');
  t.equal(second.status, 'queued', 'the second waits for the first');
  t.ok(await finished(d, second.id), 'both finish');
  const a = (await api(d, 'GET', `/v1/runs/${first.id}`)).body as RunView & { results: Results; tables: string };
  const b = (await api(d, 'GET', `/v1/runs/${second.id}`)).body as RunView & { results: Results; tables: string };
  t.equal(a.status, 'completed', a.error ?? '');
  t.equal(b.status, 'completed', b.error ?? '');
  t.ok(a.finished_at! <= b.started_at!, 'in the order submitted, one at a time');
  checkResults(a.results);
  t.equal(a.results.cells.filter((c) => c.result !== undefined).length, 2, 'both cells measured');
  t.match(a.tables, /### first: 4 users, 1 KB, sink wait 0\.01 s/);
  t.same(a.progress, { done: 2, total: 2, label: null, fraction: 1 });
  t.ok(a.summary!.sluice! > 0.5, 'the trend summary has sluice / Baseline');
  const list = await api<{ data: RunView[]; has_more: boolean; last_id: string }>(d, 'GET', '/v1/runs?limit=1');
  t.same(list.body.data.map((r) => r.id), [second.id], 'newest first');
  t.equal(list.body.has_more, true);
  const page2 = await api<{ data: RunView[] }>(d, 'GET', `/v1/runs?limit=1&after=${list.body.last_id}`);
  t.same(page2.body.data.map((r) => r.id), [first.id], 'the next page');
  const labelled = await api<{ data: RunView[] }>(d, 'GET', '/v1/runs?label=nightly&status=completed');
  t.same(labelled.body.data.map((r) => r.id), [first.id], 'filtered by label and status');
  const report = await api<string>(d, 'GET', `/v1/runs/${first.id}/report`);
  t.equal(report.status, 200);
  t.match(report.body, /<h1>Gateway benchmark/);
  const cmp = await api<{ object: string; markdown: string }>(d, 'GET', `/v1/compare?base=${first.id}&head=${first.id}`);
  t.equal(cmp.status, 200);
  t.equal(cmp.body.object, 'comparison');
  const cli = await runCli(['orchestrator', 'runs', '--url', d.origin]);
  t.equal(cli.code, 0, cli.stderr);
  t.match(cli.stdout, new RegExp(`${first.id}\\s+completed\\s+nightly`));
  const shown = await runCli(['orchestrator', 'show', first.id, '--url', d.origin]);
  t.match(shown.stdout, /### first:/, 'show prints the tables');
  const compared = await runCli(['orchestrator', 'compare', first.id, first.id, '--url', d.origin]);
  t.equal(compared.code, 0, 'a run against itself: no regression, exit 0');
});

t.test('bad requests get their status, one line naming the field', async (t) => {
  const d = await startDaemon(t);
  const bad = await api<{ error: { message: string; param: string } }>(d, 'POST', '/v1/runs', { matrix: { scenarios: [{ name: 'x', workers: 1, wait_ms: -1 }] } });
  t.equal(bad.status, 400);
  t.equal(bad.body.error.message, 'matrix: scenarios.0.wait_ms: must be >= 0');
  t.equal(bad.body.error.param, 'matrix.scenarios.0.wait_ms');
  t.equal((await api(d, 'POST', '/v1/runs', {})).status, 400, 'no matrix');
  const yaml = await api<{ error: { message: string; param: string } }>(d, 'POST', '/v1/runs', { matrix: 'scenarios: [unclosed' });
  t.equal(yaml.status, 400);
  t.match(yaml.body.error.message, /^matrix: not valid YAML or JSON: /);
  t.equal(yaml.body.error.param, 'matrix', 'text that does not parse: the field is the matrix itself');
  t.equal((await api(d, 'POST', '/v1/runs', '{nope')).status, 400, 'not JSON');
  t.equal((await api(d, 'POST', '/v1/runs', JSON.stringify({ matrix: tiny('x') }), { 'content-type': 'text/plain' })).status, 415, 'not declared JSON');
  t.equal((await api(d, 'POST', '/v1/runs', { matrix: 'x'.repeat(1024 * 1024 + 10) })).status, 413, 'over 1 MiB');
  t.equal((await api(d, 'GET', '/v1/runs/run_nope')).status, 404, 'unknown id');
  t.equal((await api(d, 'GET', '/v1/runs/%zz')).status, 404, 'malformed id');
  t.equal((await api(d, 'GET', '/v1/runs', undefined, { origin: 'http://evil.example' })).status, 403, 'a foreign Origin');
  t.equal((await api(d, 'GET', '/v1/runs', undefined, { host: 'evil.example' })).status, 403, 'a rebinding Host');
  t.equal((await api(d, 'GET', '/v1/runs?limit=0')).status, 400);
  t.equal((await api(d, 'GET', '/v1/compare?base=run_nope&head=run_nope')).status, 404);
  const cmd = await api<{ error: { param: string } }>(d, 'POST', '/v1/runs', {
    matrix: { ...tiny('x', ['baseline', 'mine']), custom: { mine: { command: 'touch /tmp/pwned', url: 'http://127.0.0.1:{port}/v1' } } },
  });
  t.equal(cmd.status, 403, 'a submitted shell command is refused without --allow-commands');
  t.equal(cmd.body.error.param, 'matrix.custom.mine.command');
  t.equal((await api(d, 'POST', '/v1/schedules', { cron: 'every tuesday', matrix: tiny('x') })).status, 400, 'a bad cron expression');
  const none = await runCli(['orchestrator', 'show', 'run_nope', '--url', d.origin]);
  t.equal(none.code, 2);
  t.match(none.stderr, /^error: No run with id 'run_nope'\.\n$/);
  const away = await runCli(['orchestrator', 'runs', '--url', 'http://127.0.0.1:1']);
  t.equal(away.code, 1);
  t.match(away.stderr, /cannot reach the daemon/);
});

t.test('a token: required beyond loopback, checked in constant time, 401 without it', async (t) => {
  const open = await runCli(['orchestrator', 'serve', '--host', '0.0.0.0', '--port', '0', '--data', mkdtempSync(join(tmpdir(), 'sluice-daemon-'))]);
  t.equal(open.code, 2);
  t.match(open.stderr, /^error: --token-env: required with --host 0\.0\.0\.0/);
  const unset = await runCli(['orchestrator', 'serve', '--token-env', 'SLUICE_TEST_NO_SUCH_VAR', '--port', '0']);
  t.equal(unset.code, 2);
  t.match(unset.stderr, /--token-env: environment variable SLUICE_TEST_NO_SUCH_VAR is not set/);
  const d = await startDaemon(t, undefined, ['--token-env', 'SLUICE_TEST_TOKEN'], { SLUICE_TEST_TOKEN: 'sekrit-token' });
  t.equal((await api(d, 'GET', '/v1/runs')).status, 401);
  t.equal((await api(d, 'GET', '/v1/runs', undefined, { authorization: 'Bearer wrong' })).status, 401);
  t.equal((await api(d, 'GET', '/metrics')).status, 401);
  t.equal((await api(d, 'GET', '/v1/runs', undefined, { authorization: 'Bearer sekrit-token' })).status, 200);
  t.equal((await api(d, 'GET', '/healthz')).status, 200, 'health needs no token');
  const cli = await runCli(['orchestrator', 'runs', '--url', d.origin], undefined, { SLUICE_ORCHESTRATOR_TOKEN: 'sekrit-token' });
  t.equal(cli.code, 0, cli.stderr);
});

t.test('cancel stops a running run and every process it started; a queued run is cancelled before it starts', async (t) => {
  const d = await startDaemon(t);
  const long = await submit(d, twoCells('long', 30));
  const queued = await submit(d, tiny('never'));
  t.ok(await waitFor(async () => (await api(d, 'GET', `/v1/runs/${long.id}`)).body.progress?.done === 1, 20_000), 'the first cell finished');
  const children = descendants(d.proc.pid!).slice(1);
  t.ok(children.length >= 2, `the run started processes (${children.map(cmdline).join('; ')})`);
  t.equal((await api(d, 'DELETE', `/v1/runs/${queued.id}`)).body.status, 'canceled', 'the queued run is cancelled at once');
  await api(d, 'DELETE', `/v1/runs/${long.id}`);
  t.ok(await finished(d, long.id, 15_000));
  const r = (await api(d, 'GET', `/v1/runs/${long.id}`)).body as RunView & { results: Results };
  t.equal(r.status, 'canceled');
  t.ok(r.results.cells.some((c) => c.scenario === 'long-quick' && c.result !== undefined), 'the finished cell is kept');
  t.ok(await waitFor(() => children.every((p) => !alive(p)), 10_000), `no process of the run is left (${children.filter(alive).map(cmdline).join('; ')})`);
  t.same(descendants(d.proc.pid!).slice(1), [], 'the daemon has no child left');
  t.equal((await api(d, 'GET', `/v1/runs/${queued.id}`)).body.started_at, null, 'the cancelled queued run never started');
});

t.test('SIGKILL mid-run: after a restart on the same data the run is interrupted with its finished cells, and the queued run runs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-daemon-'));
  const d = await startDaemon(t, dir);
  const cut = await submit(d, twoCells('cut', 20), 'cut');
  const next = await submit(d, tiny('next'), 'next');
  t.ok(await waitFor(async () => (await api(d, 'GET', `/v1/runs/${cut.id}`)).body.progress?.done === 1, 20_000), 'the first cell finished');
  // Between the cells the first scenario's sink stops and the second's starts: wait for it.
  t.ok(await waitFor(() => descendants(d.proc.pid!).slice(1).length >= 2, 10_000), 'the run has processes: the load generator and the second sink');
  const children = descendants(d.proc.pid!).slice(1);
  d.proc.kill('SIGKILL');
  await d.exited;
  t.ok(children.some(alive), 'a SIGKILL leaves them running');
  t.teardown(() => {
    for (const p of children.filter(alive)) process.kill(p, 'SIGKILL');
  });
  const again = await startDaemon(t, dir);
  t.ok(await waitFor(() => children.every((p) => !alive(p)), 5000), 'the new daemon stopped what the killed one\'s run left');
  const r = (await api(again, 'GET', `/v1/runs/${cut.id}`)).body as RunView & { results: Results };
  t.equal(r.status, 'interrupted');
  t.equal(r.results.status, 'interrupted');
  checkResults(r.results);
  t.equal(r.results.cells.filter((c) => c.result !== undefined).length, 1, 'the cell that finished is kept');
  t.ok(await finished(again, next.id), 'the queued run starts again');
  t.equal((await api(again, 'GET', `/v1/runs/${next.id}`)).body.status, 'completed');
  const report = await api<string>(again, 'GET', `/v1/runs/${cut.id}/report`);
  t.match(report.body, /Interrupted/, 'the report of the cut run says so');
});

t.test('a schedule fires, and its second run is compared with its first', async (t) => {
  const d = await startDaemon(t);
  const s = await api<{ id: string; next_run_at: string }>(d, 'POST', '/v1/schedules', { cron: '*/4 * * * * *', matrix: tiny('scheduled'), label: 'every 4 s' });
  t.equal(s.status, 201);
  t.ok(Date.parse(s.body.next_run_at) > Date.now() - 1000, 'the next fire time is shown');
  let runs: RunView[] = [];
  t.ok(
    await waitFor(async () => {
      runs = (await api<{ data: RunView[] }>(d, 'GET', '/v1/runs?label=every%204%20s&status=completed')).body.data;
      return runs.length >= 2;
    }, 40_000),
    'two scheduled runs completed',
  );
  t.equal((await api(d, 'DELETE', `/v1/schedules/${s.body.id}`)).status, 200);
  const [second, first] = runs;
  t.equal(second!.compared_with, first!.id, 'the second run is compared with the first');
  t.type(second!.regressions, 'number');
  const shown = (await api<{ comparison: string }>(d, 'GET', `/v1/runs/${second!.id}`)).body;
  t.match(shown.comparison, /base/i, 'its comparison is kept');
  const metrics = await api<string>(d, 'GET', '/metrics');
  t.match(metrics.body, /sluice_orchestrator_regressions_total \d+/);
  t.match(metrics.body, /sluice_orchestrator_runs\{status="completed"\} \d+/);
  t.equal((await api<{ data: unknown[] }>(d, 'GET', '/v1/schedules')).body.data.length, 0, 'deleted');
});

t.test('sluice bench --daemon follows the run and prints its tables; --detach prints the id', async (t) => {
  const d = await startDaemon(t);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-daemon-matrix-'));
  const file = join(dir, 'm.yaml');
  writeFileSync(file, stringify(tiny('followed')));
  const r = await runCli(['bench', '--matrix', file, '--daemon', d.origin, '--label', 'cli']);
  t.equal(r.code, 0, r.stderr.slice(-1000));
  t.match(r.stdout, /### followed: 4 users/);
  t.match(r.stderr, /run run_[0-9a-f]+: completed/);
  const detached = await runCli(['bench', '--matrix', file, '--daemon', d.origin, '--detach']);
  t.equal(detached.code, 0);
  t.match(detached.stdout, /^run_[0-9a-f]{16}\n$/);
  t.ok(await finished(d, detached.stdout.trim()));
  const noDaemon = await runCli(['bench', '--detach']);
  t.equal(noDaemon.code, 2);
  t.match(noDaemon.stderr, /--detach needs --daemon/);
});

t.test('a run with provider netns runs in namespaces; an unknown provider is a 400', async (t) => {
  // Its setup removes dead runs' leftovers: not while the netns test holds a SIGKILLed run's for its check.
  t.teardown(await netnsLock());
  const d = await startDaemon(t);
  const bad = await api<{ error: { param: string } }>(d, 'POST', '/v1/runs', { matrix: tiny('x'), provider: 'mars' });
  t.equal(bad.status, 400);
  t.equal(bad.body.error.param, 'provider');
  if (netnsRefusal() !== null) {
    t.equal((await api(d, 'POST', '/v1/runs', { matrix: tiny('x'), provider: 'netns' })).status, 400, `netns refused here: ${netnsRefusal()}`);
    return;
  }
  const r = await api(d, 'POST', '/v1/runs', { matrix: tiny('isolated'), provider: 'netns' });
  t.equal(r.status, 202);
  t.ok(await finished(d, r.body.id));
  const done = (await api(d, 'GET', `/v1/runs/${r.body.id}`)).body as RunView & { results: Results };
  t.equal(done.status, 'completed', done.error ?? '');
  t.equal(done.results.environment.provider, 'netns');
  t.notOk(readFileSync('/proc/net/dev', 'utf8').includes(`sl${d.proc.pid!.toString(36)}`), 'its links are gone');
});
