// The world of a gcp test without GCP: the fake Compute server on loopback,
// whose "VMs" are the three namespaces of a NetnsHost with a real sshd each.
// Its insert installs the run's SSH key from the instance metadata (as
// Google's guest agent does) and its VMs report their namespace's address.
import { appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { startFakeCompute, type FakeCompute } from './fake-compute.js';
import { netnsWithSshd, type NetnsSshd } from './netns-sshd.js';

type GcpOptions = import('../../orchestrator/providers/gcp/host.js').GcpOptions;

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
/** Stands in for site.yml: the same inventory, over real SSH. */
export const CHECK_PLAYBOOK = fileURLToPath(new URL('../orchestrator/fixtures/gcp-check.yml', import.meta.url));

export interface GcpWorld {
  /** The namespaces standing in for the VMs (namespace(role), address(role)). */
  netns: { namespace(role: 'source' | 'sut' | 'sink'): string };
  fake: FakeCompute;
  sshd: NetnsSshd;
  opts: GcpOptions;
  log: string[];
}

/** The fake Compute API, whose VMs are the namespaces of a NetnsHost with sshd. */
export async function gcpWorld(t: Test, over: Partial<GcpOptions> = {}): Promise<GcpWorld> {
  const { netns, sshd } = await netnsWithSshd(t);
  const fake = await startFakeCompute(t);
  const role = (name: string) => name.replace(/^.*-(source|sut|sink)$/, '$1') as 'source' | 'sut' | 'sink';
  fake.addresses.of = (name) => ({ networkIP: netns.address(role(name)), natIP: netns.address(role(name)) });
  fake.onInsert.fn = (resource) => {
    const items = (resource.metadata as { items: Array<{ key: string; value: string }> }).items;
    const entry = items.find((i) => i.key === 'ssh-keys')!.value;
    appendFileSync(sshd.authorizedKeys, entry.slice(entry.indexOf(':') + 1) + '\n');
  };
  const log: string[] = [];
  const opts: GcpOptions = {
    project: 'proj-1',
    zone: 'europe-west1-b',
    machineType: 'e2-medium',
    image: 'projects/debian-cloud/global/images/family/debian-12',
    network: 'default',
    yes: true,
    keep: false,
    onGce: false,
    log: (l) => log.push(l),
    client: await fake.clientOptions(),
    callTimeoutMs: 5000,
    sshUser: sshd.targets.sut.user,
    sshTimeoutMs: 15_000,
    playbook: CHECK_PLAYBOOK,
    // No sudo in the namespaces: the test's user is root already.
    extraVars: { ansible_become: false },
    remoteCli: [process.execPath, CLI],
    ...over,
  };
  return { netns, fake, sshd, opts, log };
}

