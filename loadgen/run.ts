// Runs a load test: splits the workers (and the arrival rate) over a piscina
// pool of worker threads, starts them together, reports progress from the
// shared counters, and merges the threads' histograms into one result.
import { Piscina } from 'piscina';
import { performance } from 'node:perf_hooks';
import { SLOT, SLOTS, type ThreadResult, type ThreadTask } from './shared.js';
import type { RunSpec } from './spec.js';
import { buildResult, decode, newHistogram, addCounts, zeroErrors, type LoadgenResult, type RawCounts } from './result.js';

export interface Progress {
  /** Requests finished (ok or not) since measuring started. */
  done: number;
  /** The total for --requests runs, else null. */
  total: number | null;
  errors: number;
  elapsedS: number;
  /** For --duration runs, else null. */
  durationS: number | null;
  /** Requests per second over the last interval. */
  rps: number;
  phase: 'starting' | 'warmup' | 'running';
}

export interface RunOptions {
  onProgress?: (p: Progress) => void;
  /** How often onProgress is called, ms. */
  progressMs?: number;
  signal?: AbortSignal;
}

const WORKER = new URL('./worker.js', import.meta.url).href;

/** Splits n into k near-equal integer parts. */
function split(n: number, k: number): number[] {
  return Array.from({ length: k }, (_, i) => Math.floor(n / k) + (i < n % k ? 1 : 0));
}

export async function runLoad(spec: RunSpec, opts: RunOptions = {}): Promise<LoadgenResult & { canceled?: true }> {
  const threads = Math.min(spec.threads, spec.workers);
  const sab = new SharedArrayBuffer(SLOTS * 4);
  const shared = new Int32Array(sab);
  const pool = new Piscina<ThreadTask, ThreadResult>({ filename: WORKER, minThreads: threads, maxThreads: threads, idleTimeout: 1000 });
  const workers = split(spec.workers, threads);
  const tasks = workers.map(
    (w, index): ThreadTask => ({
      spec,
      index,
      workers: w,
      // Each thread runs a share of the rate proportional to its workers; the
      // phases interleave constant arrivals into one evenly spaced schedule.
      rate: spec.rate === undefined ? undefined : (spec.rate * w) / spec.workers,
      phaseMs: spec.rate === undefined ? 0 : (index * 1000) / spec.rate,
      sab,
    }),
  );
  const abort = (): void => {
    Atomics.store(shared, SLOT.STOP, 1);
    // Threads still waiting to start must wake up to see the stop.
    Atomics.store(shared, SLOT.GO, 1);
    Atomics.notify(shared, SLOT.GO);
  };
  if (opts.signal?.aborted) abort();
  opts.signal?.addEventListener('abort', abort, { once: true });

  const running = tasks.map((t) => pool.run(t));
  // A failed thread stops the others, so the run ends with that error.
  running.forEach((p) => p.catch(abort));

  let goAt = 0;
  let lastDone = 0;
  let lastAt = performance.now();
  const startedAt = lastAt;
  const go = (): void => {
    if (goAt === 0 && Atomics.load(shared, SLOT.READY) >= threads) {
      goAt = performance.now();
      lastAt = goAt;
      Atomics.store(shared, SLOT.GO, 1);
      Atomics.notify(shared, SLOT.GO);
    }
  };
  const tick = (): void => {
    go();
    const now = performance.now();
    if (!opts.onProgress) return;
    const done = Atomics.load(shared, SLOT.DONE);
    const dt = (now - lastAt) / 1000;
    const rps = goAt && dt > 0 ? (done - lastDone) / dt : 0;
    if (goAt) {
      lastDone = done;
      lastAt = now;
    }
    opts.onProgress({
      done,
      total: spec.requests ?? null,
      errors: Atomics.load(shared, SLOT.ERRORS),
      elapsedS: goAt ? (now - goAt) / 1000 : 0,
      durationS: spec.durationS ?? null,
      rps,
      phase: goAt ? 'running' : spec.warmupS > 0 && now - startedAt > 200 ? 'warmup' : 'starting',
    });
  };
  // Start as soon as every thread is ready: poll tightly until GO, then at the progress rate.
  const startPoll = setInterval(() => {
    go();
    if (goAt !== 0) clearInterval(startPoll);
  }, 2);
  const progress = setInterval(tick, opts.progressMs ?? 500);

  let results: ThreadResult[];
  try {
    results = await Promise.all(running);
  } finally {
    clearInterval(startPoll);
    clearInterval(progress);
    opts.signal?.removeEventListener('abort', abort);
    await pool.destroy();
  }
  const canceled = Atomics.load(shared, SLOT.STOP) === 1;
  const counts: RawCounts = { requests: 0, ok: 0, errorsByKind: zeroErrors(), errorsByStatus: {} };
  const lat = newHistogram();
  const ttft = spec.stream ? newHistogram() : null;
  const itl = spec.stream ? newHistogram() : null;
  let elapsedMs = 0;
  for (const r of results) {
    addCounts(counts, r);
    lat.add(decode(r.histogram));
    if (ttft && itl && r.ttftHistogram && r.itlHistogram) {
      ttft.add(decode(r.ttftHistogram));
      itl.add(decode(r.itlHistogram));
    }
    elapsedMs = Math.max(elapsedMs, r.elapsedMs);
  }
  if (opts.onProgress) tick();
  const result = buildResult(counts, elapsedMs / 1000, lat, ttft, itl);
  return canceled ? { ...result, canceled: true } : result;
}
