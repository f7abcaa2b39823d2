// Provider `netns`: source, system under test and sink each in a network
// namespace of its own (ip netns, iproute2), joined by veth pairs to a bridge
// in the root namespace, with addresses from 198.18.0.0/15 (the range
// reserved for network benchmarks), each role pinned to CPUs of its own where
// the machine has enough. The runner drives the load through the load
// generator's REST API on the source's address, as on remote hosts.
//
// Names carry the owner's pid (base 36) so that two runs never collide, and
// a run removes what a crashed run left (its pid gone) before it starts:
// namespaces (and the processes still in them), the veths and the bridge.
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { alive } from '../../common/procs.js';
import { freeLocalPort, localFiles, localProbe, localSampler, LocalWorkDir } from './local.js';
import { ProcessSet } from './processes.js';
import { startLoadgen, startSink } from './roles.js';
import type { Host, SinkHandle, Sampler } from './types.js';

const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url));
const PREFIX = 'sluice-';
/** Interface names: at most 15 characters; `sl` + pid in base 36 (at most 5) + a suffix. */
const LINK_PREFIX = 'sl';

export type Role = 'source' | 'sut' | 'sink';
const ROLES: Role[] = ['source', 'sut', 'sink'];
const ROLE_CODE: Record<Role, string> = { source: 's', sut: 'u', sink: 'k' };
const ROLE_HOST: Record<Role, number> = { source: 2, sut: 3, sink: 4 };

/** The machine cannot make namespaces (not root, no CAP_NET_ADMIN, no iproute2, no netem): one line, exit 2. */
export class NetnsUnavailable extends Error {
  override name = 'NetnsUnavailable';
}

export interface NetnsOptions {
  /** One-way delay added on every role's link (tc netem), ms. */
  linkDelayMs?: number;
  /** Rate of every role's link (tc netem rate), e.g. "1gbit". */
  linkRate?: string;
  /** Where messages for the user go (the CPU split, leftovers removed). */
  log?: (line: string) => void;
}

function ip(args: string[], quiet = false): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    if (quiet) return '';
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** Whether this process may create network namespaces; the reason when not. */
export function netnsRefusal(): string | null {
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'iproute2 is not installed (apt-get install -y iproute2)';
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    // CAP_NET_ADMIN without root is possible but rare: ip netns needs to mount /run/netns too.
    return 'network namespaces need root (CAP_NET_ADMIN and CAP_SYS_ADMIN)';
  }
  return null;
}

/** Namespaces and links of sluice runs whose process is gone: [namespaces, links]. */
export function leftovers(): { namespaces: string[]; links: string[] } {
  const owned = (id: string): boolean => {
    const pid = parseInt(id, 36);
    return Number.isInteger(pid) && pid > 0 && alive(pid);
  };
  const namespaces = ip(['netns', 'list'], true)
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(PREFIX))
    .filter((n) => !owned(n.slice(PREFIX.length).split('-')[0]!));
  const ours = new RegExp(`^${LINK_PREFIX}([0-9a-z]{1,5})(?:b|[suk]h)$`);
  const links = ip(['-o', 'link', 'show'], true)
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '')
    .filter((n) => {
      const m = ours.exec(n);
      return m !== null && !owned(m[1]!);
    });
  return { namespaces, links };
}

/** Removes what crashed runs left: the processes in their namespaces, the namespaces, their links. */
export function removeLeftovers(log: (line: string) => void = () => undefined): number {
  const { namespaces, links } = leftovers();
  for (const ns of namespaces) {
    for (const pid of ip(['netns', 'pids', ns], true).split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    ip(['netns', 'delete', ns], true);
  }
  for (const l of links) ip(['link', 'delete', l], true);
  if (namespaces.length + links.length > 0) log(`netns: removed what an earlier run left: ${[...namespaces, ...links].join(', ')}`);
  return namespaces.length + links.length;
}

/** The CPUs of each role: on 3 or more, one each (the SUT gets what is left); on 2, the SUT alone on one. */
export function cpuSplit(cores: number): Record<Role, number[]> | null {
  const all = Array.from({ length: cores }, (_, i) => i);
  if (cores >= 3) return { source: [0], sink: [1], sut: all.slice(2) };
  if (cores === 2) return { source: [0], sink: [0], sut: [1] };
  return null;
}

/** A free /24 of 198.18.0.0/15 on this machine (one per run). */
function freeSubnet(): string {
  const used = ip(['-o', '-4', 'addr', 'show'], true);
  for (let n = 1; n < 255; n++) {
    const net = `198.18.${(process.pid + n) % 254 + 1}`;
    if (!used.includes(` ${net}.`)) return net;
  }
  throw new NetnsUnavailable('netns: no free /24 left in 198.18.0.0/16');
}

export class NetnsHost implements Host {
  readonly name = 'netns';
  readonly cli = [process.execPath, CLI];
  readonly procs: ProcessSet;
  readonly files = localFiles;
  readonly cores: number;
  readonly sutAddress: string;
  private readonly scratch = new LocalWorkDir('sluice-bench-');
  private readonly id = process.pid.toString(36);
  private readonly subnet: string;
  private readonly split: Record<Role, number[]> | null;
  private readonly roleProcs: Record<'source' | 'sink', ProcessSet>;
  private loadgenPort: number | null = null;
  private created = false;
  private closed = false;

  constructor(private readonly opts: NetnsOptions = {}) {
    const refusal = netnsRefusal();
    if (refusal !== null) throw new NetnsUnavailable(`--provider netns: ${refusal}; run as root, or use --provider local`);
    const cores = availableParallelism();
    this.split = cpuSplit(cores);
    this.cores = this.split?.sut.length ?? cores;
    this.subnet = freeSubnet();
    this.sutAddress = this.address('sut');
    this.procs = new ProcessSet(this.wrapper('sut'));
    this.roleProcs = { source: new ProcessSet(this.wrapper('source')), sink: new ProcessSet(this.wrapper('sink')) };
  }

  namespace(role: Role): string {
    return `${PREFIX}${this.id}-${role}`;
  }

  address(role: Role): string {
    return `${this.subnet}.${ROLE_HOST[role]}`;
  }

  private bridge(): string {
    return `${LINK_PREFIX}${this.id}b`;
  }

  private wrapper(role: Role): (cmd: string, args: string[]) => [string, string[]] {
    const cpus = this.split?.[role];
    return (cmd, args) => ['ip', ['netns', 'exec', this.namespace(role), ...(cpus ? ['taskset', '-c', cpus.join(','), cmd] : [cmd]), ...args]];
  }

  /** Creates the namespaces, the bridge and the links; removes what crashed runs left first. */
  setup(): void {
    const log = this.opts.log ?? (() => undefined);
    removeLeftovers(log);
    this.created = true;
    try {
      const br = this.bridge();
      ip(['link', 'add', br, 'type', 'bridge']);
      ip(['addr', 'add', `${this.subnet}.1/24`, 'dev', br]);
      ip(['link', 'set', br, 'up']);
      for (const role of ROLES) {
        const ns = this.namespace(role);
        const hostEnd = `${LINK_PREFIX}${this.id}${ROLE_CODE[role]}h`;
        const nsEnd = `${LINK_PREFIX}${this.id}${ROLE_CODE[role]}n`;
        ip(['netns', 'add', ns]);
        ip(['-n', ns, 'link', 'set', 'lo', 'up']);
        ip(['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', nsEnd]);
        ip(['link', 'set', nsEnd, 'netns', ns]);
        ip(['link', 'set', hostEnd, 'master', br]);
        ip(['link', 'set', hostEnd, 'up']);
        ip(['-n', ns, 'addr', 'add', `${this.address(role)}/24`, 'dev', nsEnd]);
        ip(['-n', ns, 'link', 'set', nsEnd, 'up']);
        if (this.opts.linkDelayMs !== undefined || this.opts.linkRate !== undefined) {
          const netem = ['netem', ...(this.opts.linkDelayMs !== undefined ? ['delay', `${this.opts.linkDelayMs}ms`] : []), ...(this.opts.linkRate !== undefined ? ['rate', this.opts.linkRate] : [])];
          try {
            execFileSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', nsEnd, 'root', ...netem], { stdio: ['ignore', 'ignore', 'pipe'] });
          } catch (err) {
            const why = String((err as { stderr?: Buffer }).stderr ?? '').trim();
            throw new NetnsUnavailable(`--link-delay-ms/--link-rate: tc netem failed (${why || 'error'}); this kernel may lack sch_netem (modprobe sch_netem)`);
          }
        }
      }
    } catch (err) {
      this.teardown();
      throw err;
    }
    const s = this.split;
    log(
      s === null
        ? 'netns: one core: the three roles share it'
        : `netns: CPUs: system under test ${s.sut.join(',')}; source ${s.source.join(',')}; sink ${s.sink.join(',')} (${availableParallelism()} cores); addresses ${this.address('source')} source, ${this.address('sut')} system, ${this.address('sink')} sink`,
    );
  }

  workDir(): Promise<string> {
    return this.scratch.get();
  }

  /** A port free on the system's address (its namespace has its own ports; none is in use there but ours). */
  freePort(): Promise<number> {
    return freeLocalPort();
  }

  probe(url: string, timeoutMs?: number): Promise<number | null> {
    return localProbe(url, timeoutMs);
  }

  sampler(pids: number[]): Promise<Sampler> {
    return localSampler(pids);
  }

  async loadgen(): Promise<string> {
    this.loadgenPort ??= (await startLoadgen(this.roleProcs.source, this.cli, this.address('source'))).port;
    return `http://${this.address('source')}:${this.loadgenPort}`;
  }

  sink(args: string[]): Promise<SinkHandle> {
    return startSink(this.roleProcs.sink, this.cli, this.address('sink'), args);
  }

  async close(): Promise<void> {
    if (this.closed) {
      // A second Ctrl-C: no waiting for the processes to drain; the namespaces go now, with what is in them.
      this.teardown();
      return;
    }
    this.closed = true;
    await Promise.all([this.procs.stopAll(), this.roleProcs.source.stopAll(), this.roleProcs.sink.stopAll()]);
    this.loadgenPort = null;
    this.teardown();
    await this.scratch.remove();
  }

  /** Removes this run's namespaces (and anything still in them) and links; safe to call twice. */
  teardown(): void {
    if (!this.created) return;
    for (const role of ROLES) {
      const ns = this.namespace(role);
      for (const pid of ip(['netns', 'pids', ns], true).split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      // Deleting a namespace deletes its end of the veth, and with it the other end.
      ip(['netns', 'delete', ns], true);
      ip(['link', 'delete', `${LINK_PREFIX}${this.id}${ROLE_CODE[role]}h`], true);
    }
    ip(['link', 'delete', this.bridge()], true);
    this.created = false;
  }
}
