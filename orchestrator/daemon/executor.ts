// Runs the queue: one matrix run at a time, in the order they were submitted,
// through the same runner as `sluice bench`. Progress and each finished cell
// are written to the store as they happen, so a crash loses nothing that
// finished; a cancel aborts the run and stops every process it started.
import { EventEmitter } from 'node:events';
import { LocalHost } from '../providers/local.js';
import { NetnsHost } from '../providers/netns.js';
import type { Host } from '../providers/types.js';
import type { GcpOptions } from '../providers/gcp/host.js';
import { observeStartedProcesses, startTicks } from '../providers/processes.js';
import { compareResults, formatComparison } from '../report/compare.js';
import { reportHtml } from '../report/html.js';
import { formatTables } from '../report/tables.js';
import type { Results } from '../results.js';
import { plan, runMatrix, type PlannedUnit, type RunEvent } from '../runner.js';
import type { DaemonStore, RunProgress, RunRecord, RunStatus } from './store.js';

/** What the event stream of a run carries. */
export type DaemonEvent =
  | { type: 'status'; run: RunRecord }
  | { type: 'progress'; runId: string; progress: RunProgress; detail: { phase: string; rps: number; errors: number } | null }
  | { type: 'skip'; runId: string; system: string; scenario: string | null; reason: string }
  /** The runner's own event, as `sluice bench` prints it (the CLI's progress bar follows a daemon run with these). */
  | { type: 'runner'; runId: string; event: RunEvent };

export interface ExecutorOptions {
  peersDir: string;
  /** Where the three roles run (default: processes on loopback). */
  host?: () => Host;
  /** `provider: gcp` runs: allowed only when set (the operator agreed to their cost with --allow-gcp); the VMs' defaults. */
  gcp?: Partial<GcpOptions>;
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

/** Each system's throughput over Baseline's, averaged over the closed-loop scenarios both ran. */
export function throughputSummary(r: Results): Record<string, number> {
  const sums: Record<string, { sum: number; n: number }> = {};
  for (const s of r.matrix.scenarios) {
    if (s.sweep !== undefined || s.rate !== undefined) continue;
    const rps = (system: string): number | null => {
      const v = r.cells.filter((c) => c.scenario === s.name && c.system === system && c.result !== undefined).map((c) => c.result!.rps).sort((a, b) => a - b);
      return v.length === 0 ? null : v[Math.floor((v.length - 1) / 2)]!;
    };
    const base = rps('baseline');
    if (base === null || base <= 0) continue;
    for (const system of r.matrix.systems) {
      if (system === 'baseline') continue;
      const v = rps(system);
      if (v === null) continue;
      (sums[system] ??= { sum: 0, n: 0 }).sum += v / base;
      sums[system]!.n++;
    }
  }
  return Object.fromEntries(Object.entries(sums).map(([k, { sum, n }]) => [k, Math.round((sum / n) * 10000) / 10000]));
}

export class Executor extends EventEmitter<{ event: [DaemonEvent] }> {
  private current: { id: string; abort: AbortController; done: Promise<void> } | null = null;
  private stopped = false;
  private readonly log: NonNullable<ExecutorOptions['log']>;

  constructor(
    private readonly store: DaemonStore,
    private readonly opts: ExecutorOptions,
  ) {
    super();
    this.log = opts.log ?? (() => undefined);
  }

  get runningId(): string | null {
    return this.current?.id ?? null;
  }

  /** Starts the next queued run when none is running. */
  pump(): void {
    if (this.current !== null || this.stopped) return;
    const next = this.store.nextQueued();
    if (next === null) return;
    const abort = new AbortController();
    const entry = { id: next.id, abort, done: Promise.resolve() };
    this.current = entry;
    entry.done = this.execute(next, abort).then(
      () => undefined,
      (err: unknown) => this.log('error', 'run failed inside the daemon', { run: next.id, err: err instanceof Error ? err.message : String(err) }),
    ).finally(() => {
      this.current = null;
      setImmediate(() => this.pump());
    });
  }

  /** Cancels a queued or running run; returns the run, or null when it does not exist. */
  cancel(id: string): RunRecord | null {
    if (this.current?.id === id) {
      this.current.abort.abort();
      return this.store.run(id);
    }
    if (this.store.cancelQueued(id)) this.emitStatus(id);
    return this.store.run(id);
  }

  /** Stops the run under way (its processes too) and takes no more. */
  async stop(): Promise<void> {
    this.stopped = true;
    const c = this.current;
    if (c === null) return;
    c.abort.abort();
    await c.done;
  }

  private emitStatus(id: string): void {
    const run = this.store.run(id);
    if (run !== null) this.emit('event', { type: 'status', run });
  }

  private async execute(run: RunRecord, abort: AbortController): Promise<void> {
    if (!this.store.markRunning(run.id)) return;
    this.emitStatus(run.id);
    this.log('info', 'run started', { run: run.id, label: run.label });
    let host: Host;
    try {
      host = this.opts.host ? this.opts.host() : run.provider === 'netns' ? this.netnsHost() : run.provider === 'gcp' ? await this.gcpHost(run, abort.signal) : new LocalHost();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      // Cancelled while its VMs were being made (they are deleted by then): not a failure.
      const status = abort.signal.aborted ? (this.stopped ? 'interrupted' : 'canceled') : 'failed';
      this.store.finish(run.id, status, message);
      this.log(status === 'failed' ? 'error' : 'info', `run ${status}`, { run: run.id, err: message });
      this.emitStatus(run.id);
      return;
    }
    let units: PlannedUnit[] = plan(run.matrix);
    const totalSeconds = (): number => Math.max(1, units.reduce((s, u) => s + u.seconds, 0));
    let done = 0;
    let label: string | null = null;
    let unitStart = Date.now();
    let currentUnit = 0;
    const progress = (): RunProgress => {
      const before = units.slice(0, currentUnit).reduce((s, u) => s + u.seconds, 0);
      const inUnit = label === null ? 0 : Math.min(units[currentUnit]?.seconds ?? 0, (Date.now() - unitStart) / 1000);
      return { done, total: units.length, label, fraction: Math.min(1, (before + inUnit) / totalSeconds()) };
    };
    const onEvent = (e: RunEvent): void => {
      this.emit('event', { type: 'runner', runId: run.id, event: e });
      if (e.type === 'plan') units = e.units;
      else if (e.type === 'start') {
        currentUnit = e.unit;
        unitStart = Date.now();
        label = e.label;
        const p = progress();
        this.store.setProgress(run.id, p);
        this.emit('event', { type: 'progress', runId: run.id, progress: p, detail: null });
      } else if (e.type === 'done') {
        done = e.unit + 1;
        // The fraction counts the planned time of the cells finished, not the one that just ran.
        currentUnit = done;
        label = null;
        const p = progress();
        this.store.setProgress(run.id, p);
        this.emit('event', { type: 'progress', runId: run.id, progress: p, detail: null });
      } else if (e.type === 'progress') {
        this.emit('event', { type: 'progress', runId: run.id, progress: progress(), detail: { phase: e.progress.phase, rps: e.progress.rps, errors: e.progress.errors } });
      } else if (e.type === 'skip') {
        this.emit('event', { type: 'skip', runId: run.id, system: e.system, scenario: e.scenario, reason: e.reason });
      }
    };
    // Every process the run starts is recorded: should the daemon be killed, the next one stops them.
    observeStartedProcesses((pid) => {
      const ticks = startTicks(pid);
      if (ticks !== null) this.store.addProcess(run.id, pid, ticks);
    });
    let results: Results;
    try {
      results = await runMatrix({
        matrix: run.matrix,
        host,
        // On a VM, where site.yml put them.
        peersDir: host.name === 'gcp' ? (await import('../providers/gcp/host.js')).REMOTE_PEERS_DIR : this.opts.peersDir,
        onEvent,
        // Written as each cell finishes: a crash keeps them, marked as not finished.
        onRecorded: (r) => this.store.writeResults(run.id, { ...r, status: 'interrupted', error: 'the run had not finished when this file was written', finishedAt: new Date().toISOString() }),
        signal: abort.signal,
      });
    } catch (err) {
      // The runner records a failing cell itself; this is a failure before any (the load generator would not start).
      const message = err instanceof Error ? err.message : String(err);
      this.store.finish(run.id, abort.signal.aborted ? 'canceled' : 'failed', message);
      this.log('error', 'run failed', { run: run.id, err: message });
      this.emitStatus(run.id);
      return;
    } finally {
      await host.close();
      observeStartedProcesses(null);
      this.store.takeProcesses(run.id);
    }
    if (this.stopped && results.status === 'canceled') {
      // The daemon is stopping, not the user cancelling: the run was cut off.
      results.status = 'interrupted';
      results.error = 'the daemon stopped during the run; the cells it finished are kept';
    }
    this.store.writeResults(run.id, results);
    this.store.writeFile(run.id, 'tables.md', formatTables(results));
    this.store.writeFile(run.id, 'report.html', reportHtml(results));
    this.store.setSummary(run.id, throughputSummary(results));
    const status: RunStatus = results.status;
    if (status === 'completed' && run.scheduleId !== null) this.compareWithPrevious(run, results);
    this.store.finish(run.id, status, results.error ?? null);
    this.store.setProgress(run.id, { ...progress(), done, label: null, fraction: status === 'completed' ? 1 : progress().fraction });
    this.log('info', 'run finished', { run: run.id, status });
    this.emitStatus(run.id);
  }

  /** The run's three VMs, created and provisioned (deleted by host.close(), or here when that fails). */
  private async gcpHost(run: RunRecord, signal: AbortSignal): Promise<Host> {
    const { DEFAULTS, GcpHost } = await import('../providers/gcp/host.js');
    const g = this.opts.gcp;
    if (g === undefined) throw new Error('gcp runs are not allowed by this daemon (sluice orchestrator serve --allow-gcp)');
    const m = run.matrix.gcp ?? {};
    const project = m.project ?? g.project;
    if (project === undefined) throw new Error('no GCP project: set gcp.project in the matrix or start the daemon with --gcp-project');
    const opts: GcpOptions = {
      zone: DEFAULTS.zone,
      machineType: DEFAULTS.machineType,
      image: DEFAULTS.image,
      network: DEFAULTS.network,
      onGce: false,
      keep: false,
      ...g,
      ...(m.zone !== undefined ? { zone: m.zone } : {}),
      ...(m.machine_type !== undefined ? { machineType: m.machine_type } : {}),
      ...(m.image !== undefined ? { image: m.image } : {}),
      ...(m.network !== undefined ? { network: m.network } : {}),
      project,
      // --allow-gcp was the operator's yes.
      yes: true,
      signal,
      log: (line) => this.log('info', line, { run: run.id }),
    };
    return GcpHost.create(opts, run.matrix, plan(run.matrix).reduce((s, u) => s + u.seconds, 0));
  }

  private netnsHost(): Host {
    const h = new NetnsHost({ log: (line) => this.log('info', line) });
    h.setup();
    return h;
  }

  /** A scheduled run against the schedule's previous completed run: regressions are flagged on it and counted. */
  private compareWithPrevious(run: RunRecord, results: Results): void {
    const prev = this.store.previousOfSchedule(run.scheduleId!, run.seq);
    if (prev === null) return;
    const base = this.store.readResults(prev.id);
    if (base === null) return;
    const c = compareResults(base, results);
    this.store.writeFile(run.id, 'compare.md', formatComparison(c));
    this.store.setComparison(run.id, prev.id, c.regressions);
    if (c.regressions > 0) this.log('warn', 'regression against the previous run of the schedule', { run: run.id, base: prev.id, schedule: run.scheduleId, regressions: c.regressions });
  }
}
