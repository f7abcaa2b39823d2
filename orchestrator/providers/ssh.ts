// Hosts reached over SSH (the VMs of a GCP run): source, system under test
// and sink each on a machine of its own, driven by the same runner as the
// local providers. One OpenSSH master connection per host (ControlMaster)
// carries every command, file and tunnel: a process started on a host is
// `ssh … -- 'echo PID_MARK $$; cd DIR && exec env … CMD ARGS'` (its own
// process group under sshd, stopped by signalling that group), files go
// through `cat`, the load generator's REST API is reached through a forwarded
// port on loopback (never opened to the network), and the system's CPU and
// RSS are read on its host by `sluice orchestrator sample`, the same /proc
// accounting as locally.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { jsonLine, PID_MARK, ProcessSet, type StartOptions, type Started } from './processes.js';
import { startLoadgen, startSink } from './roles.js';
import { freeLocalPort } from './local.js';
import type { Host, HostFiles, SinkHandle, Sampler } from './types.js';
import { sluiceVersion, type Environment } from '../environment.js';

export type Role = 'source' | 'sut' | 'sink';
const ROLES: Role[] = ['source', 'sut', 'sink'];

/** A command line argument for the remote shell, quoted when it needs to be. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_/.,:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface SshTarget {
  /** Where to connect (a VM's external address). */
  address: string;
  port?: number;
  user: string;
  /** The private key (the run's own). */
  keyFile: string;
  /** The address the other roles reach this host at (a VM's internal address). */
  internalAddress: string;
}

export class SshError extends Error {
  override name = 'SshError';
}

/** One master connection to a host; every command, file and forward goes through it. */
export class SshConnection {
  private master: ChildProcess | null = null;
  private closed = false;
  readonly control: string;

  constructor(
    readonly role: Role,
    readonly target: SshTarget,
    controlDir: string,
    private readonly knownHosts: string,
  ) {
    this.control = join(controlDir, `${role}.sock`);
  }

  /** ssh's options and destination, before `--` and the remote command. */
  args(): string[] {
    const t = this.target;
    return [
      '-o', 'BatchMode=yes',
      '-o', 'StrictHostKeyChecking=accept-new',
      '-o', `UserKnownHostsFile=${this.knownHosts}`,
      '-o', 'ConnectTimeout=10',
      '-o', 'ServerAliveInterval=15',
      '-o', 'LogLevel=ERROR',
      '-o', `ControlPath=${this.control}`,
      '-i', t.keyFile,
      '-p', String(t.port ?? 22),
      '-l', t.user,
      t.address,
    ];
  }

  /** Opens the master connection, trying again until `timeoutMs` (a VM's sshd starts a while after the VM). */
  async open(timeoutMs = 30_000, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      if (signal?.aborted) throw new SshError('cancelled');
      const master = spawn('ssh', ['-M', '-N', '-o', 'ControlMaster=yes', '-o', 'ControlPersist=no', ...this.args()], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
      let stderr = '';
      master.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<void>((r) => master.once('exit', () => r()));
      master.once('error', (e) => (stderr += e.message));
      for (;;) {
        if (master.exitCode !== null || master.signalCode !== null) break;
        if (await this.check()) {
          if (this.closed) break;
          this.master = master;
          return;
        }
        if (Date.now() > deadline || signal?.aborted) break;
        await Promise.race([exited, new Promise((r) => setTimeout(r, 100))]);
      }
      try {
        master.kill('SIGKILL');
      } catch {
        /* gone */
      }
      last = stderr.trim().split('\n').pop() ?? '';
      if (signal?.aborted || this.closed) throw new SshError('cancelled');
      if (Date.now() > deadline) {
        throw new SshError(`ssh to the ${this.role} host (${this.target.user}@${this.target.address}:${this.target.port ?? 22}) failed: ${last || 'no answer'}`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  private check(): Promise<boolean> {
    return new Promise((resolve) => execFile('ssh', ['-O', 'check', ...this.args()], { timeout: 5000 }, (err) => resolve(err === null)));
  }

  /** Runs a shell command line on the host; resolves with its output, rejects with its stderr. */
  run(commandLine: string, opts: { input?: string; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const p = execFile('ssh', [...this.args(), '--', commandLine], { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        if (err) reject(Object.assign(err, { stderr }));
        else resolve({ stdout, stderr });
      });
      if (opts.input !== undefined) p.stdin!.end(opts.input);
      else p.stdin!.end();
    });
  }

  /** Forwards 127.0.0.1:localPort here to remoteHost:remotePort as seen from the host. */
  async forward(localPort: number, remoteHost: string, remotePort: number): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      execFile('ssh', ['-O', 'forward', '-L', `127.0.0.1:${localPort}:${remoteHost}:${remotePort}`, ...this.args()], { timeout: 10_000 }, (err, _o, stderr) =>
        err ? reject(new SshError(`ssh: forwarding to the ${this.role} host's port ${remotePort} failed: ${stderr.trim() || err.message}`)) : resolve(),
      ),
    );
  }

  /** Closes the master (and with it every forward). */
  async close(): Promise<void> {
    this.closed = true;
    const m = this.master;
    this.master = null;
    if (m === null || m.exitCode !== null) return;
    const exited = new Promise<void>((r) => m.once('exit', () => r()));
    m.kill('SIGTERM');
    const t = setTimeout(() => m.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  }
}

/** The processes started on one SSH host: each a process group of its own there, stopped by signalling the group. */
export class RemoteProcessSet extends ProcessSet {
  protected override readonly marksPid = true;

  constructor(private readonly conn: SshConnection) {
    super();
  }

  protected override launch(command: string, args: string[], opts: StartOptions): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } {
    // sshd runs the command line in a shell that is a session (and process group) leader; exec keeps its pid.
    const env = Object.entries(opts.env ?? {}).map(([k, v]) => shellQuote(`${k}=${v}`));
    const line = `echo "${PID_MARK} $$" && ${opts.cwd !== undefined ? `cd ${shellQuote(opts.cwd)} && ` : ''}exec ${env.length ? `env ${env.join(' ')} ` : ''}${[command, ...args].map(shellQuote).join(' ')}`;
    return { cmd: 'ssh', args: [...this.conn.args(), '--', line], env: process.env };
  }

  override exec(command: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
    return this.conn.run([command, ...args].map(shellQuote).join(' '), { timeoutMs: 30_000 });
  }

  private async signal(pid: number, sig: 'TERM' | 'KILL'): Promise<void> {
    await this.conn.run(`kill -${sig} -- -${pid} 2>/dev/null || kill -${sig} ${pid} 2>/dev/null || true`, { timeoutMs: 10_000 }).catch(() => undefined);
  }

  /** SIGTERM to its process group on the host, SIGKILL after `graceMs`; resolves once its SSH session ended. */
  override async stop(s: Started, graceMs = 5000): Promise<void> {
    const remote = s.pid !== s.proc.pid && s.pid > 0;
    if (s.proc.exitCode === null && s.proc.signalCode === null) {
      if (remote) await this.signal(s.pid, 'TERM');
      else s.proc.kill('SIGTERM');
      const t = setTimeout(() => {
        void (remote ? this.signal(s.pid, 'KILL') : Promise.resolve()).finally(() => {
          // The session outlives a host that does not answer: end it here.
          setTimeout(() => s.proc.kill('SIGKILL'), 3000).unref();
        });
      }, graceMs);
      await s.exited;
      clearTimeout(t);
    }
    this.running.delete(s);
  }
}

/** Source, system under test and sink on three SSH hosts. */
export class SshHost implements Host {
  readonly procs: RemoteProcessSet;
  readonly files: HostFiles;
  cores = 1;
  readonly sutAddress: string;
  readonly conns: Record<Role, SshConnection>;
  private readonly roleProcs: Record<'source' | 'sink', RemoteProcessSet>;
  private readonly localDir: string;
  private loadgenUrl: string | null = null;
  private remoteWorkDir: string | null = null;

  /**
   * @param cli how to run sluice on every host ([node, …/dist/cli.js], as installed there)
   */
  constructor(
    readonly name: string,
    targets: Record<Role, SshTarget>,
    readonly cli: string[],
  ) {
    // A short path: a unix socket's is limited to about 100 bytes.
    this.localDir = mkdtempSync(join(tmpdir(), 'sluice-ssh-'));
    const known = join(this.localDir, 'known_hosts');
    this.conns = { source: new SshConnection('source', targets.source, this.localDir, known), sut: new SshConnection('sut', targets.sut, this.localDir, known), sink: new SshConnection('sink', targets.sink, this.localDir, known) };
    this.procs = new RemoteProcessSet(this.conns.sut);
    this.roleProcs = { source: new RemoteProcessSet(this.conns.source), sink: new RemoteProcessSet(this.conns.sink) };
    this.sutAddress = targets.sut.internalAddress;
    const sut = this.conns.sut;
    this.files = {
      exists: (path) => sut.run(`test -e ${shellQuote(path)}`).then(() => true, () => false),
      read: (path) => sut.run(`cat ${shellQuote(path)}`).then((r) => r.stdout),
      write: async (path, text) => {
        await sut.run(`mkdir -p ${shellQuote(dirname(path))} && umask 077 && cat > ${shellQuote(path)}`, { input: text });
      },
      mkdir: async (path) => {
        await sut.run(`mkdir -p ${shellQuote(path)}`);
      },
    };
  }

  /** Connects to the three hosts (waiting up to `timeoutMs` for their sshd) and reads the system's cores. */
  async setup(timeoutMs = 30_000, signal?: AbortSignal): Promise<void> {
    await Promise.all(ROLES.map((r) => this.conns[r].open(timeoutMs, signal)));
    const { stdout } = await this.conns.sut.run('nproc');
    this.cores = Math.max(1, Number(stdout.trim()) || 1);
  }

  async workDir(): Promise<string> {
    if (this.remoteWorkDir === null) this.remoteWorkDir = (await this.conns.sut.run('mktemp -d /tmp/sluice-bench-XXXXXX')).stdout.trim();
    return this.remoteWorkDir;
  }

  async loadgen(): Promise<string> {
    if (this.loadgenUrl === null) {
      // On the source's loopback only: reached through the SSH connection, never from the network.
      const { port } = await startLoadgen(this.roleProcs.source, this.cli, '127.0.0.1');
      const local = await freeLocalPort();
      await this.conns.source.forward(local, '127.0.0.1', port);
      this.loadgenUrl = `http://127.0.0.1:${local}`;
    }
    return this.loadgenUrl;
  }

  sink(args: string[]): Promise<SinkHandle> {
    return startSink(this.roleProcs.sink, this.cli, this.conns.sink.target.internalAddress, args);
  }

  /** A port free on the system's address, picked on its host. */
  async freePort(): Promise<number> {
    const js = `const s=require('net').createServer().listen(0,${JSON.stringify(this.sutAddress)},()=>{console.log(s.address().port);s.close()})`;
    const { stdout } = await this.conns.sut.run(`${shellQuote(this.cli[0]!)} -e ${shellQuote(js)}`);
    const port = Number(stdout.trim());
    if (!(port > 0)) throw new SshError(`could not pick a free port on the system's host: ${stdout.trim()}`);
    return port;
  }

  /** The status of a GET of `url` from the source host (where the load comes from), or null when nothing answers. */
  async probe(url: string, timeoutMs = 2000): Promise<number | null> {
    const js = `fetch(process.argv[1],{signal:AbortSignal.timeout(${timeoutMs})}).then(async r=>{await r.arrayBuffer();console.log(r.status)},()=>console.log(0))`;
    try {
      const { stdout } = await this.conns.source.run(`${shellQuote(this.cli[0]!)} -e ${shellQuote(js)} ${shellQuote(url)}`, { timeoutMs: timeoutMs + 10_000 });
      const status = Number(stdout.trim());
      return status > 0 ? status : null;
    } catch {
      return null;
    }
  }

  /**
   * CPU and RSS of process trees on the system's host, read there every 100 ms by `sluice orchestrator sample`
   * (the same /proc accounting as locally): the window opens at the latest reading, without a round trip,
   * and closes at the first reading taken after the load ended.
   */
  async sampler(pids: number[]): Promise<Sampler> {
    type Reading = { cpuUs: number; rssKb: number };
    let latest: Reading | null = null;
    let cpu0 = NaN;
    let peak = 0;
    let open = false;
    let next: ((r: Reading) => void) | null = null;
    const watcher = await this.procs.start('sampler', this.cli[0]!, [...this.cli.slice(1), 'orchestrator', 'sample', '--pids', pids.join(','), '--interval-ms', '100'], {
      ready: jsonLine((m) => typeof m.rssKb === 'number'),
      onLine: (l) => {
        let r: Reading;
        try {
          r = JSON.parse(l) as Reading;
        } catch {
          return;
        }
        latest = r;
        if (open) peak = Math.max(peak, r.rssKb);
        const n = next;
        next = null;
        n?.(r);
      },
    });
    latest = watcher.ready as Reading;
    return {
      open: () => {
        open = true;
        cpu0 = latest!.cpuUs;
        peak = latest!.rssKb;
      },
      close: async () => {
        try {
          const last = await Promise.race([
            new Promise<Reading>((r) => (next = r)),
            watcher.exited.then(() => {
              throw new SshError("the sampler on the system's host stopped");
            }),
          ]);
          return { cpuUs: last.cpuUs - cpu0, peakRssKb: Math.max(peak, last.rssKb) };
        } finally {
          await this.procs.stop(watcher, 1000);
        }
      },
      cancel: () => this.procs.stop(watcher, 1000),
    };
  }

  /** The system-under-test host's CPU, memory, kernel and Node, read there. */
  async environment(): Promise<Environment> {
    const { stdout } = await this.conns.sut.run(
      `grep -m1 '^model name' /proc/cpuinfo; nproc; grep -m1 '^MemTotal' /proc/meminfo; uname -r; ${shellQuote(this.cli[0]!)} --version`,
    );
    const [model = '', cores = '', mem = '', kernel = '', node = ''] = stdout.trim().split('\n');
    return {
      cpuModel: model.replace(/^model name\s*:\s*/, '').trim() || 'unknown',
      cores: Math.max(1, Number(cores) || 1),
      memoryGiB: Math.round(Number(/(\d+)/.exec(mem)?.[1] ?? 0) / 2 ** 20),
      kernel: kernel.trim(),
      node: node.trim(),
      sluice: sluiceVersion(),
      provider: this.name,
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.procs.stopAll(), this.roleProcs.source.stopAll(), this.roleProcs.sink.stopAll()]).catch(() => undefined);
    if (this.remoteWorkDir !== null) {
      await this.conns.sut.run(`rm -rf ${shellQuote(this.remoteWorkDir)}`).catch(() => undefined);
      this.remoteWorkDir = null;
    }
    await Promise.all(ROLES.map((r) => this.conns[r].close()));
    this.loadgenUrl = null;
    rmSync(this.localDir, { recursive: true, force: true });
  }
}

