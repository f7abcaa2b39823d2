// The apparatus's two roles as every provider starts them, on the ProcessSet of
// the host they belong to: the load generator's REST API and a scenario's sink.
import { jsonLine, type ProcessSet, type Started } from './processes.js';
import type { SinkHandle } from './types.js';

/** `sluice loadgen serve` listening on `host` (port chosen by it); returns the process and its port. */
export async function startLoadgen(procs: ProcessSet, cli: string[], host: string): Promise<{ proc: Started; port: number }> {
  const proc = await procs.start('loadgen', cli[0]!, [...cli.slice(1), 'loadgen', 'serve', '--host', host, '--port', '0'], {
    ready: jsonLine((m) => m.msg === 'loadgen listening'),
  });
  return { proc, port: (proc.ready as { port: number }).port };
}

/** `sluice sink` with a scenario's flags, listening on `host` (port chosen by it). */
export async function startSink(procs: ProcessSet, cli: string[], host: string, args: string[]): Promise<SinkHandle> {
  const p = await procs.start('sink', cli[0]!, [...cli.slice(1), 'sink', '--host', host, '--port', '0', ...args], {
    ready: jsonLine((m) => m.msg === 'sink listening'),
  });
  const port = (p.ready as { port: number }).port;
  return {
    endpoint: { url: `http://${host}:${port}/v1`, origin: `http://${host}:${port}`, host, port },
    stop: () => procs.stop(p),
  };
}
