// The gcp provider's VMs, through the real @google-cloud/compute client
// against a fake Compute REST server on loopback: nothing here reaches GCP.
import t from 'tap';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startFakeCompute } from '../helpers/fake-compute.js';
import { runCli } from '../helpers/sink.js';
import { GcpFleet, GcpError, ROLES, type FleetOptions } from '../../orchestrator/providers/gcp/fleet.js';
import { findCredentials, prepareCredentials, GcpUnavailable } from '../../orchestrator/providers/gcp/credentials.js';
import { estimateCost, PRICES } from '../../orchestrator/providers/gcp/prices.js';
import { generateKeyPair, writeInventory } from '../../orchestrator/providers/gcp/ssh.js';
import { gcGcp } from '../../orchestrator/providers/gcp/gc.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly sluice-test';

async function fleet(t: Parameters<typeof startFakeCompute>[0], extra: Partial<FleetOptions> = {}) {
  const fake = await startFakeCompute(t);
  const f = new GcpFleet({
    project: 'proj-1',
    zone: 'europe-west1-b',
    machineType: 'e2-medium',
    image: 'projects/debian-cloud/global/images/family/debian-12',
    network: 'default',
    runId: 'r1a2b3',
    sshPublicKey: KEY,
    client: await fake.clientOptions(),
    callTimeoutMs: 5000,
    operationTimeoutMs: 10_000,
    ...extra,
  });
  t.teardown(() => f.close());
  await f.initialize();
  return { fake, f };
}

t.test('three VMs: exact insert bodies, every operation waited on, addresses read, all deleted', async (t) => {
  const { fake, f } = await fleet(t);
  const vms = await f.create();
  t.same(
    vms.map((v) => v.name),
    ['sluice-r1a2b3-source', 'sluice-r1a2b3-sut', 'sluice-r1a2b3-sink'],
  );
  const inserts = fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/instances'));
  t.equal(inserts.length, 3);
  t.ok(inserts.every((r) => r.path === '/compute/v1/projects/proj-1/zones/europe-west1-b/instances'), 'in the project and zone given');
  const sut = inserts.find((r) => r.body!.name === 'sluice-r1a2b3-sut')!.body!;
  t.same(sut, {
    name: 'sluice-r1a2b3-sut',
    machineType: 'zones/europe-west1-b/machineTypes/e2-medium',
    labels: { sluice: 'bench', 'sluice-run': 'r1a2b3', 'sluice-role': 'sut' },
    tags: { items: ['sluice-bench'] },
    // The SDK's protobuf serialisation adds the empty maps.
    disks: [{ boot: true, autoDelete: true, initializeParams: { labels: {}, resourceManagerTags: {}, sourceImage: 'projects/debian-cloud/global/images/family/debian-12', diskSizeGb: '20' } }],
    networkInterfaces: [{ network: 'global/networks/default', accessConfigs: [{ name: 'External NAT', type: 'ONE_TO_ONE_NAT' }] }],
    metadata: { items: [{ key: 'ssh-keys', value: `sluice-ops:${KEY}` }] },
  });
  t.ok([...fake.operations.values()].every((op) => op.waits >= 1 && op.status === 'DONE'), 'every insert operation was waited on');
  const sink = vms.find((v) => v.role === 'sink')!;
  t.match(sink.internalIp, /^10\.128\.0\.\d+$/);
  t.match(sink.externalIp!, /^203\.0\.113\.\d+$/);
  await f.delete();
  t.equal(fake.instances.size, 0, 'all three deleted');
  const deletes = [...fake.operations.values()].filter((op) => op.kind === 'delete');
  t.equal(deletes.length, 3);
  t.ok(deletes.every((op) => op.waits >= 1), 'every delete operation was waited on');
  t.same(f.remaining, []);
});

t.test('a quota error on one insert: one line naming it, and the VMs already created are deleted', async (t) => {
  const { fake, f } = await fleet(t);
  fake.failInsert.set('sluice-r1a2b3-sink', { status: 403, reason: 'quotaExceeded', message: "Quota 'CPUS' exceeded.  Limit: 8.0 in region europe-west1." });
  const err = await f.create().then(
    () => null,
    (e: unknown) => e,
  );
  t.type(err, GcpError);
  t.match((err as Error).message, /^creating VM sluice-r1a2b3-sink \(e2-medium in europe-west1-b\): quota exceeded: .*CPUS.*\(raise it/);
  t.notOk((err as Error).message.includes('\n'), 'one line');
  t.equal(fake.instances.size, 0, 'nothing is left');
});

t.test('a zone without capacity: the operation error becomes one line, and nothing is left', async (t) => {
  const { fake, f } = await fleet(t);
  fake.failOperation.set('sluice-r1a2b3-sut', { code: 'ZONE_RESOURCE_POOL_EXHAUSTED', message: "The zone 'projects/proj-1/zones/europe-west1-b' does not have enough resources available to fulfill the request." });
  const err = await f.create().then(
    () => null,
    (e: unknown) => e as Error,
  );
  t.match(err!.message, /^creating VM sluice-r1a2b3-sut .*: the zone has no capacity for this machine type now: .*\(try another --zone\)$/);
  t.equal(fake.instances.size, 0);
});

t.test('a permission error: one line saying which role the credentials need', async (t) => {
  const { fake, f } = await fleet(t);
  for (const r of ROLES) fake.failInsert.set(`sluice-r1a2b3-${r}`, { status: 403, reason: 'forbidden', message: "Required 'compute.instances.create' permission for 'projects/proj-1/zones/europe-west1-b/instances/sluice-r1a2b3-source'" });
  const err = await f.create().then(
    () => null,
    (e: unknown) => e as Error,
  );
  t.match(err!.message, /permission denied: .*compute\.instances\.create.*roles\/compute\.instanceAdmin\.v1/);
  t.equal(fake.instances.size, 0);
});

t.test('gc lists VMs labelled as sluice\'s and deletes them with --yes only', async (t) => {
  const { fake, f } = await fleet(t);
  await f.create();
  const client = await fake.clientOptions();
  const lines: string[] = [];
  t.equal(await gcGcp({ project: 'proj-1', yes: false, onGce: false, client, out: (l) => lines.push(l) }), 3);
  t.equal(fake.instances.size, 3, 'without --yes nothing is deleted');
  t.match(lines.at(-1), /3 VMs of sluice's; delete them with --yes/);
  t.match(lines[0], /^sluice-r1a2b3-\w+ {2}europe-west1-b {2}run r1a2b3$/);
  await gcGcp({ project: 'proj-1', yes: true, onGce: false, client, out: (l) => lines.push(l) });
  t.equal(fake.instances.size, 0, 'deleted');
  t.match(lines.at(-1), /deleted 3 VMs/);
});

t.test('credentials: none is one line saying how to log in, and the metadata server is never probed', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'sluice-home-'));
  const env: NodeJS.ProcessEnv = { HOME: home };
  t.equal(findCredentials(env, home), null);
  t.throws(() => prepareCredentials({ onGce: false }, env), new GcpUnavailable('--provider gcp: no Google Cloud credentials found; log in with: gcloud auth application-default login (or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file)'));
  t.equal(env.METADATA_SERVER_DETECTION, 'none', 'google-auth-library is told not to look for the metadata server');
  const onGce: NodeJS.ProcessEnv = {};
  prepareCredentials({ onGce: true }, onGce);
  t.equal(onGce.METADATA_SERVER_DETECTION, undefined, 'unless sluice runs on GCE (--on-gce)');
  // The CLI: no credentials, no VM, exit 2 (the SDK is never called: nothing listens for it here).
  const r = await runCli(['orchestrator', 'gc', '--provider', 'gcp', '--project', 'proj-1'], undefined, { HOME: home, GOOGLE_APPLICATION_CREDENTIALS: '', CLOUDSDK_CONFIG: join(home, 'none') });
  t.equal(r.code, 2);
  t.match(r.stderr, /^error: --provider gcp: no Google Cloud credentials found; log in with: gcloud auth application-default login/);
});

t.test('the cost estimate names the table\'s date; the inventory and the key pair', async (t) => {
  const e = estimateCost('e2-medium', 3, 600);
  t.equal(e.usd!.toFixed(4), (0.033503 * 3 * (10 / 60)).toFixed(4));
  t.match(e.text, new RegExp(`3 × e2-medium for about 10 min ≈ \\$0\\.02 .*${PRICES.date}`));
  t.equal(estimateCost('z9-huge', 3, 60).usd, null);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-gcp-'));
  const key = generateKeyPair(dir, 'sluice-test');
  t.match(key.publicKey, /^ssh-ed25519 \S+ sluice-test$/);
  t.equal(statSync(key.privateKeyFile).mode & 0o777, 0o600, 'the private key is 0600');
  const inv = join(dir, 'inventory.yml');
  writeInventory(
    inv,
    [
      { role: 'source', name: 'sluice-x-source', internalIp: '10.0.0.2', externalIp: '203.0.113.2' },
      { role: 'sut', name: 'sluice-x-sut', internalIp: '10.0.0.3', externalIp: '203.0.113.3' },
      { role: 'sink', name: 'sluice-x-sink', internalIp: '10.0.0.4', externalIp: null },
    ],
    key,
  );
  const parsed = parse(readFileSync(inv, 'utf8')) as { all: { vars: Record<string, unknown>; children: Record<string, { hosts: Record<string, Record<string, string>> }> } };
  t.same(parsed.all.children.sut!.hosts, { 'sluice-x-sut': { ansible_host: '203.0.113.3', internal_address: '10.0.0.3' } });
  t.same(parsed.all.children.sink!.hosts, { 'sluice-x-sink': { ansible_host: '10.0.0.4', internal_address: '10.0.0.4' } });
  t.equal(parsed.all.vars.ansible_ssh_private_key_file, key.privateKeyFile);
  t.equal(parsed.all.vars.ansible_user, 'sluice-ops', 'the login is not the service account');
  t.equal(statSync(inv).mode & 0o777, 0o600);
});
