// scenario × system × repetition: a fresh sink per scenario (its flags carry
// the scenario's wait and streaming timing: a peer may drop headers it does
// not know), the system started in front of it, the load driven through the
// load generator's REST API, the system's process tree sampled over the
// measured window. One code path for every provider.
import { join } from 'node:path';
import type { LoadgenResult } from '../loadgen/result.js';
import type { Progress } from '../loadgen/run.js';
import { LoadgenClient, LoadgenError, type LoadSpec } from './loadgen-client.js';
import { sinkLatencyMs, theoreticalRps } from './matrix/default.js';
import type { Matrix, Scenario } from './matrix/types.js';
import type { Host } from './providers/types.js';
import type { Results, SweepResult, SweepStep, SystemInfo } from './results.js';
import { environment } from './environment.js';
import { keptUp, servedRate } from './report/capacity.js';
import { systemModule } from './systems/index.js';
import type { RunningSystem, SinkEndpoint, SystemContext } from './systems/types.js';

/** Seconds a system takes to start and stop, for the ETA. */
const START_S = 2;

export interface PlannedUnit {
  scenario: string;
  system: string;
  /** Repetition (cells) or -1 (a whole sweep). */
  repetition: number;
  /** Estimated seconds. */
  seconds: number;
}

export type RunEvent =
  | { type: 'plan'; units: PlannedUnit[] }
  | { type: 'start'; unit: number; label: string }
  | { type: 'progress'; unit: number; label: string; progress: Progress }
  | { type: 'done'; unit: number; label: string }
  | { type: 'skip'; system: string; scenario: string | null; reason: string };

export interface RunOptions {
  matrix: Matrix;
  host: Host;
  /** Where peers (Portkey …) are installed on the system's host. */
  peersDir: string;
  onEvent?: (e: RunEvent) => void;
  /** Called with the results so far each time a cell or sweep is recorded (the daemon persists them). */
  onRecorded?: (r: Results) => void;
  signal?: AbortSignal;
}

export class Canceled extends Error {
  override name = 'Canceled';
}

function cellSeconds(m: Matrix, s: Scenario): number {
  if (s.sweep) return s.sweep.rates.length * (s.sweep.step_s + 0.5) + Math.min(2, s.sweep.step_s) + START_S;
  const warm = s.warmup_s ?? m.warmup_s;
  const run = s.duration_s ?? (s.requests !== undefined ? s.requests / Math.max(1, theoreticalRps(s)) : 10);
  return warm + run + 0.5;
}

export function plan(m: Matrix): PlannedUnit[] {
  const units: PlannedUnit[] = [];
  for (const s of m.scenarios) {
    for (const system of m.systems) {
      if (s.sweep) units.push({ scenario: s.name, system, repetition: -1, seconds: cellSeconds(m, s) });
      else for (let r = 0; r < m.repetitions; r++) units.push({ scenario: s.name, system, repetition: r, seconds: cellSeconds(m, s) + (r === 0 ? START_S : 0) });
    }
  }
  return units;
}

/** The load-generator spec of a closed- or open-loop cell. */
function loadSpec(m: Matrix, s: Scenario, sys: RunningSystem): LoadSpec {
  const spec: LoadSpec = {
    url: sys.url,
    model: m.model,
    workers: s.workers,
    requestBytes: s.request_bytes,
    stream: s.stream !== undefined,
    arrival: s.arrival,
    warmupS: s.rate !== undefined ? 0 : (s.warmup_s ?? m.warmup_s),
    headers: sys.headers,
    // Far above any latency a scenario expects: a request that takes this long failed.
    timeoutS: Math.max(30, (sinkLatencyMs(s) / 1000) * 10),
  };
  if (sys.key !== undefined) spec.key = sys.key;
  if (s.rate !== undefined) spec.rate = s.rate;
  if (s.requests !== undefined) spec.requests = s.requests;
  else spec.durationS = s.duration_s ?? 10;
  return spec;
}

/** The sink's flags for a scenario. */
function sinkArgs(s: Scenario): string[] {
  const a = ['--wait-ms', String(s.wait_ms)];
  if (s.stream) a.push('--ttft-ms', String(s.stream.ttft_ms), '--itl-ms', String(s.stream.itl_ms), '--output-tokens', String(s.stream.output_tokens));
  return a;
}

export async function runMatrix(opts: RunOptions): Promise<Results> {
  const { matrix: m, host, signal } = opts;
  const emit = opts.onEvent ?? (() => undefined);
  const recorded = (): void => opts.onRecorded?.(results);
  const units = plan(m);
  emit({ type: 'plan', units });
  const results: Results = {
    object: 'sluice.bench.results',
    version: 1,
    startedAt: new Date().toISOString(),
    finishedAt: '',
    status: 'completed',
    matrix: m,
    environment: host.environment ? await host.environment().catch(() => environment(host.name)) : environment(host.name),
    systems: Object.fromEntries(m.systems.map((s) => [s, {} as SystemInfo])),
    cells: [],
    sweeps: [],
  };
  const check = (): void => {
    if (signal?.aborted) throw new Canceled('the run was cancelled');
  };
  let unit = 0;
  const loadgen = new LoadgenClient(await host.loadgen());
  const workDir = await host.workDir();
  try {
    for (const s of m.scenarios) {
      check();
      const sink = await host.sink(sinkArgs(s));
      try {
        const baselineP99 = new Map<number, number>();
        for (const name of m.systems) {
          check();
          const mod = systemModule(name, m);
          const dir = join(workDir, s.name, name);
          await host.files.mkdir(dir);
          const ctx: SystemContext = {
            sink: sink.endpoint,
            dir,
            cli: host.cli,
            procs: host.procs,
            files: host.files,
            freePort: () => host.freePort(),
            probe: (url, timeoutMs) => host.probe(url, timeoutMs),
            cores: host.cores,
            peersDir: opts.peersDir,
            model: m.model,
            host: host.sutAddress,
          };
          const count = s.sweep ? 1 : m.repetitions;
          const skip = (reason: string): void => {
            emit({ type: 'skip', system: name, scenario: s.name, reason });
            const info = results.systems[name]!;
            info.skipped ??= reason;
            if (s.sweep) results.sweeps.push({ scenario: s.name, system: name, steps: [], skipped: reason });
            else for (let r = 0; r < count; r++) results.cells.push({ scenario: s.name, system: name, repetition: r, skipped: reason });
            unit += count;
            recorded();
          };
          const why = await mod.unavailable(ctx);
          if (why !== null) {
            skip(why);
            continue;
          }
          let sys: RunningSystem;
          try {
            sys = await mod.start(ctx);
          } catch (err) {
            check();
            skip(`could not start: ${err instanceof Error ? err.message : String(err)}`);
            continue;
          }
          results.systems[name]!.version = sys.version;
          try {
            if (s.sweep) {
              const label = `${s.name} · ${name} · sweep`;
              emit({ type: 'start', unit, label });
              results.sweeps.push(await sweep(host, loadgen, m, s, name, sys, baselineP99, (p) => emit({ type: 'progress', unit, label, progress: p }), signal));
              recorded();
              emit({ type: 'done', unit, label });
              unit++;
            } else {
              for (let r = 0; r < m.repetitions; r++) {
                check();
                const label = `${s.name} · ${name}${m.repetitions > 1 ? ` · ${r + 1}/${m.repetitions}` : ''}`;
                emit({ type: 'start', unit, label });
                const cell = await measure(host, loadgen, loadSpec(m, s, sys), sys, (p) => emit({ type: 'progress', unit, label, progress: p }), signal);
                check();
                results.cells.push({ scenario: s.name, system: name, repetition: r, ...cell });
                recorded();
                emit({ type: 'done', unit, label });
                unit++;
              }
            }
          } finally {
            await sys.stop();
          }
        }
      } finally {
        await sink.stop();
      }
    }
  } catch (err) {
    results.status = err instanceof Canceled ? 'canceled' : 'failed';
    if (!(err instanceof Canceled)) results.error = err instanceof Error ? err.message : String(err);
  }
  results.finishedAt = new Date().toISOString();
  return results;
}

interface Measured {
  result: LoadgenResult;
  cpuUsPerReq: number | null;
  peakRssMb: number | null;
}

/** One benchmark through the load generator, with the system's CPU and RSS over the measured window only. */
async function measure(host: Host, loadgen: LoadgenClient, spec: LoadSpec, sys: RunningSystem, onProgress: (p: Progress) => void, signal?: AbortSignal): Promise<Measured> {
  const pids = sys.pids;
  // Sampling starts before the load, so the window opens at once when the measured phase does.
  // A sampler that cannot start (a remote host that stopped answering) measures no CPU; the load goes on.
  const sampler = pids.length === 0 ? null : await host.sampler(pids).catch(() => null);
  let opened = false;
  let done0 = 0;
  const openWindow = (done: number): void => {
    opened = true;
    done0 = done;
    sampler?.open();
  };
  // Open loop has no warm-up: the window opens at once.
  if (spec.warmupS === 0) openWindow(0);
  let bench: Awaited<ReturnType<LoadgenClient['run']>>;
  try {
    bench = await loadgen.run(
      spec,
      (p) => {
        if (!opened && p.phase === 'running') openWindow(p.done);
        onProgress(p);
      },
      signal,
    );
  } catch (err) {
    await sampler?.cancel().catch(() => undefined);
    if (err instanceof LoadgenError || signal?.aborted) throw err;
    // Its connection broke (a remote source host's process or tunnel gone).
    throw new LoadgenError(`the load generator stopped answering: ${err instanceof Error ? err.message : String(err)}`);
  }
  let taken: { cpuUs: number; peakRssKb: number } | null = null;
  if (sampler !== null && opened) taken = await sampler.close().catch(() => null);
  else await sampler?.cancel().catch(() => undefined);
  if (bench.status === 'canceled') throw new Canceled('the run was cancelled');
  if (bench.status !== 'completed' || bench.result === null) throw new Error(`the load generator failed: ${bench.error ?? bench.status}`);
  const result = bench.result;
  const cpuUs = taken === null ? NaN : taken.cpuUs;
  const peakKb = taken === null ? NaN : taken.peakRssKb;
  const measured = result.requests - done0;
  return {
    result,
    cpuUsPerReq: pids.length === 0 || !(measured > 0) || !Number.isFinite(cpuUs) ? null : Math.round((cpuUs / measured) * 10) / 10,
    peakRssMb: pids.length === 0 || !Number.isFinite(peakKb) ? null : Math.round(peakKb / 102.4) / 10,
  };
}

/**
 * Open-loop rates in order; a system stops at the first rate where it adds
 * more than bound_ms at p99 over Baseline at that rate, fails more than 1% of
 * requests, or falls behind the rate by more than 10%.
 */
async function sweep(
  host: Host,
  loadgen: LoadgenClient,
  m: Matrix,
  s: Scenario,
  name: string,
  sys: RunningSystem,
  baselineP99: Map<number, number>,
  onProgress: (p: Progress) => void,
  signal?: AbortSignal,
): Promise<SweepResult> {
  const sw = s.sweep!;
  const out: SweepResult = { scenario: s.name, system: name, steps: [] };
  const isBaseline = name === 'baseline';
  // Unmeasured: a cold system (JIT, connection pools) would fail the first rate for reasons no user sees twice.
  const first = sw.rates[0]!;
  await measure(host, loadgen, { ...loadSpec(m, { ...s, rate: first, duration_s: Math.min(2, sw.step_s) }, sys), warmupS: 0 }, sys, onProgress, signal);
  for (const rate of sw.rates) {
    if (!isBaseline && !baselineP99.has(rate)) {
      out.stopped = `Baseline did not keep up with ${rate}/s on this machine`;
      break;
    }
    const spec = { ...loadSpec(m, { ...s, rate, duration_s: sw.step_s }, sys), warmupS: 0 };
    const r = await measure(host, loadgen, spec, sys, onProgress, signal);
    const p99 = r.result.latencyMs.p99;
    const added = isBaseline ? null : Math.round((p99 - baselineP99.get(rate)!) * 1000) / 1000;
    const step: SweepStep = { rate, ...r, addedP99Ms: added };
    out.steps.push(step);
    const failed = r.result.requests > 0 ? r.result.errors / r.result.requests : 1;
    const behind = !servedRate(step);
    if (isBaseline && keptUp(step)) baselineP99.set(rate, p99);
    if (failed > 0.01) {
      out.stopped = `${(failed * 100).toFixed(1)}% of requests failed at ${rate}/s`;
      break;
    }
    if (behind) {
      out.stopped = `served ${r.result.rps.toFixed(0)}/s of ${rate}/s`;
      break;
    }
    if (added !== null && added > sw.bound_ms) {
      out.stopped = `added ${added.toFixed(1)} ms at p99 at ${rate}/s (bound ${sw.bound_ms} ms)`;
      break;
    }
  }
  return out;
}

export type { SinkEndpoint };
