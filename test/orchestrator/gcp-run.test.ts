// `--provider gcp` end to end without GCP: the real Compute SDK against the
// fake Compute server on loopback, whose "VMs" are three network namespaces
// with a real sshd each (the fake's insert installs the run's SSH key from
// the instance metadata, as Google's guest agent does). The run's inventory
// drives a real ansible-playbook over SSH, the runner measures a short matrix
// over the SSH hosts, and the VMs are deleted after success, after a failure
// on the way and after a cancel. The CLI's refusals come first: no project,
// no credentials, no --yes: exit 2 and no VM.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gcpWorld as world, type GcpWorld as World } from '../helpers/gcp-world.js';
import { sshdMissing } from '../helpers/netns-sshd.js';
import { runCli } from '../helpers/sink.js';
import { missingTools, PLAYBOOK } from '../ops/ansible.js';

const dist = (p: string): string => new URL(`../../dist/orchestrator/${p}`, import.meta.url).href;
const { netnsRefusal } = (await import(dist('providers/netns.js'))) as typeof import('../../orchestrator/providers/netns.js');
const { GcpHost } = (await import(dist('providers/gcp/host.js'))) as typeof import('../../orchestrator/providers/gcp/host.js');
const { validateMatrix } = (await import(dist('matrix/schema.js'))) as typeof import('../../orchestrator/matrix/schema.js');
const { runMatrix } = (await import(dist('runner.js'))) as typeof import('../../orchestrator/runner.js');

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const skip = netnsRefusal() ?? sshdMissing() ?? missingTools(PLAYBOOK);
const matrix = validateMatrix({ scenarios: [{ name: 'vm', workers: 8, wait_ms: 10, duration_s: 2 }], systems: ['baseline', 'sluice'], warmup_s: 0.5 });

t.test('the CLI refuses before creating anything', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'sluice-gcp-home-'));
  const env = { ...process.env, HOME: home, GOOGLE_APPLICATION_CREDENTIALS: '', CLOUDSDK_CONFIG: join(home, 'gcloud'), GOOGLE_CLOUD_PROJECT: '' };
  let r = await runCli(['bench', '--provider', 'gcp', '--systems', 'baseline', '--yes'], undefined, env);
  t.equal(r.code, 2, 'no project: exit 2');
  t.match(r.stderr, /^error: --project: .*GOOGLE_CLOUD_PROJECT/m);
  r = await runCli(['bench', '--provider', 'gcp', '--project', 'my-project-1', '--systems', 'baseline', '--yes'], undefined, env);
  t.equal(r.code, 2, 'no credentials: exit 2');
  t.match(r.stderr, /no Google Cloud credentials found; log in with: gcloud auth application-default login/);
  t.notMatch(r.stderr, /creating|gcp: this run creates/, 'nothing was created, no estimate was printed');
  const creds = join(home, 'key.json');
  appendFileSync(creds, '{}');
  r = await runCli(['bench', '--provider', 'gcp', '--project', 'my-project-1', '--systems', 'baseline'], undefined, { ...env, GOOGLE_APPLICATION_CREDENTIALS: creds });
  t.equal(r.code, 2, 'not a terminal and no --yes: exit 2');
  t.match(r.stderr, /gcp: this run creates 3 VMs in my-project-1\/us-central1-a: 3 × e2-medium for about \d+ min ≈ \$\d+\.\d\d/, 'the estimate comes first');
  t.match(r.stderr, /add --yes to agree/);
  // No ansible-playbook (nor ssh) on this PATH: one line naming them, before any VM.
  r = await runCli(['bench', '--provider', 'gcp', '--project', 'my-project-1', '--systems', 'baseline', '--yes'], undefined, { ...env, GOOGLE_APPLICATION_CREDENTIALS: creds, PATH: home });
  t.equal(r.code, 2, 'missing tools: exit 2');
  t.match(r.stderr, /--provider gcp: ssh, ssh-keygen, ansible-playbook not found; install with: apt-get install -y --no-install-recommends openssh-client ansible-core/);
  r = await runCli(['bench', '--zone', 'us-east1-b'], undefined, env);
  t.equal(r.code, 2);
  t.match(r.stderr, /--zone needs --provider gcp/);
  r = await runCli(['bench', '--provider', 'gcp', '--zone', 'nowhere'], undefined, env);
  t.equal(r.code, 2);
  t.match(r.stderr, /"nowhere" is not a GCP zone/);
});

const inserts = (w: World) => w.fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/instances'));

t.test('a run on three "VMs": created, provisioned over SSH, measured, deleted', { skip }, async (t) => {
  const w = await world(t);
  const host = await GcpHost.create(w.opts, matrix, 10);
  t.equal(inserts(w).length, 3, 'three inserts');
  const md = inserts(w).map((r) => (r.body!.metadata as { items: Array<{ key: string; value: string }> }).items[0]!.value);
  t.ok(md.every((v) => v.startsWith(`${w.opts.sshUser}:ssh-ed25519 `) && v === md[0]), 'one key of the run, for the login user, in each VM');
  t.same(inserts(w).map((r) => (r.body!.labels as Record<string, string>)['sluice-role']).sort(), ['sink', 'source', 'sut']);
  t.ok([...w.fake.operations.values()].every((op) => op.waits > 0), 'every operation waited on');
  t.match(w.log.join('\n'), /provisioning with ansible-playbook .*gcp-check\.yml/, 'the playbook ran (and passed: the run goes on)');
  const results = await runMatrix({ matrix, host, peersDir: '/nonexistent' });
  t.equal(results.status, 'completed', results.error ?? '');
  t.equal(results.environment.provider, 'gcp');
  t.equal(results.environment.hosts, '3 × e2-medium in europe-west1-b, image debian-12', 'the results name the VMs');
  const sluice = results.cells.find((c) => c.system === 'sluice');
  t.ok(sluice?.result !== undefined && sluice.result.ok > 0 && sluice.result.errors === 0, 'sluice measured on the "VM"');
  t.ok((sluice?.cpuUsPerReq ?? 0) > 0, `its CPU read on its host: ${sluice?.cpuUsPerReq} µs/request`);
  await host.close();
  t.equal(w.fake.instances.size, 0, 'the VMs are deleted after the run');
  const deletes = w.fake.requests.filter((r) => r.method === 'DELETE');
  t.equal(deletes.length, 3);
  t.ok([...w.fake.operations.values()].every((op) => op.waits > 0), 'and their delete operations waited on');
  t.match(w.log.join('\n'), /gcp: deleted 3 VMs/);
});

t.test('provisioning fails: one line naming the task, and the VMs are deleted', { skip }, async (t) => {
  const w = await world(t, { extraVars: { ansible_become: false, gcp_check_fail: true } });
  const err = (await GcpHost.create(w.opts, matrix, 10).then(
    () => null,
    (e: unknown) => e,
  )) as Error | null;
  t.match(err, { name: 'GcpError', message: /^provisioning the VMs failed at Fail when the test asks: .*the whole log: \S+ansible\.log$/ });
  const log = /the whole log: (\S+)$/.exec(err?.message ?? '')?.[1] ?? '';
  t.match(readFileSync(log, 'utf8'), /TASK \[Fail when the test asks\]/, 'the log it names is still there');
  t.notOk(existsSync(join(dirname(log), 'id_ed25519')), "the run's private key is not");
  t.equal(inserts(w).length, 3);
  t.equal(w.fake.instances.size, 0, 'nothing is left');
});

t.test('cancelled while the VMs are created: they are deleted', { skip }, async (t) => {
  const abort = new AbortController();
  const w = await world(t, { signal: abort.signal });
  const insert = w.fake.onInsert.fn!;
  w.fake.onInsert.fn = (r) => {
    insert(r);
    abort.abort();
  };
  await t.rejects(GcpHost.create(w.opts, matrix, 10), { name: 'GcpError', message: 'cancelled' });
  t.equal(w.fake.instances.size, 0, 'nothing is left');
});

t.test('cancelled during the run, or failing in the middle of a cell: the VMs are deleted', { skip }, async (t) => {
  const w = await world(t);
  const host = await GcpHost.create(w.opts, matrix, 10);
  const abort = new AbortController();
  const results = await runMatrix({
    matrix,
    host,
    peersDir: '/nonexistent',
    signal: abort.signal,
    onEvent: (e) => {
      if (e.type === 'start') setTimeout(() => abort.abort(), 300);
    },
  });
  t.equal(results.status, 'canceled');
  t.equal(results.cells.filter((c) => c.result !== undefined).length, 0, 'no cell was finished');
  await host.close();
  t.equal(w.fake.instances.size, 0, 'the VMs are deleted');

  // The same "project" again: a run that fails mid-cell (its load generator dies on the source VM).
  const again = await GcpHost.create(w.opts, matrix, 10);
  t.equal(w.fake.instances.size, 3, 'a second run has its VMs');
  const ns = w.netns.namespace('source');
  const failed = await runMatrix({
    matrix,
    host: again,
    peersDir: '/nonexistent',
    onEvent: (e) => {
      if (e.type !== 'start') return;
      setTimeout(() => {
        for (const pid of execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean)) {
          const cmd = (() => {
            try {
              return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
            } catch {
              return '';
            }
          })();
          if (cmd.includes('loadgen\0serve')) process.kill(Number(pid), 'SIGKILL');
        }
      }, 300);
    },
  });
  t.equal(failed.status, 'failed');
  t.match(failed.error, /^the load generator stopped answering: /, `the run failed, saying why: ${failed.error}`);
  await again.close();
  t.equal(w.fake.instances.size, 0, 'its VMs are deleted too');
});

t.test('--keep: the VMs stay, and the way to delete them is printed', { skip }, async (t) => {
  const w = await world(t, { keep: true });
  const host = await GcpHost.create(w.opts, matrix, 10);
  await host.close();
  t.equal(w.fake.instances.size, 3, 'the three VMs are kept');
  t.match(w.log.join('\n'), /sluice orchestrator gc --provider gcp --project proj-1 --yes/);
  // The test's own clean-up, through the same client.
  const { deleteVms } = (await import(dist('providers/gcp/fleet.js'))) as typeof import('../../orchestrator/providers/gcp/fleet.js');
  await deleteVms('proj-1', [...w.fake.instances.keys()].map((name) => ({ name, zone: 'europe-west1-b' })), w.opts.client, 5000);
  t.equal(w.fake.instances.size, 0);
});
