// Child processes and /proc accounting for the benchmarks.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';

const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux x86_64

/** Spawns a command and resolves once `isReady(line)` accepts a stdout line. */
export function spawnReady(cmd, args, isReady, opts = {}) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], ...opts });
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

function descendants(pid) {
  const all = [pid];
  for (let i = 0; i < all.length; i++) {
    let children = '';
    try {
      children = readFileSync(`/proc/${all[i]}/task/${all[i]}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const c of children.trim().split(/\s+/)) if (c) all.push(Number(c));
  }
  return all;
}

/** utime+stime in microseconds of a process and all its descendants. */
export function cpuMicros(pid) {
  let ticks = 0;
  for (const p of descendants(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    } catch {
      /* exited */
    }
  }
  return (ticks * 1e6) / CLK_TCK;
}

/** Sum of VmRSS (kB) over a process tree. */
export function rssKb(pid) {
  let kb = 0;
  for (const p of descendants(pid)) {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      /* exited */
    }
  }
  return kb;
}

/** Samples rssKb every `ms` until stop() is called; returns the peak. */
export function watchPeakRss(pid, ms = 100) {
  let peak = rssKb(pid);
  const timer = setInterval(() => (peak = Math.max(peak, rssKb(pid))), ms);
  return () => {
    clearInterval(timer);
    return Math.max(peak, rssKb(pid));
  };
}

export async function stop(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.on('exit', r));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

export { readdirSync };
