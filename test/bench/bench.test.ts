// `sluice bench` end to end: real sinks, gateways, nginx and the load
// generator's REST API on loopback, a tiny matrix.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CLI, runCli } from '../helpers/sink.js';
import { decode } from '../../loadgen/result.js';
import { checkResults } from '../../orchestrator/results-schema.js';
import type { Results } from '../../orchestrator/results.js';
import { descendants, alive } from '../../common/procs.js';

const NGINX = existsSync('/usr/sbin/nginx');

function matrixFile(m: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-test-'));
  const path = join(dir, 'matrix.yaml');
  writeFileSync(path, stringify(m));
  return path;
}

function readResults(out: string): Results {
  const runs = readdirSync(out);
  const r = JSON.parse(readFileSync(join(out, runs[0]!, 'results.json'), 'utf8')) as unknown;
  checkResults(r);
  return r;
}

t.test('a tiny matrix end to end: every cell filled, results.json valid, histograms decode', async (t) => {
  const systems = ['baseline', 'sluice', ...(NGINX ? ['nginx'] : []), 'broken'];
  const matrix = matrixFile({
    scenarios: [
      { name: 'closed', workers: 10, wait_ms: 20, duration_s: 1.5 },
      { name: 'streamed', workers: 10, stream: { ttft_ms: 10, itl_ms: 2, output_tokens: 5 }, duration_s: 1.5 },
      { name: 'sweep', workers: 64, wait_ms: 5, sweep: { rates: [50, 100], step_s: 1 } },
    ],
    systems,
    // A system whose start command fails: skipped with its reason, the others run.
    custom: { broken: { command: 'echo no such gateway >&2; exit 3', url: 'http://127.0.0.1:{port}/v1', ready_url: 'http://127.0.0.1:{port}/health' } },
    warmup_s: 0.5,
  });
  const out = mkdtempSync(join(tmpdir(), 'sluice-bench-out-'));
  const r = await runCli(['bench', '--matrix', matrix, '--out', out]);
  t.equal(r.code, 0, r.stderr.slice(-2000));
  // The tables, as a reader sees them.
  t.match(r.stdout, /### closed: 10 users, 1 KB, sink wait 0\.02 s/);
  t.match(r.stdout, /\| {2}\| Theoretical \| Baseline \| sluice \|/);
  const closedTable = r.stdout.slice(r.stdout.indexOf('### closed'), r.stdout.indexOf('### streamed'));
  const rowOf = (table: string, label: string) => table.split('\n').find((l) => l.startsWith(`| ${label} |`))!;
  const rps = rowOf(closedTable, 'Requests/sec').split('|').map((c) => c.trim());
  t.equal(rps[2]!.length > 0 && rps[2] !== '–', true, 'Baseline has a throughput');
  t.notOk(rps.slice(2, 2 + systems.length - 1).some((c) => c === '–' || c === 'skipped'), `every running system has a value: ${rps.join(' | ')}`);
  t.match(rowOf(closedTable, 'CPU µs/request'), /\| – \| – \| [\d,.]+ \|/, 'CPU per request for sluice, none for Baseline');
  t.match(closedTable, /- sluice: [\d.]+ of Baseline throughput, [+−][\d.]+ ms at p50, [+−][\d.]+ ms at p99/);
  t.match(closedTable, /- broken: skipped: could not start: .*no such gateway/, 'the broken system is skipped with its reason');
  const streamTable = r.stdout.slice(r.stdout.indexOf('### streamed'), r.stdout.indexOf('### sweep'));
  t.match(streamTable, /\| TTFT p50 \(ms\) \| 10 \| [\d.]+ \| [\d.]+ \|/);
  t.match(r.stdout, /\| Req\/s at added p99 ≤ 100 ms \| – \| – \| [\d,]+ \|/, 'the capacity table has sluice');

  const res = readResults(out);
  t.equal(res.status, 'completed');
  t.same(res.matrix.systems, systems);
  t.match(res.systems.sluice!.version, /^sluice 0\.1\.0/);
  if (NGINX) t.match(res.systems.nginx!.version, /^nginx\//);
  t.match(res.systems.broken!.skipped, /could not start/);
  for (const c of res.cells) {
    if (c.system === 'broken') {
      t.ok(c.skipped, 'broken: skipped');
      continue;
    }
    const h = decode(c.result!.histogram);
    t.equal(h.totalCount, c.result!.ok, `${c.scenario}/${c.system}: the histogram holds every ok request`);
    t.ok(c.result!.requests > 0 && c.result!.errors === 0, `${c.scenario}/${c.system}: ${c.result!.requests} requests, no errors`);
    if (c.system === 'baseline') t.equal(c.cpuUsPerReq, null);
    else t.ok(c.cpuUsPerReq! > 0 && c.peakRssMb! > 0, `${c.scenario}/${c.system}: CPU ${c.cpuUsPerReq} µs/req, RSS ${c.peakRssMb} MB`);
    if (c.scenario === 'streamed') t.ok(c.result!.ttftHistogram && decode(c.result!.ttftHistogram).totalCount > 0, 'TTFT recorded');
  }
  const sluiceSweep = res.sweeps.find((s) => s.system === 'sluice')!;
  t.same(sluiceSweep.steps.map((s) => s.rate), [50, 100], 'the sweep stepped through both rates');
  t.ok(sluiceSweep.steps.every((s) => typeof s.addedP99Ms === 'number'), 'each step compared with Baseline');
  t.ok(existsSync(join(out, readdirSync(out)[0]!, 'tables.md')));
});

t.test('a bad matrix names the field, exit 2; an unknown system names it', async (t) => {
  const bad = matrixFile({ scenarios: [{ name: 'a', workers: 1 }, { name: 'b', workers: 1, wait_ms: -5 }] });
  const r = await runCli(['bench', '--matrix', bad]);
  t.equal(r.code, 2);
  t.equal(r.stderr, 'error: matrix: scenarios.1.wait_ms: must be >= 0\n');
  const unknownField = matrixFile({ scenarios: [{ name: 'a', workers: 1, wiat_ms: 5 }] });
  const u = await runCli(['bench', '--matrix', unknownField]);
  t.equal(u.code, 2);
  t.equal(u.stderr, 'error: matrix: scenarios.0.wiat_ms: unknown field\n');
  const sys = await runCli(['bench', '--systems', 'baseline,litellm']);
  t.equal(sys.code, 2);
  t.match(sys.stderr, /^error: --systems: unknown system "litellm"; the systems are baseline, sluice, sluice-redis, nginx, portkey/);
  const notYaml = matrixFile('scenarios: [');
  writeFileSync(notYaml, 'scenarios: [\n');
  const y = await runCli(['bench', '--matrix', notYaml]);
  t.equal(y.code, 2);
  t.match(y.stderr, /^error: matrix: not valid YAML or JSON/);
  const missing = await runCli(['bench', '--matrix', '/nonexistent/m.yaml']);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /^error: --matrix: cannot read \/nonexistent\/m\.yaml: ENOENT/);
  const prov = await runCli(['bench', '--provider', 'gcp-like']);
  t.equal(prov.code, 2);
  t.match(prov.stderr, /--provider/);
});

t.test('--print-matrix prints the default matrix, which validates and holds the reference scenarios', async (t) => {
  const r = await runCli(['bench', '--print-matrix']);
  t.equal(r.code, 0);
  const path = matrixFile('');
  writeFileSync(path, r.stdout);
  const again = await runCli(['bench', '--matrix', path, '--print-matrix']);
  t.equal(again.code, 0, again.stderr);
  t.match(r.stdout, /name: 100u-1kb-wait500[\s\S]*name: 100u-1kb-wait100[\s\S]*name: 50u-1kb-wait2000[\s\S]*name: 100u-1kb-stream[\s\S]*sweep:/, 'in the reference order, then streaming and the sweep');
  const full = await runCli(['bench', '--print-matrix', '--full']);
  t.match(full.stdout, /duration_s: 420/, '50 users at 2 s: 25/s, 420 s for 10,000 requests and a margin');
});

t.test('Ctrl-C mid-run stops every process the run started, keeps what finished, exit 130', async (t) => {
  const matrix = matrixFile({
    scenarios: [
      { name: 'first', workers: 5, wait_ms: 10, duration_s: 1 },
      // 5 users at 10 ms: at most 500/s, so at least 6 s for each system.
      { name: 'long', workers: 5, wait_ms: 10, requests: 3000 },
    ],
    systems: ['baseline', 'sluice', 'sluice-redis'],
    warmup_s: 0,
  });
  const out = mkdtempSync(join(tmpdir(), 'sluice-bench-int-'));
  const proc = spawn(process.execPath, [CLI, 'bench', '--matrix', matrix, '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.stdout.resume();
  const exited = new Promise<number | string>((r) => proc.on('exit', (code, sig) => r(code ?? sig ?? -1)));
  // Wait until the long scenario runs against sluice-redis: a gateway, its workers and a redis-server are up.
  const deadline = Date.now() + 60_000;
  while (!/long · sluice-redis/.test(stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.match(stderr, /long · sluice-redis/, 'the run reached the long cell');
  await new Promise((r) => setTimeout(r, 700));
  const tree = descendants(proc.pid!).filter((p) => p !== proc.pid);
  t.ok(tree.length >= 5, `processes running under the bench: ${tree.length} (loadgen, sink, gateway and its workers, redis)`);
  proc.kill('SIGINT');
  t.equal(await exited, 130);
  t.same(tree.filter(alive), [], 'no process left behind');
  t.match(stderr, /SIGINT: stopping the run/);
  const res = readResults(out);
  t.equal(res.status, 'canceled');
  t.ok(res.cells.some((c) => c.scenario === 'first' && c.system === 'sluice' && c.result), 'the finished cells are kept');
  t.notOk(res.cells.some((c) => c.scenario === 'long' && c.system === 'sluice-redis' && c.result), 'the cut cell is not reported as a result');
});
