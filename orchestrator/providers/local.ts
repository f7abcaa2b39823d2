// Provider `local`: source, system under test and sink as separate processes
// on loopback. The helpers below (files, ports, probes, /proc sampling of this
// machine) serve the netns provider too: its roles share this machine.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { cpuMicros, watchPeakRss } from '../../common/procs.js';
import { ProcessSet } from './processes.js';
import { startLoadgen, startSink } from './roles.js';
import type { Host, HostFiles, SinkHandle, Sampler } from './types.js';

const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url));

/** A free TCP port on this machine (for servers that cannot report the one they bound). */
export function freeLocalPort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Files on this machine. */
export const localFiles: HostFiles = {
  exists: async (path) => existsSync(path),
  read: (path) => readFile(path, 'utf8'),
  write: async (path, text) => {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, text, { mode: 0o600 });
  },
  mkdir: async (path) => {
    await mkdir(path, { recursive: true });
  },
};

/** The status of a GET from this machine, or null when nothing answers. */
export async function localProbe(url: string, timeoutMs = 2000): Promise<number | null> {
  try {
    const r = await request(url, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    await r.body.dump();
    return r.statusCode;
  } catch {
    return null;
  }
}

/** Process trees on this machine, read in this process from /proc. */
export async function localSampler(pids: number[]): Promise<Sampler> {
  const cpu = (): number => pids.reduce((sum, p) => sum + cpuMicros(p), 0);
  let cpu0 = NaN;
  let peaks: Array<() => number> = [];
  return {
    open: () => {
      cpu0 = cpu();
      peaks = pids.map((p) => watchPeakRss(p));
    },
    close: async () => ({ cpuUs: cpu() - cpu0, peakRssKb: peaks.reduce((s, f) => s + f(), 0) }),
    cancel: async () => {
      for (const f of peaks) f();
    },
  };
}

/** A scratch folder on this machine, made on first use and removed by `remove`. */
export class LocalWorkDir {
  private dir: string | null = null;
  constructor(private readonly prefix: string) {}
  async get(): Promise<string> {
    this.dir ??= await mkdtemp(join(tmpdir(), this.prefix));
    return this.dir;
  }
  async remove(): Promise<void> {
    if (this.dir !== null) await rm(this.dir, { recursive: true, force: true });
    this.dir = null;
  }
}

export class LocalHost implements Host {
  readonly name = 'local';
  readonly cli = [process.execPath, CLI];
  readonly procs = new ProcessSet();
  readonly files = localFiles;
  readonly cores = availableParallelism();
  readonly sutAddress = '127.0.0.1';
  private loadgenPort: number | null = null;
  private readonly scratch = new LocalWorkDir('sluice-bench-');

  workDir(): Promise<string> {
    return this.scratch.get();
  }

  freePort(): Promise<number> {
    return freeLocalPort(this.sutAddress);
  }

  probe(url: string, timeoutMs?: number): Promise<number | null> {
    return localProbe(url, timeoutMs);
  }

  sampler(pids: number[]): Promise<Sampler> {
    return localSampler(pids);
  }

  async loadgen(): Promise<string> {
    this.loadgenPort ??= (await startLoadgen(this.procs, this.cli, '127.0.0.1')).port;
    return `http://127.0.0.1:${this.loadgenPort}`;
  }

  sink(args: string[]): Promise<SinkHandle> {
    return startSink(this.procs, this.cli, '127.0.0.1', args);
  }

  async close(): Promise<void> {
    await this.procs.stopAll();
    this.loadgenPort = null;
    await this.scratch.remove();
  }
}
