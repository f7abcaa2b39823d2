// The VMs of a GCP run, through @google-cloud/compute (6.x; 7.x needs Node
// 22): source, sut and sink created in parallel, every zone operation waited
// on, their addresses read, and all of them deleted at the end — also when
// creating one fails, when the run fails or when it is cancelled. Labels mark
// them as sluice's and carry the run id, so `sluice orchestrator gc` finds
// what a crashed run left.
import compute from '@google-cloud/compute';
import type { ClientOptions } from 'google-gax';

export type Role = 'source' | 'sut' | 'sink';
export const ROLES: Role[] = ['source', 'sut', 'sink'];

/** A GCP failure as one line naming the resource (quota, permission, zone capacity …). */
export class GcpError extends Error {
  override name = 'GcpError';
}

export interface FleetOptions {
  project: string;
  zone: string;
  machineType: string;
  /** A source image, e.g. projects/debian-cloud/global/images/family/debian-12. */
  image: string;
  network: string;
  runId: string;
  /** The public key the VMs accept for the login user (OpenSSH format). */
  sshPublicKey: string;
  /** The login user the key is for (default SSH_USER). */
  sshUser?: string;
  /** Client options for the SDK (tests: the fake Compute server on loopback). */
  client?: ClientOptions;
  /** Per call (ms); the SDK would otherwise retry for minutes. */
  callTimeoutMs?: number;
  /** Longest wait for one zone operation (ms). */
  operationTimeoutMs?: number;
}

export interface Vm {
  role: Role;
  name: string;
  internalIp: string;
  externalIp: string | null;
}

/** The login Ansible uses: not `sluice`, the account the services run as (the common role creates that one). */
export const SSH_USER = 'sluice-ops';

export const LABEL = 'sluice';
export const LABEL_VALUE = 'bench';
export const RUN_LABEL = 'sluice-run';

interface Operation {
  name?: string | null;
  status?: string | number | null;
  error?: { errors?: Array<{ code?: string | null; message?: string | null }> | null } | null;
}

/** What a GCP error means to the user, in one line. */
export function explain(err: unknown, what: string): GcpError {
  const e = err as { code?: number | string; message?: string; details?: string; errors?: Array<{ reason?: string; message?: string }> };
  const text = `${e.message ?? ''} ${e.details ?? ''} ${(e.errors ?? []).map((x) => `${x.reason ?? ''} ${x.message ?? ''}`).join(' ')}`;
  const first = (e.message ?? String(err)).split('\n')[0]!.trim();
  if (/QUOTA_EXCEEDED|quota/i.test(text)) return new GcpError(`${what}: quota exceeded: ${first} (raise it in the console's IAM & Admin > Quotas, or use another --zone or --machine-type)`);
  if (/ZONE_RESOURCE_POOL_EXHAUSTED|does not have enough resources|resource pool/i.test(text)) return new GcpError(`${what}: the zone has no capacity for this machine type now: ${first} (try another --zone)`);
  if (e.code === 7 || e.code === 403 || /PERMISSION_DENIED|permission/i.test(text)) return new GcpError(`${what}: permission denied: ${first} (the credentials need roles/compute.instanceAdmin.v1 on the project)`);
  if (e.code === 5 || e.code === 404 || /NOT_FOUND|was not found/i.test(text)) return new GcpError(`${what}: not found: ${first} (check --project, --zone, --image and --network)`);
  if (e.code === 16 || e.code === 401 || /UNAUTHENTICATED|invalid_grant|Could not load the default credentials/i.test(text)) return new GcpError(`${what}: not authenticated: ${first} (gcloud auth application-default login)`);
  return new GcpError(`${what}: ${first}`);
}

export class GcpFleet {
  private readonly instances: InstanceType<typeof compute.InstancesClient>;
  private readonly operations: InstanceType<typeof compute.ZoneOperationsClient>;
  /** VMs whose insert was accepted: deleted by delete(), whatever happened after. */
  private readonly created = new Set<string>();
  readonly vms = new Map<Role, Vm>();

  constructor(private readonly o: FleetOptions) {
    this.instances = new compute.InstancesClient(o.client ?? {});
    this.operations = new compute.ZoneOperationsClient(o.client ?? {});
  }

  private call(): { timeout: number; retry: null } {
    return { timeout: this.o.callTimeoutMs ?? 60_000, retry: null };
  }

  /** Loads the clients: missing credentials reject here, before anything is created. */
  async initialize(): Promise<void> {
    try {
      await this.instances.initialize();
      await this.operations.initialize();
    } catch (err) {
      throw explain(err, 'gcp');
    }
  }

  vmName(role: Role): string {
    return `sluice-${this.o.runId}-${role}`;
  }

  /** The instance resource of a role, exactly as inserted. */
  instanceResource(role: Role): Record<string, unknown> {
    const { zone, machineType, image, network, runId } = this.o;
    return {
      name: this.vmName(role),
      machineType: `zones/${zone}/machineTypes/${machineType}`,
      labels: { [LABEL]: LABEL_VALUE, [RUN_LABEL]: runId, 'sluice-role': role },
      tags: { items: ['sluice-bench'] },
      disks: [{ boot: true, autoDelete: true, initializeParams: { sourceImage: image, diskSizeGb: '20' } }],
      networkInterfaces: [{ network: network.includes('/') ? network : `global/networks/${network}`, accessConfigs: [{ name: 'External NAT', type: 'ONE_TO_ONE_NAT' }] }],
      metadata: { items: [{ key: 'ssh-keys', value: `${this.o.sshUser ?? SSH_USER}:${this.o.sshPublicKey.trim()}` }] },
    };
  }

  /** Waits until a zone operation is DONE; its error, if any, is thrown as one line. */
  async waitFor(op: Operation, what: string): Promise<void> {
    const deadline = Date.now() + (this.o.operationTimeoutMs ?? 600_000);
    let cur = op;
    while (cur.status !== 'DONE' && cur.status !== 2104194) {
      if (Date.now() > deadline) throw new GcpError(`${what}: operation ${op.name} did not finish in time`);
      try {
        // wait returns when the operation is done or after about 2 minutes.
        [cur] = (await this.operations.wait({ project: this.o.project, zone: this.o.zone, operation: op.name! }, this.call())) as unknown as [Operation];
      } catch (err) {
        throw explain(err, what);
      }
    }
    const e = cur.error?.errors?.[0];
    if (e) throw explain({ message: `${e.code ?? ''}: ${e.message ?? ''}`, errors: [{ reason: e.code ?? '', message: e.message ?? '' }] }, what);
  }

  /** Creates the three VMs and reads their addresses; on any failure deletes what was created, then throws. */
  async create(roles: Role[] = ROLES): Promise<Vm[]> {
    try {
      await Promise.all(
        roles.map(async (role) => {
          const what = `creating VM ${this.vmName(role)} (${this.o.machineType} in ${this.o.zone})`;
          let op: Operation;
          try {
            const [lro] = (await this.instances.insert({ project: this.o.project, zone: this.o.zone, instanceResource: this.instanceResource(role) }, this.call())) as unknown as [
              { latestResponse?: Operation; name?: string },
            ];
            op = lro.latestResponse ?? { name: lro.name, status: 'RUNNING' };
          } catch (err) {
            throw explain(err, what);
          }
          this.created.add(this.vmName(role));
          await this.waitFor(op, what);
          this.vms.set(role, await this.describe(role));
        }),
      );
    } catch (err) {
      await this.delete().catch(() => undefined);
      throw err;
    }
    return roles.map((r) => this.vms.get(r)!);
  }

  private async describe(role: Role): Promise<Vm> {
    let inst: { networkInterfaces?: Array<{ networkIP?: string | null; accessConfigs?: Array<{ natIP?: string | null }> | null }> | null };
    try {
      [inst] = (await this.instances.get({ project: this.o.project, zone: this.o.zone, instance: this.vmName(role) }, this.call())) as unknown as [typeof inst];
    } catch (err) {
      throw explain(err, `reading VM ${this.vmName(role)}`);
    }
    const nic = inst.networkInterfaces?.[0];
    if (!nic?.networkIP) throw new GcpError(`VM ${this.vmName(role)} has no internal address`);
    return { role, name: this.vmName(role), internalIp: nic.networkIP, externalIp: nic.accessConfigs?.[0]?.natIP ?? null };
  }

  /** Deletes every VM this fleet created (waiting on each); the first failure is thrown after all were tried. */
  async delete(): Promise<void> {
    const names = [...this.created];
    const failures: GcpError[] = [];
    await Promise.all(
      names.map(async (name) => {
        try {
          await deleteVm(this.instances, this.operations, this.o.project, this.o.zone, name, this.call(), (op, what) => this.waitFor(op, what));
          this.created.delete(name);
        } catch (err) {
          failures.push(err instanceof GcpError ? err : explain(err, `deleting VM ${name}`));
        }
      }),
    );
    if (failures.length > 0) throw failures[0];
  }

  /** Takes VMs created elsewhere (a crashed run's, for gc) into this fleet, so delete() removes them. */
  adopt(names: string[]): void {
    for (const n of names) this.created.add(n);
  }

  /** What is left to delete (for --keep's message and error reports). */
  get remaining(): string[] {
    return [...this.created];
  }

  close(): Promise<void> {
    return Promise.all([this.instances.close(), this.operations.close()]).then(() => undefined);
  }
}

async function deleteVm(
  instances: InstanceType<typeof compute.InstancesClient>,
  _operations: InstanceType<typeof compute.ZoneOperationsClient>,
  project: string,
  zone: string,
  name: string,
  opts: { timeout: number; retry: null },
  wait: (op: Operation, what: string) => Promise<void>,
): Promise<void> {
  const what = `deleting VM ${name}`;
  let op: Operation;
  try {
    const [lro] = (await instances.delete({ project, zone, instance: name }, opts)) as unknown as [{ latestResponse?: Operation; name?: string }];
    op = lro.latestResponse ?? { name: lro.name, status: 'RUNNING' };
  } catch (err) {
    const e = err as { code?: number };
    if (e.code === 5 || e.code === 404) return; // already gone
    throw explain(err, what);
  }
  await wait(op, what);
}

/** VMs labelled as sluice's in a project (every zone), for `sluice orchestrator gc --provider gcp`. */
export async function listSluiceVms(project: string, client: ClientOptions = {}, callTimeoutMs = 60_000): Promise<Array<{ name: string; zone: string; runId: string }>> {
  const instances = new compute.InstancesClient(client);
  try {
    await instances.initialize();
    const out: Array<{ name: string; zone: string; runId: string }> = [];
    const iterable = instances.aggregatedListAsync({ project, filter: `labels.${LABEL} = "${LABEL_VALUE}"`, returnPartialSuccess: true }, { timeout: callTimeoutMs, retry: null, autoPaginate: false } as never);
    for await (const [zoneKey, scoped] of iterable) {
      for (const inst of (scoped as { instances?: Array<{ name?: string | null; labels?: Record<string, string> | null }> | null }).instances ?? []) {
        if (inst.labels?.[LABEL] !== LABEL_VALUE || !inst.name) continue;
        out.push({ name: inst.name, zone: zoneKey.replace(/^zones\//, ''), runId: inst.labels[RUN_LABEL] ?? '?' });
      }
    }
    return out;
  } catch (err) {
    throw explain(err, `listing sluice's VMs in ${project}`);
  } finally {
    await instances.close();
  }
}

/** Deletes VMs by name and zone (gc), waiting on each. */
export async function deleteVms(project: string, vms: Array<{ name: string; zone: string }>, client: ClientOptions = {}, callTimeoutMs = 60_000): Promise<void> {
  const byZone = new Map<string, string[]>();
  for (const v of vms) byZone.set(v.zone, [...(byZone.get(v.zone) ?? []), v.name]);
  for (const [zone, names] of byZone) {
    const fleet = new GcpFleet({ project, zone, machineType: '', image: '', network: '', runId: '', sshPublicKey: '', client, callTimeoutMs });
    try {
      await fleet.initialize();
      fleet.adopt(names);
      await fleet.delete();
    } finally {
      await fleet.close();
    }
  }
}
