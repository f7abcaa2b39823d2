// What a result was measured on: the machine, the kernel, Node, sluice.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, release, totalmem } from 'node:os';

export interface Environment {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  sluice: string;
  provider: string;
  /** The hosts of a remote run (gcp: machine type, zone, image); the fields above are the system-under-test host's. */
  hosts?: string;
}

let version: string | null = null;

/** The package version, with the git commit when run from a checkout. */
export function sluiceVersion(): string {
  if (version !== null) return version;
  const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
  version = pkg.version;
  try {
    const root = new URL('../..', import.meta.url).pathname;
    const commit = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execFileSync('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() !== '';
    if (commit) version += ` (${commit}${dirty ? '+' : ''})`;
  } catch {
    /* not a checkout */
  }
  return version;
}

export function environment(provider: string): Environment {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1]!.trim();
  } catch {
    /* not Linux */
  }
  return {
    cpuModel,
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    sluice: sluiceVersion(),
    provider,
  };
}
