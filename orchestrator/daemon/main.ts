// The daemon process: the store, the queue, the schedules and the server;
// SIGTERM/SIGINT stop the run under way (marked interrupted, its finished
// cells kept; it is not started again) and exit 0.
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { createLogger, flushLogs } from '../../common/logger.js';
import { defaultPeersDir } from '../peers.js';
import { Executor, type ExecutorOptions } from './executor.js';
import { Scheduler } from './scheduler.js';
import { DaemonServer } from './server.js';
import { DaemonStore } from './store.js';
import { startTicks } from '../providers/processes.js';
import type { ServeOptions } from './command.js';

/** Whether an address only this machine can reach was given. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

export async function serve(o: ServeOptions, usage: (msg: string) => never): Promise<void> {
  let token: string | undefined;
  if (o.tokenEnv !== undefined) {
    token = process.env[o.tokenEnv];
    if (!token) usage(`--token-env: environment variable ${o.tokenEnv} is not set`);
  } else if (!isLoopback(o.host)) {
    usage(`--token-env: required with --host ${o.host}: beyond loopback the daemon serves only requests with a bearer token`);
  }
  const logger = createLogger('info', { component: 'orchestrator' });
  const log = (level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void => logger[level](fields, msg);
  const dataDir = resolve(o.data ?? resolve(process.env.SLUICE_DATA_DIR ?? 'data', 'orchestrator'));
  let store: DaemonStore;
  try {
    store = new DaemonStore(dataDir);
  } catch (err) {
    usage(`--data: cannot open the history in ${dataDir}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const interrupted = store.recover();
  for (const id of interrupted) log('warn', 'run interrupted by a restart; its finished cells are kept', { run: id });
  // What a killed daemon's run left running (each in a process group of its own): stopped now.
  const left = store.takeProcesses().filter((p) => startTicks(p.pid) === p.startTicks);
  for (const p of left) {
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  if (left.length > 0) log('warn', 'stopped the processes an interrupted run left', { pids: left.map((p) => p.pid) });
  const gcpProject = o.gcpProject ?? (process.env.GOOGLE_CLOUD_PROJECT || undefined);
  let gcp: ExecutorOptions['gcp'];
  if (o.allowGcp) {
    // Credentials at start, not at the first run: none is one line and exit 2.
    const { GcpUnavailable, prepareCredentials } = await import('../providers/gcp/credentials.js');
    try {
      prepareCredentials({ onGce: o.onGce });
    } catch (err) {
      if (err instanceof GcpUnavailable) usage(err.message.replace('--provider gcp', '--allow-gcp'));
      throw err;
    }
    gcp = { onGce: o.onGce, ...(gcpProject ? { project: gcpProject } : {}), ...(o.gcpZone ? { zone: o.gcpZone } : {}), ...(o.gcpMachineType ? { machineType: o.gcpMachineType } : {}) };
  } else if (o.gcpProject !== undefined || o.gcpZone !== undefined || o.gcpMachineType !== undefined || o.onGce) {
    usage(`--${o.gcpProject !== undefined ? 'gcp-project' : o.gcpZone !== undefined ? 'gcp-zone' : o.gcpMachineType !== undefined ? 'gcp-machine-type' : 'on-gce'} needs --allow-gcp`);
  }
  const executor = new Executor(store, { peersDir: resolve(o.peersDir ?? defaultPeersDir()), log, ...(gcp ? { gcp } : {}) });
  const scheduler = new Scheduler(store, () => executor.pump());
  const server = new DaemonServer(store, executor, scheduler, { token, allowCommands: o.allowCommands, allowGcp: o.allowGcp, ...(gcpProject ? { gcpProject } : {}), log });
  let bound: number;
  try {
    bound = await server.listen(o.port, o.host);
  } catch (err) {
    process.stderr.write(`error: cannot listen on ${o.host}:${o.port}: ${(err as NodeJS.ErrnoException).code ?? String(err)}\n`);
    process.exit(1);
  }
  scheduler.loadAll();
  executor.pump();
  log('info', 'orchestrator listening', { host: o.host, port: bound, data: dataDir, queued: store.queuedCount() });
  flushLogs();
  process.stdout.write(JSON.stringify({ msg: 'orchestrator listening', host: o.host, port: bound }) + '\n');
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    scheduler.stop();
    await executor.stop();
    await server.close();
    store.close();
    log('info', 'orchestrator stopped');
    flushLogs();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}
