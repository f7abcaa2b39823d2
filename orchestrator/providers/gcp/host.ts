// Provider `gcp`: source, system under test and sink on three VMs (e2-medium
// by default). Before anything is created: credentials, the cost estimate
// and --yes. Then the VMs (fleet.ts), a key pair of the run's own in their
// metadata, an Ansible inventory, site.yml over SSH (the app, Node.js, the
// peers; no service started: the runner starts what each cell needs), and
// the same runner as locally through ../ssh.ts, with the sink and the system
// talking over internal addresses and the load generator reached through an
// SSH tunnel. close() deletes the VMs (unless --keep), and so does every
// failure on the way.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import type { ClientOptions } from 'google-gax';
import type { Matrix } from '../../matrix/types.js';
import { PORTKEY_VERSION } from '../../peers.js';
import { SshHost } from '../ssh.js';
import type { Host, HostFiles, SinkHandle, Sampler } from '../types.js';
import type { Environment } from '../../environment.js';
import { GcpUnavailable, prepareCredentials } from './credentials.js';
import { GcpError, GcpFleet, SSH_USER, type Vm } from './fleet.js';
import { estimateCost } from './prices.js';
import { generateKeyPair, writeInventory } from './ssh.js';

export const DEFAULTS = {
  zone: 'us-central1-a',
  machineType: 'e2-medium',
  image: 'projects/debian-cloud/global/images/family/debian-12',
  network: 'default',
} as const;

/** Seconds a run spends besides its cells: creating the VMs, sshd coming up, site.yml, deleting them. */
export const SETUP_SECONDS = 8 * 60;

/** Where site.yml installs sluice and the peers on the hosts (the roles' defaults). */
export const REMOTE_CLI = ['/usr/bin/node', '/opt/sluice/current/lib/node_modules/sluice/dist/cli.js'];
export const REMOTE_PEERS_DIR = `/opt/sluice/peers/portkey-${PORTKEY_VERSION}`;

export const ANSIBLE_DIR = fileURLToPath(new URL('../../../../ansible/', import.meta.url));

export interface GcpOptions {
  project: string;
  zone: string;
  machineType: string;
  image: string;
  network: string;
  /** Create the VMs without asking. */
  yes: boolean;
  /** Keep the VMs after the run (printing how to delete them). */
  keep: boolean;
  /** sluice itself runs on GCE: credentials may come from the metadata server. */
  onGce: boolean;
  /** Where messages for the user go. */
  log: (line: string) => void;
  /** Asks the user (a terminal) to go on; absent or not a terminal: --yes is required. */
  confirm?: (question: string) => Promise<boolean>;
  /** Cancels the setup (Ctrl-C): what was created is deleted. */
  signal?: AbortSignal;
  // For tests (the fake Compute server, sshd in namespaces):
  client?: ClientOptions;
  callTimeoutMs?: number;
  sshUser?: string;
  sshTimeoutMs?: number;
  /** The playbook run against the VMs (default: site.yml) and extra variables merged over the run's. */
  playbook?: string;
  extraVars?: Record<string, unknown>;
  remoteCli?: string[];
}

/** The programs a gcp run needs on this machine, checked before any VM exists: the missing ones, with how to install them. */
export function missingTools(path = process.env.PATH ?? ''): string | null {
  const tools: Array<[string, string]> = [
    ['ssh', 'openssh-client'],
    ['ssh-keygen', 'openssh-client'],
    ['ansible-playbook', 'ansible-core'],
  ];
  const dirs = path.split(':').filter(Boolean);
  const missing = tools.filter(([t]) => !dirs.some((d) => existsSync(join(d, t))));
  if (missing.length === 0) return null;
  return `--provider gcp: ${missing.map(([t]) => t).join(', ')} not found; install with: apt-get install -y --no-install-recommends ${[...new Set(missing.map(([, p]) => p))].join(' ')}`;
}

/** Tells the user what the run costs and gets a yes (--yes, or a terminal's answer); GcpUnavailable otherwise. */
export async function agreeToCost(o: GcpOptions, plannedSeconds: number): Promise<void> {
  const estimate = estimateCost(o.machineType, 3, plannedSeconds + SETUP_SECONDS);
  o.log(`gcp: this run creates 3 VMs in ${o.project}/${o.zone}: ${estimate.text}`);
  if (o.yes) return;
  if (o.confirm === undefined) throw new GcpUnavailable('--provider gcp: creating VMs costs money; add --yes to agree to the estimate above');
  if (!(await o.confirm('create them? [y/N] '))) throw new GcpUnavailable('--provider gcp: not confirmed; nothing was created');
}

/** A terminal's yes or no (for GcpOptions.confirm); null when stdin is not a terminal. */
export function terminalConfirm(): GcpOptions['confirm'] {
  if (!process.stdin.isTTY) return undefined;
  return (question) =>
    new Promise((resolve) => {
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      // Ctrl-C at the question is a no (readline takes it from the terminal).
      rl.once('SIGINT', () => {
        rl.close();
        process.stderr.write('\n');
        resolve(false);
      });
      rl.question(question, (a) => {
        rl.close();
        resolve(/^y(es)?$/i.test(a.trim()));
      });
    });
}

/** site.yml's variables for a bench run: every package the matrix's systems need, no service started. */
export function provisionVars(matrix: Matrix): Record<string, unknown> {
  const has = (s: string): boolean => matrix.systems.includes(s);
  return {
    // The runner starts the sink, the systems and the load generator itself, per cell.
    sluice_services_start: false,
    gateway_enabled: true,
    gateway_keys: [{ name: 'bench', secret: `sk-sluice-${randomBytes(24).toString('hex')}` }],
    // A Redis store makes the gateway role install redis-server.
    gateway_store: has('sluice-redis') ? 'redis' : 'sqlite',
    nginx_enabled: has('nginx'),
    portkey_enabled: has('portkey'),
    sluice_peer_api_key: `sk-peer-${randomBytes(24).toString('hex')}`,
  };
}

/** Runs a playbook against the inventory, its output in `logFile`; one line naming the failed task when it fails. */
export function runPlaybook(inventory: string, vars: Record<string, unknown>, dir: string, logFile: string, playbook = 'site.yml', signal?: AbortSignal): Promise<void> {
  const varsFile = join(dir, 'vars.json');
  writeFileSync(varsFile, JSON.stringify(vars), { mode: 0o600 });
  return new Promise((resolve, reject) => {
    const log = createWriteStream(logFile, { mode: 0o600 });
    const p = spawn('ansible-playbook', ['-i', inventory, '-e', `@${varsFile}`, playbook], {
      cwd: ANSIBLE_DIR,
      env: {
        ...process.env,
        ANSIBLE_ROLES_PATH: join(ANSIBLE_DIR, 'roles'),
        ANSIBLE_HOME: join(dir, 'ansible'),
        ANSIBLE_LOCAL_TEMP: join(dir, 'ansible', 'tmp'),
        ANSIBLE_NOCOLOR: '1',
        ANSIBLE_RETRY_FILES_ENABLED: '0',
        ANSIBLE_SSH_RETRIES: '3',
        // One SSH round trip per task instead of several (Debian's sudo does not require a tty).
        ANSIBLE_PIPELINING: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let lastTask = '';
    let failure = '';
    const onLine = (l: string): void => {
      log.write(l + '\n');
      if (l.startsWith('TASK [')) lastTask = l.replace(/^TASK \[(.*)\].*$/, '$1');
      if (/^(fatal|failed):/.test(l) && failure === '') failure = `${lastTask}: ${l.slice(0, 300)}`;
    };
    createInterface({ input: p.stdout! }).on('line', onLine);
    createInterface({ input: p.stderr! }).on('line', onLine);
    const abort = (): void => {
      try {
        process.kill(-p.pid!, 'SIGTERM');
      } catch {
        /* gone */
      }
    };
    signal?.addEventListener('abort', abort, { once: true });
    p.once('error', (e) => reject(new GcpError(`ansible-playbook could not start: ${e.message} (apt-get install -y ansible-core)`)));
    p.once('exit', (code) => {
      signal?.removeEventListener('abort', abort);
      log.end();
      if (signal?.aborted) reject(new GcpError('cancelled'));
      else if (code === 0) resolve();
      else reject(new GcpError(`provisioning the VMs failed${failure ? ` at ${failure}` : ` (exit ${code})`}; the whole log: ${logFile}`));
    });
  });
}

export class GcpHost implements Host {
  readonly name = 'gcp';
  private ssh: SshHost | null = null;
  private closing: Promise<void> | null = null;
  /** Provisioning failed: its log stays for the user (the error names it); the key goes with the VMs. */
  private keepLog = false;

  private constructor(
    private readonly o: GcpOptions,
    private readonly fleet: GcpFleet,
    private readonly dir: string,
  ) {}

  /**
   * Creates the VMs, provisions them and connects: a host for the runner. Everything created is deleted
   * when any step fails or the signal aborts; the caller's close() deletes it after the run.
   */
  static async create(o: GcpOptions, matrix: Matrix, plannedSeconds: number): Promise<GcpHost> {
    // Before anything else: no credentials is one line and no VM.
    const credentials = o.client === undefined ? prepareCredentials({ onGce: o.onGce }) : 'the test client';
    const missing = missingTools();
    if (missing !== null) throw new GcpUnavailable(missing);
    await agreeToCost(o, plannedSeconds);
    o.log(`gcp: credentials from ${credentials}`);
    const runId = `${Date.now().toString(36).slice(-5)}${randomBytes(2).toString('hex')}`;
    const dir = mkdtempSync(join(tmpdir(), `sluice-gcp-${runId}-`));
    const key = generateKeyPair(dir, `sluice-bench-${runId}`);
    const fleet = new GcpFleet({
      project: o.project,
      zone: o.zone,
      machineType: o.machineType,
      image: o.image,
      network: o.network,
      runId,
      sshPublicKey: key.publicKey,
      ...(o.sshUser !== undefined ? { sshUser: o.sshUser } : {}),
      ...(o.client !== undefined ? { client: o.client } : {}),
      ...(o.callTimeoutMs !== undefined ? { callTimeoutMs: o.callTimeoutMs } : {}),
    });
    const host = new GcpHost(o, fleet, dir);
    const check = (): void => {
      if (o.signal?.aborted) throw new GcpError('cancelled');
    };
    try {
      await fleet.initialize();
      check();
      o.log(`gcp: creating ${fleet.vmName('source')}, ${fleet.vmName('sut')} and ${fleet.vmName('sink')} (${o.machineType})`);
      const vms = await fleet.create();
      o.log(`gcp: created: ${vms.map((v) => `${v.role} ${v.internalIp}${v.externalIp ? ` (${v.externalIp})` : ''}`).join(', ')}`);
      check();
      const user = o.sshUser ?? SSH_USER;
      const inventory = join(dir, 'inventory.yml');
      writeInventory(inventory, vms, key, user);
      const target = (v: Vm) => ({ address: v.externalIp ?? v.internalIp, user, keyFile: key.privateKeyFile, internalAddress: v.internalIp });
      const byRole = (r: Vm['role']) => target(vms.find((v) => v.role === r)!);
      host.ssh = new SshHost('gcp', { source: byRole('source'), sut: byRole('sut'), sink: byRole('sink') }, o.remoteCli ?? REMOTE_CLI);
      o.log('gcp: waiting for SSH on the VMs');
      await host.ssh.setup(o.sshTimeoutMs ?? 180_000, o.signal);
      check();
      const log = join(dir, 'ansible.log');
      o.log(`gcp: provisioning with ansible-playbook ${o.playbook ?? 'site.yml'} (log: ${log})`);
      try {
        await runPlaybook(inventory, { ...provisionVars(matrix), ...(o.extraVars ?? {}) }, dir, log, o.playbook, o.signal);
      } catch (err) {
        host.keepLog = !o.signal?.aborted;
        throw err;
      }
      check();
      return host;
    } catch (err) {
      await host.close();
      throw err;
    }
  }

  private get on(): SshHost {
    if (this.ssh === null) throw new GcpError('the VMs are not ready');
    return this.ssh;
  }

  get cli(): string[] {
    return this.on.cli;
  }
  get procs(): SshHost['procs'] {
    return this.on.procs;
  }
  get files(): HostFiles {
    return this.on.files;
  }
  get cores(): number {
    return this.on.cores;
  }
  get sutAddress(): string {
    return this.on.sutAddress;
  }
  workDir(): Promise<string> {
    return this.on.workDir();
  }
  freePort(): Promise<number> {
    return this.on.freePort();
  }
  probe(url: string, timeoutMs?: number): Promise<number | null> {
    return this.on.probe(url, timeoutMs);
  }
  sampler(pids: number[]): Promise<Sampler> {
    return this.on.sampler(pids);
  }
  loadgen(): Promise<string> {
    return this.on.loadgen();
  }
  sink(args: string[]): Promise<SinkHandle> {
    return this.on.sink(args);
  }

  async environment(): Promise<Environment> {
    const image = this.o.image.replace(/^.*\/(family\/)?/, '');
    return { ...(await this.on.environment()), provider: 'gcp', hosts: `3 × ${this.o.machineType} in ${this.o.zone}, image ${image}` };
  }

  /** The VMs this run created that still exist. */
  get vms(): string[] {
    return this.fleet.remaining;
  }

  /** Stops what runs on the VMs, then deletes them (unless --keep). Called again, it waits for the same deletion. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    if (this.ssh !== null) await this.ssh.close().catch(() => undefined);
    try {
      const names = this.fleet.remaining;
      if (this.o.keep && names.length > 0) {
        this.o.log(`gcp: --keep: the VMs stay (and cost money): ${names.join(', ')}`);
        this.o.log(`gcp: delete them with: sluice orchestrator gc --provider gcp --project ${this.o.project} --yes   (or: gcloud compute instances delete ${names.join(' ')} --zone ${this.o.zone} --project ${this.o.project})`);
        this.o.log(`gcp: their SSH key and inventory: ${this.dir}`);
        return;
      }
      if (names.length > 0) {
        this.o.log(`gcp: deleting ${names.join(', ')}`);
        try {
          await this.fleet.delete();
        } catch (err) {
          this.o.log(`gcp: could not delete every VM: ${err instanceof Error ? err.message : String(err)}; left: ${this.fleet.remaining.join(', ')}; run: sluice orchestrator gc --provider gcp --project ${this.o.project} --yes`);
          throw err;
        }
        this.o.log(`gcp: deleted ${names.length} VM${names.length === 1 ? '' : 's'}`);
      }
      if (!this.keepLog) rmSync(this.dir, { recursive: true, force: true });
      else for (const f of ['id_ed25519', 'id_ed25519.pub', 'vars.json', 'ansible']) rmSync(join(this.dir, f), { recursive: true, force: true });
    } finally {
      await this.fleet.close().catch(() => undefined);
    }
  }
}
