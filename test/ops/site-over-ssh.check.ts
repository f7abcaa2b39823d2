// `npm run test:site-over-ssh` (not part of `npm test`: it takes a minute and
// a half): the provisioning of a gcp run for real. The real site.yml with the
// variables a gcp run passes, over SSH into three namespaces with sshd (the
// fake Compute server's "VMs"), into a prefix; then a matrix of baseline,
// sluice, sluice-redis and nginx run with the app site.yml installed there.
import t from 'tap';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gcpWorld } from '../helpers/gcp-world.js';
import { testMachineVars } from './ansible.js';

const dist = (p: string): string => new URL(`../../dist/orchestrator/${p}`, import.meta.url).href;
const { GcpHost } = (await import(dist('providers/gcp/host.js'))) as typeof import('../../orchestrator/providers/gcp/host.js');
const { validateMatrix } = (await import(dist('matrix/schema.js'))) as typeof import('../../orchestrator/matrix/schema.js');

process.env.ANSIBLE_FORKS = '1'; // one filesystem under the three namespaces: one host at a time
t.test("site.yml over SSH with a gcp run's variables, then a matrix with what it installed", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-site-ssh-'));
  const prefix = join(dir, 'root');
  const w = await gcpWorld(t, {
    playbook: 'site.yml',
    remoteCli: [process.execPath, join(prefix, 'opt/sluice/current/lib/node_modules/sluice/dist/cli.js')],
    sshTimeoutMs: 15_000,
    extraVars: { ...testMachineVars(prefix, dir), sluice_apt_cache_valid_time: 315360000 },
  });
  const matrix = validateMatrix({ scenarios: [{ name: 'vm', workers: 8, wait_ms: 10, duration_s: 1 }], systems: ['baseline', 'sluice', 'sluice-redis', 'nginx'], warmup_s: 0.5 });
  const started = Date.now();
  try {
    const host = await GcpHost.create(w.opts, matrix, 10);
    t.comment(`site.yml took ${((Date.now() - started) / 1000).toFixed(0)} s`);
    t.ok(existsSync(join(prefix, 'opt/sluice/current/lib/node_modules/sluice/dist/cli.js')), 'the app is installed under the prefix');
    t.ok(existsSync(join(prefix, 'etc/systemd/system/sluice-gateway.service')), 'units rendered');
    const { runMatrix } = (await import(dist('runner.js'))) as typeof import('../../orchestrator/runner.js');
    const r = await runMatrix({ matrix, host, peersDir: '/nonexistent' });
    t.equal(r.status, 'completed', r.error ?? '');
    for (const c of r.cells) t.comment(`${c.system}: ${c.result?.ok ?? c.skipped} ok, ${c.cpuUsPerReq} µs/req, ${c.peakRssMb} MB`);
    t.equal(r.cells.filter((c) => (c.result?.ok ?? 0) > 0).length, 4, 'all four measured with the installed app');
    await host.close();
  } catch (err) {
    t.fail(String(err));
    t.comment(w.log.join('\n'));
  }
  // Each role's process stopped, each VM deleted.
  t.equal(w.fake.instances.size, 0);
});
