// `sluice bench --compare` end to end: a custom system that is a delay proxy
// in front of the sink, run with no delay (the base), with an injected delay
// (a regression the comparison must find, in that system only), and with no
// delay again (a rerun that must find none). Real sink, load generator, proxy
// processes and results.json files.
import t from 'tap';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { runCli } from '../helpers/sink.js';
import { compareResults, formatComparison, loadResults, summaryLine, type Comparison } from '../../orchestrator/report/compare.js';

const PROXY = fileURLToPath(new URL('./fixtures/delay-proxy.mjs', import.meta.url));

// A 200 ms sink wait, so that the machine's stalls (tens of ms on this shared
// two-core box) stay under the floors of an unchanged rerun; the injected
// 100 ms is half the latency, far over the p50 floor (5%) and the p99 floor
// (20%). 50 users give ~500 requests a cell: p99 is judged (5 requests beyond
// it), p99.9 is not.
const DELAY_MS = 100;

function matrix(dir: string, delayMs: number): string {
  const path = join(dir, `matrix-delay-${delayMs}.yaml`);
  writeFileSync(
    path,
    stringify({
      scenarios: [{ name: 'closed', workers: 50, wait_ms: 200, duration_s: 2 }],
      systems: ['baseline', 'delayed'],
      custom: {
        delayed: {
          command: `${JSON.stringify(process.execPath)} ${JSON.stringify(PROXY)} --port {port} --upstream {sink_origin} --delay-ms ${delayMs}`,
          url: 'http://127.0.0.1:{port}/v1',
          ready_url: 'http://127.0.0.1:{port}/v1/models',
        },
      },
      repetitions: 2,
      warmup_s: 0.5,
    }),
  );
  return path;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The results folder the run wrote. */
  dir: string;
}

async function bench(work: string, name: string, delayMs: number, extra: string[] = []): Promise<Run> {
  const out = join(work, name);
  const r = await runCli(['bench', '--matrix', matrix(work, delayMs), '--out', out, '--peers-dir', join(work, 'peers'), ...extra]);
  const runs = readdirSync(out);
  if (runs.length !== 1) throw new Error(`${name}: expected one results folder, found ${runs.length} (exit ${r.code}): ${r.stderr.slice(-1000)}`);
  return { ...r, dir: join(out, runs[0]!) };
}

const rowOf = (c: Comparison, system: string, metric: string) => c.rows.find((r) => r.scenario === 'closed' && r.system === system && r.metric === metric);

t.test('--compare finds an injected delay in the delayed system only, and nothing in an unchanged rerun', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'sluice-compare-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const help = await runCli(['bench', '--help']);
  // The lead wires the flags in command.ts; until then the comparison is driven through its functions only.
  const cli = /--compare\b/.test(help.stdout) && /--fail-on-regression\b/.test(help.stdout);

  const base = await bench(work, 'base', 0);
  t.equal(base.code, 0, 'the base run exits 0');
  if (base.code !== 0) t.comment(base.stderr);
  const flags = cli ? ['--compare', base.dir, '--fail-on-regression'] : [];
  const slower = await bench(work, 'slower', DELAY_MS, flags);
  const same = await bench(work, 'same', 0, flags);

  const regression = compareResults(loadResults(base.dir), loadResults(join(slower.dir, 'results.json')));
  const report = formatComparison(regression);
  for (const metric of ['p50', 'p99']) {
    const d = rowOf(regression, 'delayed', metric);
    t.equal(d?.mark, 'regression', `delayed ${metric}: ${d?.base} → ${d?.head} ms is a regression`);
    const b = rowOf(regression, 'baseline', metric);
    t.equal(b?.mark, null, `Baseline ${metric}: ${b?.base} → ${b?.head} ms is not marked`);
  }
  t.ok(regression.rows.filter((r) => r.system === 'baseline').every((r) => r.mark !== 'regression'), 'no Baseline row is a regression');
  t.ok(regression.regressions >= 2, 'the regressions are counted');
  if (!t.passing()) t.comment(report);
  t.match(report, /\| P50 latency \(ms\) \| delayed \| [\d.]+ \| [\d.]+ \| \+[\d.]+ \(\+[\d.]+%\) \| ±[\d.]+ \| ▲ regression \|/);

  const rerun = compareResults(loadResults(base.dir), loadResults(same.dir));
  t.equal(rerun.regressions, 0, 'an unchanged rerun has no regression');
  if (rerun.regressions !== 0) t.comment(formatComparison(rerun));
  t.ok(rerun.rows.some((r) => r.system === 'delayed' && r.metric === 'p99'), 'the rerun compared the delayed system');

  if (!cli) {
    t.equal(slower.code, 0, 'without --compare the slower run exits 0');
    t.equal(same.code, 0, 'and so does the rerun');
  }
  await t.test('the CLI: --compare BASE --fail-on-regression', { skip: cli ? false : 'sluice bench has no --compare / --fail-on-regression yet' }, async (t) => {
    t.equal(slower.code, 1, 'it exits 1 on the regression');
    t.match(slower.stdout, '## Compared with the base run', 'the comparison is printed');
    t.match(slower.stdout, /\| P50 latency \(ms\) \| delayed \| .* \| ▲ regression \|/);
    t.match(slower.stdout, summaryLine(regression), 'with the summary line of the comparison');
    t.equal(same.code, 0, 'it exits 0 on the unchanged rerun');
    t.match(same.stdout, summaryLine(rerun));
    t.match(same.stdout, /^0 regressions, /m);
    // A base that is not a results file: one line naming it, exit 2 (checked before any cell runs).
    const missing = join(work, 'no-such-run');
    const bad = await runCli(['bench', '--matrix', matrix(work, 0), '--out', join(work, 'bad'), '--compare', missing]);
    t.equal(bad.code, 2, 'a missing base exits 2');
    t.equal(bad.stderr.trim().split('\n').length, 1, `one line: ${bad.stderr.trim()}`);
    t.match(bad.stderr, `${missing}: no such file or folder`);
    if (!t.passing()) t.comment(`slower run:\n${slower.stdout}\n${slower.stderr}\nunchanged rerun:\n${same.stdout}\n${same.stderr}`);
  });
});
