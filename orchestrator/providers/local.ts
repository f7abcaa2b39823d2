// Provider `local`: source, system under test and sink as separate processes
// on loopback.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { jsonLine, ProcessSet, type Started } from './processes.js';
import type { Host, SinkHandle } from './types.js';

const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url));

export class LocalHost implements Host {
  readonly name = 'local';
  readonly cli = [process.execPath, CLI];
  readonly procs = new ProcessSet();
  readonly cores = availableParallelism();
  readonly sutAddress = '127.0.0.1';
  private loadgenProc: Started | null = null;

  async loadgen(): Promise<string> {
    if (this.loadgenProc === null) {
      this.loadgenProc = await this.procs.start('loadgen', process.execPath, [CLI, 'loadgen', 'serve', '--host', '127.0.0.1', '--port', '0'], {
        ready: jsonLine((m) => m.msg === 'loadgen listening'),
      });
    }
    return `http://127.0.0.1:${(this.loadgenProc.ready as { port: number }).port}`;
  }

  async sink(args: string[]): Promise<SinkHandle> {
    const p = await this.procs.start('sink', process.execPath, [CLI, 'sink', '--host', '127.0.0.1', '--port', '0', ...args], {
      ready: jsonLine((m) => m.msg === 'sink listening'),
    });
    const port = (p.ready as { port: number }).port;
    return {
      endpoint: { url: `http://127.0.0.1:${port}/v1`, origin: `http://127.0.0.1:${port}`, host: '127.0.0.1', port },
      stop: () => this.procs.stop(p),
    };
  }

  async close(): Promise<void> {
    await this.procs.stopAll();
    this.loadgenProc = null;
  }
}
