// The SSH hosts of a GCP run, against three network namespaces with a real
// sshd each (198.18 addresses): a short matrix through the same runner, the
// load generator reached through the forwarded port, the sink seeing the
// source and the system from their own addresses, CPU and RSS read on the
// system's host; a stopped process takes its whole group with it; nothing of
// the run is left on the hosts afterwards.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { netnsWithSshd, sshdMissing } from '../helpers/netns-sshd.js';
import { waitFor } from '../helpers/gateway.js';

// From dist/, as the CLI runs them (the runner reads the package's version relative to its own file).
const dist = (p: string): string => new URL(`../../dist/orchestrator/${p}`, import.meta.url).href;
const { netnsRefusal } = (await import(dist('providers/netns.js'))) as typeof import('../../orchestrator/providers/netns.js');
const { SshHost } = (await import(dist('providers/ssh.js'))) as typeof import('../../orchestrator/providers/ssh.js');
const { validateMatrix } = (await import(dist('matrix/schema.js'))) as typeof import('../../orchestrator/matrix/schema.js');
const { runMatrix } = (await import(dist('runner.js'))) as typeof import('../../orchestrator/runner.js');
const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const skip = netnsRefusal() ?? sshdMissing();

const sh = (cmd: string, args: string[]): string => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
};
const pidsIn = (ns: string): number[] => sh('ip', ['netns', 'pids', ns]).split(/\s+/).filter(Boolean).map(Number);

t.test('a matrix on three SSH hosts', { skip }, async (t) => {
  const { netns, sshd } = await netnsWithSshd(t);
  const host = new SshHost('ssh', sshd.targets, [process.execPath, CLI]);
  let closed = false;
  t.teardown(async () => {
    if (!closed) await host.close();
  });
  await host.setup(10_000);
  t.ok(host.cores >= 1, `the system's host has ${host.cores} cores`);

  t.test('a stopped process takes its process group with it', async (t) => {
    const p = await host.procs.start('sleepers', '/bin/sh', ['-c', 'sleep 300 & sleep 300 & echo started; wait'], { ready: (l) => l === 'started' });
    t.not(p.pid, p.proc.pid, 'the pid is the one on the host, not the local ssh');
    const ns = netns.namespace('sut');
    t.ok(pidsIn(ns).includes(p.pid), 'it runs in the system namespace');
    const before = pidsIn(ns).length;
    await host.procs.stop(p);
    t.ok(await waitFor(() => pidsIn(ns).length <= before - 3, 5000), 'the shell and both sleeps are gone');
    t.equal(p.proc.exitCode !== null || p.proc.signalCode !== null, true, 'the ssh session ended');
  });

  t.test('files, ports and probes on the hosts', async (t) => {
    const dir = await host.workDir();
    t.match(dir, /^\/tmp\/sluice-bench-/);
    await host.files.write(`${dir}/a/b.txt`, "it's\nhere");
    t.equal(await host.files.read(`${dir}/a/b.txt`), "it's\nhere", 'written and read back, quotes and all');
    t.equal(await host.files.exists(`${dir}/a/b.txt`), true);
    t.equal(await host.files.exists(`${dir}/nothing`), false);
    const port = await host.freePort();
    t.ok(port > 0 && port < 65536, `a free port on the system's host: ${port}`);
    t.equal(await host.probe(`http://${host.sutAddress}:${port}/`), null, 'nothing answers on it');
  });

  t.test('the runner across the three hosts', async (t) => {
    const systems = ['baseline', 'sluice', ...(existsSync('/usr/sbin/nginx') ? ['nginx'] : [])];
    const matrix = validateMatrix({ scenarios: [{ name: 'ssh', workers: 8, wait_ms: 10, duration_s: 2 }], systems, warmup_s: 0.5 });
    const sinkNs = netns.namespace('sink');
    const peers = new Set<string>();
    const watch = setInterval(() => {
      for (const line of sh('ip', ['netns', 'exec', sinkNs, 'ss', '-tnH', 'state', 'established']).split('\n')) {
        const cols = line.trim().split(/\s+/);
        if (cols.length >= 4 && !cols[2]!.endsWith(':22')) peers.add(cols[3]!.replace(/:\d+$/, ''));
      }
    }, 200);
    let results;
    try {
      results = await runMatrix({ matrix, host, peersDir: '/nonexistent' });
    } finally {
      clearInterval(watch);
    }
    t.equal(results.status, 'completed', results.error ?? '');
    t.equal(results.environment.provider, 'ssh');
    t.equal(results.environment.cores, host.cores, "the environment is the system's host's, read there");
    t.match(results.environment.node, /^v\d+\./);
    for (const name of systems) {
      const cell = results.cells.find((c) => c.system === name);
      t.ok(cell?.result !== undefined && cell.result.ok > 0 && cell.result.errors === 0, `${name}: measured, no errors (${cell?.skipped ?? ''})`);
      if (name !== 'baseline') {
        t.ok((cell?.cpuUsPerReq ?? 0) > 0, `${name}: CPU per request read on its host: ${cell?.cpuUsPerReq} µs`);
        t.ok((cell?.peakRssMb ?? 0) > 5, `${name}: peak RSS read on its host: ${cell?.peakRssMb} MB`);
      }
    }
    t.ok(peers.has(netns.address('source')), `the sink saw the source's address (${[...peers].join(', ')})`);
    t.ok(peers.has(netns.address('sut')), "and the system's");
    t.notOk([...peers].some((p) => p.startsWith('127.')), 'and nothing from loopback');
  });

  t.test('close() leaves only sshd on the hosts', async (t) => {
    await host.close();
    closed = true;
    for (const role of ['source', 'sut', 'sink'] as const) {
      const left = pidsIn(netns.namespace(role)).filter((p) => !sshd.pids.includes(p));
      t.same(left, [], `nothing but sshd in the ${role} namespace`);
    }
  });
});
