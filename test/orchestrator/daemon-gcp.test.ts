// The daemon's `provider: gcp` runs: refused unless the operator allowed
// them (--allow-gcp, which checks credentials at start), refused without a
// project; allowed, a run creates its VMs (the fake Compute server, whose VMs
// are namespaces with sshd), provisions them, runs the matrix there and
// deletes them, the same way as `sluice bench --provider gcp`.
import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { gcpWorld } from '../helpers/gcp-world.js';
import { sshdMissing } from '../helpers/netns-sshd.js';
import { runCli, spawnCli } from '../helpers/sink.js';
import { waitFor } from '../helpers/gateway.js';
import { missingTools, PLAYBOOK } from '../ops/ansible.js';

const dist = (p: string): string => new URL(`../../dist/orchestrator/${p}`, import.meta.url).href;
const { netnsRefusal } = (await import(dist('providers/netns.js'))) as typeof import('../../orchestrator/providers/netns.js');
const { DaemonStore } = (await import(dist('daemon/store.js'))) as typeof import('../../orchestrator/daemon/store.js');
const { Executor } = (await import(dist('daemon/executor.js'))) as typeof import('../../orchestrator/daemon/executor.js');
const { Scheduler } = (await import(dist('daemon/scheduler.js'))) as typeof import('../../orchestrator/daemon/scheduler.js');
const { DaemonServer } = (await import(dist('daemon/server.js'))) as typeof import('../../orchestrator/daemon/server.js');

const skip = netnsRefusal() ?? sshdMissing() ?? missingTools(PLAYBOOK);
const matrix = { scenarios: [{ name: 'vm', workers: 8, wait_ms: 10, duration_s: 1 }], systems: ['baseline', 'sluice'], warmup_s: 0.5 };

t.test('--allow-gcp checks credentials at start; gcp runs are refused without it', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'sluice-gcp-home-'));
  const env = { HOME: home, GOOGLE_APPLICATION_CREDENTIALS: '', CLOUDSDK_CONFIG: join(home, 'gcloud') };
  const data = mkdtempSync(join(tmpdir(), 'sluice-daemon-'));
  let r = await runCli(['orchestrator', 'serve', '--port', '0', '--data', data, '--allow-gcp'], undefined, env);
  t.equal(r.code, 2, 'no credentials: exit 2');
  t.match(r.stderr, /--allow-gcp: no Google Cloud credentials found; log in with: gcloud auth application-default login/);
  r = await runCli(['orchestrator', 'serve', '--port', '0', '--data', data, '--gcp-project', 'proj-1'], undefined, env);
  t.equal(r.code, 2);
  t.match(r.stderr, /--gcp-project needs --allow-gcp/);
  const d = await spawnCli(t, ['orchestrator', 'serve', '--port', '0', '--data', data], env, (m) => m.msg === 'orchestrator listening');
  const port = (d.ready as { port: number }).port;
  const res = await request(`http://127.0.0.1:${port}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ matrix, provider: 'gcp' }) });
  t.equal(res.statusCode, 400);
  t.match(await res.body.json(), { error: { code: 'invalid_provider', param: 'provider', message: /--allow-gcp/ } });
  const providers = await request(`http://127.0.0.1:${port}/v1/providers`);
  t.match(await providers.body.json(), { data: [{ id: 'local', available: true }, {}, { id: 'gcp', available: false, reason: /--allow-gcp/ }] }, 'GET /v1/providers says why gcp is not offered');
});

t.test('an allowed gcp run: VMs created, the matrix run on them, VMs deleted', { skip }, async (t) => {
  const w = await gcpWorld(t);
  const store = new DaemonStore(mkdtempSync(join(tmpdir(), 'sluice-daemon-')));
  const executor = new Executor(store, { peersDir: '/nonexistent', gcp: { ...w.opts, project: undefined, zone: 'us-east1-b' } });
  const scheduler = new Scheduler(store, () => executor.pump());
  const server = new DaemonServer(store, executor, scheduler, { allowCommands: false, allowGcp: true });
  const port = await server.listen(0, '127.0.0.1');
  t.teardown(async () => {
    await executor.stop();
    await server.close();
  });
  const post = async (body: unknown) => {
    const r = await request(`http://127.0.0.1:${port}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: r.statusCode, body: (await r.body.json()) as Record<string, unknown> };
  };
  const providers = await request(`http://127.0.0.1:${port}/v1/providers`);
  t.match(await providers.body.json(), { object: 'list', data: [{ id: 'local', available: true }, { id: 'netns', available: true }, { id: 'gcp', available: true }] }, 'GET /v1/providers: gcp is offered');
  const refused = await post({ matrix, provider: 'gcp' });
  t.equal(refused.status, 400, 'no project anywhere: refused at once');
  t.match(refused.body, { error: { param: 'matrix.gcp.project' } });
  const created = await post({ matrix: { ...matrix, gcp: { project: 'proj-1', zone: 'europe-west1-b' } }, provider: 'gcp' });
  t.equal(created.status, 202);
  const id = created.body.id as string;
  let status = '';
  t.ok(
    await waitFor(async () => {
      const r = await request(`http://127.0.0.1:${port}/v1/runs/${id}`);
      status = ((await r.body.json()) as { status: string }).status;
      return status !== 'queued' && status !== 'running';
    }, 120_000),
    'the run ended',
  );
  t.equal(status, 'completed');
  const results = store.readResults(id)!;
  t.equal(results.environment.provider, 'gcp');
  const sluice = results.cells.find((c) => c.system === 'sluice');
  t.ok(sluice?.result !== undefined && sluice.result.ok > 0, 'sluice measured on the "VM"');
  t.equal(w.fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/instances')).length, 3, 'three VMs were created');
  const zones = new Set(w.fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/instances')).map((r) => r.path.split('/')[6]));
  t.same([...zones], ['europe-west1-b'], "in the matrix's zone");
  t.equal(w.fake.instances.size, 0, 'and deleted');
});
