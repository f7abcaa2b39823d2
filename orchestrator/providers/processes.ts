// The processes a run starts, each in a process group of its own, so that
// stopping one stops everything it forked (nginx's workers, a custom
// system's shell and its children) and nothing is left behind on success,
// failure or Ctrl-C.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { alive, descendants } from '../../common/procs.js';

export interface StartOptions {
  /** Variables added to the host's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Resolves the start once a stdout line passes (its value is returned); absent: started at once. */
  ready?: (line: string) => unknown;
  /** How long to wait for `ready` (ms). */
  readyTimeoutMs?: number;
  /** Told of every stdout line after `ready` (a sampler's readings). */
  onLine?: (line: string) => void;
}

export interface Started {
  name: string;
  proc: ChildProcess;
  pid: number;
  ready: unknown;
  /** The last lines it wrote (stdout and stderr), for error messages. */
  output(): string;
  exited: Promise<number | string>;
}

const KEEP_LINES = 40;

export class ProcessError extends Error {
  override name = 'ProcessError';
}

/** Told of every process a ProcessSet starts (the daemon records them, to stop them after a crash). */
let observer: ((pid: number) => void) | null = null;

/** Sets (or clears, with null) the one observer of started processes. */
export function observeStartedProcesses(fn: ((pid: number) => void) | null): void {
  observer = fn;
}

/** When a process started, in clock ticks since boot (/proc/PID/stat field 22): a pid reused later has another. */
export function startTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return null;
  }
}

/** How a provider runs a command on its host (a netns host: `ip netns exec NS taskset -c CPUS cmd args`). */
export type CommandWrapper = (cmd: string, args: string[]) => [string, string[]];

/** The first stdout line of a process started through SSH: its pid on the remote host (see ./ssh.ts). */
export const PID_MARK = 'sluice-remote-pid';

export class ProcessSet {
  protected readonly running = new Set<Started>();
  /** Whether the command's first stdout line is `PID_MARK <pid>`, the pid on its host (remote hosts). */
  protected readonly marksPid: boolean = false;

  constructor(private readonly wrap?: CommandWrapper) {}

  /** The local command that runs `command args` on this host, with its environment and folder. */
  protected launch(command: string, commandArgs: string[], opts: StartOptions): { cmd: string; args: string[]; env: NodeJS.ProcessEnv; cwd?: string } {
    // The wrappers exec the command (ip netns exec, taskset): the pid is the command's own.
    const [cmd, args] = this.wrap ? this.wrap(command, commandArgs) : [command, commandArgs];
    return { cmd, args, env: opts.env ? { ...process.env, ...opts.env } : process.env, ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}) };
  }

  /** Runs a short command on this host to its end (as start() would run it); rejects with its stderr when it fails. */
  exec(command: string, commandArgs: string[]): Promise<{ stdout: string; stderr: string }> {
    const [cmd, args] = this.wrap ? this.wrap(command, commandArgs) : [command, commandArgs];
    return new Promise((resolve, reject) => {
      execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
        if (err) reject(Object.assign(err, { stderr }));
        else resolve({ stdout, stderr });
      });
    });
  }

  /** Starts `cmd args` in its own process group and waits for it to be ready. */
  async start(name: string, command: string, commandArgs: string[], opts: StartOptions = {}): Promise<Started> {
    const { cmd, args, env, cwd } = this.launch(command, commandArgs, opts);
    const proc = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const lines: string[] = [];
    const keep = (l: string): void => {
      lines.push(l);
      if (lines.length > KEEP_LINES) lines.shift();
    };
    const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
    const spawnError = new Promise<Error>((resolve) => proc.once('error', resolve));
    const s: Started = { name, proc, pid: proc.pid ?? -1, ready: true, output: () => lines.join('\n'), exited };
    if (proc.pid !== undefined) {
      this.running.add(s);
      observer?.(proc.pid);
    }
    void exited.then(() => this.running.delete(s));
    const err = createInterface({ input: proc.stderr! });
    err.on('line', keep);
    const out = createInterface({ input: proc.stdout! });
    let onLine: ((l: string) => void) | null = null;
    let awaitingPid = this.marksPid;
    let pidKnown: () => void = () => undefined;
    const pidRead = new Promise<void>((r) => (pidKnown = r));
    out.on('line', (l) => {
      if (awaitingPid) {
        const m = new RegExp(`^${PID_MARK} (\\d+)$`).exec(l);
        if (m) {
          s.pid = Number(m[1]);
          awaitingPid = false;
          pidKnown();
          return;
        }
      }
      if (onLine) onLine(l);
      else {
        keep(l);
        opts.onLine?.(l);
      }
    });
    const ready = opts.ready;
    if (ready === undefined) {
      const failed = await Promise.race([
        spawnError,
        exited.then((code) => new ProcessError(`${name} exited (${code}) as it started${lines.length ? `: ${lines.slice(-3).join(' | ')}` : ''}`)),
        this.marksPid ? pidRead.then(() => null) : new Promise<null>((r) => setImmediate(() => r(null))),
      ]);
      if (failed instanceof ProcessError) throw failed;
      if (failed) throw new ProcessError(`${name}: could not start ${cmd}: ${failed.message}`);
      return s;
    }
    const timeoutMs = opts.readyTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      s.ready = await Promise.race([
        new Promise<unknown>((resolve) => {
          onLine = (l) => {
            keep(l);
            let v: unknown;
            try {
              v = ready(l);
            } catch {
              v = undefined;
            }
            if (v !== undefined && v !== null && v !== false) {
              onLine = null;
              resolve(v);
            }
          };
        }),
        exited.then((code) => {
          throw new ProcessError(`${name} exited (${code}) before it was ready${lines.length ? `: ${lines.slice(-3).join(' | ')}` : ''}`);
        }),
        spawnError.then((e) => {
          throw new ProcessError(`${name}: could not start ${cmd}: ${e.message}`);
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new ProcessError(`${name} was not ready within ${timeoutMs / 1000} s`)), timeoutMs);
        }),
      ]);
    } catch (e) {
      await this.stop(s);
      throw e;
    } finally {
      clearTimeout(timer);
    }
    // Keep reading its output (a full pipe would block it); the lines are kept for errors only.
    onLine = null;
    return s;
  }

  /** SIGTERM to its process group, SIGKILL after `graceMs`; resolves once the whole tree is gone. */
  async stop(s: Started, graceMs = 5000): Promise<void> {
    const tree = s.pid > 0 ? descendants(s.pid) : [];
    const signal = (sig: NodeJS.Signals): void => {
      try {
        process.kill(-s.pid, sig);
      } catch {
        /* the group is gone */
      }
      // A child that left the group (setsid) is still ours: signal it by pid.
      for (const p of tree) {
        try {
          process.kill(p, sig);
        } catch {
          /* exited */
        }
      }
    };
    if (s.proc.exitCode === null && s.proc.signalCode === null) {
      signal('SIGTERM');
      const t = setTimeout(() => signal('SIGKILL'), graceMs);
      await s.exited;
      clearTimeout(t);
    }
    // The leader is gone; its group may not be (nginx workers, a shell's children).
    const deadline = Date.now() + graceMs;
    while (tree.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (tree.some(alive)) {
      signal('SIGKILL');
      while (tree.some(alive)) await new Promise((r) => setTimeout(r, 20));
    }
    this.running.delete(s);
  }

  /** Stops every process still running, all at once. */
  async stopAll(graceMs = 5000): Promise<void> {
    await Promise.all([...this.running].map((s) => this.stop(s, graceMs)));
  }

  get size(): number {
    return this.running.size;
  }
}

/** For `sluice …` children, whose first stdout line is JSON with `port`. */
export function jsonLine(match: (m: Record<string, unknown>) => boolean = (m) => typeof m.port === 'number'): (line: string) => Record<string, unknown> | null {
  return (line) => {
    try {
      const m = JSON.parse(line) as Record<string, unknown>;
      return match(m) ? m : null;
    } catch {
      return null;
    }
  };
}
