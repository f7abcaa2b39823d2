// /proc accounting of process trees: CPU time (utime + stime) and resident
// memory, summed over a process and all its descendants. Used by the
// benchmarks (bench/) and by `sluice bench` for every cell.
import { readFileSync } from 'node:fs';

/** sysconf(_SC_CLK_TCK) on Linux (x86_64 and arm64). */
const CLK_TCK = 100;

/** `pid` and every descendant, from /proc/<pid>/task/<pid>/children. */
export function descendants(pid: number): number[] {
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

/** utime + stime in microseconds of a process tree (processes that exited are not counted). */
export function cpuMicros(pid: number): number {
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
export function rssKb(pid: number): number {
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

/** Samples rssKb every `ms` until the returned function is called; it returns the peak (kB). */
export function watchPeakRss(pid: number, ms = 100): () => number {
  let peak = rssKb(pid);
  const timer = setInterval(() => (peak = Math.max(peak, rssKb(pid))), ms);
  timer.unref();
  return () => {
    clearInterval(timer);
    return Math.max(peak, rssKb(pid));
  };
}

/** Whether a process is alive and not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
