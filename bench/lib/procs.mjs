// Child processes for the benchmarks. The /proc accounting is the one
// `sluice bench` uses (common/procs.ts, built into dist/).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export { cpuMicros, rssKb, watchPeakRss } from '../../dist/common/procs.js';

// Every child a benchmark starts is stopped when the benchmark ends, however it ends (done, a
// thrown error, Ctrl-C): a failed run must not leave a sink, a gateway, nginx or Redis behind.
const children = new Set();

/** Registers a child for the cleanup at exit; `group`: it was spawned detached, stop its whole process group. */
export function track(proc, group = false) {
  const entry = { proc, group };
  children.add(entry);
  proc.once('exit', () => children.delete(entry));
  return proc;
}

function killAll() {
  for (const { proc, group } of children) {
    try {
      if (group) process.kill(-proc.pid, 'SIGKILL');
      else proc.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  children.clear();
}
process.once('exit', killAll);
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
  process.once(sig, () => {
    killAll();
    process.exit(code);
  });
}

/** Spawns a command and resolves once `isReady(line)` accepts a stdout line. */
export function spawnReady(cmd, args, isReady, opts = {}) {
  const proc = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], ...opts }));
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout });
    let done = false;
    rl.on('line', (line) => {
      if (done) return;
      const r = isReady(line);
      if (r) {
        done = true;
        resolve({ proc, ready: r });
      }
    });
    proc.on('exit', (code) => {
      if (!done) reject(new Error(`${cmd} ${args.join(' ')} exited ${code} before it was ready`));
    });
  });
}

/** For a `sluice ...` child that prints a JSON line with `port`. */
export const jsonPort = (line) => {
  try {
    const m = JSON.parse(line);
    return typeof m.port === 'number' ? m : null;
  } catch {
    return null;
  }
};

export async function stop(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.on('exit', r));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

