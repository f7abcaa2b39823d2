// `sluice bench --provider netns`: source, system and sink in namespaces of
// their own, joined by a bridge on 198.18.0.0/15; nothing left behind after a
// run, and a SIGKILLed run's leftovers removed by the next one.
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CLI, runCli } from '../helpers/sink.js';
import { waitFor } from '../helpers/gateway.js';
import { netnsRefusal } from '../../orchestrator/providers/netns.js';
import { netnsLock } from '../helpers/netns-lock.js';
import type { Results } from '../../orchestrator/results.js';

const refusal = netnsRefusal();

const sh = (cmd: string, args: string[]): string => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
};
/** Namespaces and links of runs by this pid (base 36, as the provider names them). */
const leftBy = (pid: number): string[] => {
  const id = pid.toString(36);
  const ns = sh('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`sluice-${id}-`));
  const links = sh('ip', ['-o', 'link', 'show']).split('\n').map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '').filter((n) => new RegExp(`^sl${id}(b|[suk]h)$`).test(n));
  return [...ns, ...links];
};

function matrix(seconds: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-netns-'));
  const path = join(dir, 'matrix.yaml');
  writeFileSync(path, stringify({ scenarios: [{ name: 'ns', workers: 8, wait_ms: 10, duration_s: seconds }], systems: ['baseline', 'sluice'], warmup_s: 0.5 }));
  return path;
}

t.test('a matrix across three namespaces: the sink sees 198.18 peers, never loopback; nothing is left', { skip: refusal ?? false }, async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'sluice-netns-out-'));
  const proc = spawn(process.execPath, [CLI, 'bench', '--provider', 'netns', '--matrix', matrix(3), '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.stdout.resume();
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  t.teardown(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  const sinkNs = `sluice-${proc.pid!.toString(36)}-sink`;
  // While the load runs: who is connected to the sink, seen from inside its namespace.
  const peers = new Set<string>();
  t.ok(
    await waitFor(() => {
      for (const line of sh('ip', ['netns', 'exec', sinkNs, 'ss', '-tnH', 'state', 'established']).split('\n')) {
        const cols = line.trim().split(/\s+/);
        if (cols.length >= 4) peers.add(cols[3]!.replace(/:\d+$/, ''));
      }
      return [...peers].filter((p) => p.startsWith('198.18.')).length >= 2;
    }, 30_000),
    `the sink had peers from the source and the system: ${[...peers].join(', ')}`,
  );
  t.notOk([...peers].some((p) => p.startsWith('127.') || p === '::1'), 'none from loopback');
  t.equal(await exited, 0, stderr.slice(-1500));
  t.match(stderr, /netns: CPUs: system under test \S+; source \S+; sink \S+/, 'the CPU split is printed');
  const run = readdirSync(out)[0]!;
  const r = JSON.parse(readFileSync(join(out, run, 'results.json'), 'utf8')) as Results;
  t.equal(r.environment.provider, 'netns');
  t.equal(r.cells.filter((c) => c.result !== undefined && c.result.ok > 0).length, 2, 'both cells measured');
  t.same(leftBy(proc.pid!), [], 'no namespace or link of the run is left');
});

t.test('a SIGKILLed run leaves namespaces; the next run removes them first and leaves nothing', { skip: refusal ?? false }, async (t) => {
  // Until the next run has removed them: no other test's netns setup may remove them first.
  t.teardown(await netnsLock());
  const killed = spawn(process.execPath, [CLI, 'bench', '--provider', 'netns', '--matrix', matrix(30), '--out', mkdtempSync(join(tmpdir(), 'sluice-netns-out-'))], { stdio: 'ignore' });
  t.teardown(() => {
    if (killed.exitCode === null) killed.kill('SIGKILL');
  });
  const pid = killed.pid!;
  t.ok(await waitFor(() => leftBy(pid).length >= 7, 20_000), 'its namespaces and links exist');
  // Let it start its processes in them.
  await new Promise((r) => setTimeout(r, 2000));
  const inside = sh('ip', ['netns', 'pids', `sluice-${pid.toString(36)}-source`]).split(/\s+/).filter(Boolean);
  killed.kill('SIGKILL');
  await new Promise((r) => killed.on('exit', r));
  t.ok(leftBy(pid).length > 0, 'a SIGKILL leaves them behind');
  const next = await runCli(['bench', '--provider', 'netns', '--matrix', matrix(1), '--out', mkdtempSync(join(tmpdir(), 'sluice-netns-out-'))]);
  t.equal(next.code, 0, next.stderr.slice(-1500));
  t.match(next.stderr, /netns: removed what an earlier run left: .*sluice-/);
  t.same(leftBy(pid), [], 'the crashed run\'s namespaces and links are gone');
  t.ok(inside.length > 0 && inside.every((p) => !sh('ps', ['-o', 'pid=', '-p', p]).trim()), `and the processes that were in them (${inside.join(', ')})`);
  t.notOk(sh('ip', ['netns', 'list']).includes(`sluice-${pid.toString(36)}`), 'ip netns list holds nothing of it');
});

t.test('link shaping needs the netns provider; where the kernel lacks netem it is one line and nothing is left', { skip: refusal ?? false }, async (t) => {
  const local = await runCli(['bench', '--link-delay-ms', '1', '--matrix', matrix(1)]);
  t.equal(local.code, 2);
  t.match(local.stderr, /^error: --link-delay-ms needs --provider netns\n$/);
  const shaped = spawn(process.execPath, [CLI, 'bench', '--provider', 'netns', '--link-delay-ms', '5', '--matrix', matrix(1), '--out', mkdtempSync(join(tmpdir(), 'sluice-netns-out-'))], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  shaped.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  shaped.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => shaped.on('exit', (c) => r(c)));
  if (code === 2) t.match(stderr, /--link-delay-ms\/--link-rate: tc netem failed .*sch_netem/, 'no netem here: one line naming it');
  else {
    t.equal(code, 0, stderr.slice(-1000));
    // 5 ms each way on each link: Baseline's p50 is the wait plus at least two link crossings each way.
    const p50 = Number(/\| P50 latency \(ms\) \| 10 \| ([\d.]+) \|/.exec(stdout)?.[1]);
    t.ok(p50 >= 10 + 20, `the delay shows in Baseline's p50 (${p50} ms)`);
  }
  t.same(leftBy(shaped.pid!), [], 'nothing is left either way');
});

t.test('without root: one line saying so and what to run instead, exit 2', { skip: refusal === null && process.getuid?.() === 0 ? false : 'needs root to drop privileges' }, async (t) => {
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    // As nobody, with an empty environment: tap adds a hook to every child's NODE_OPTIONS that writes under .tap/.
    const p = spawn('env', ['-i', `PATH=${process.env.PATH}`, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'bench', '--provider', 'netns'], {
      cwd: tmpdir(),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code, stderr }));
  });
  t.equal(r.code, 2, r.stderr);
  t.match(r.stderr, /^error: --provider netns: network namespaces need root .*; run as root, or use --provider local\n$/);
});
