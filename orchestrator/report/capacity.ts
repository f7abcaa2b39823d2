// What a capacity sweep measured, as numbers. The capacity table
// (tables.ts) and the comparison of two runs (compare.ts) both read a sweep
// through these, so they cannot disagree on what "kept up" means.
import type { SweepResult, SweepStep } from '../results.js';

/** The system served at least 90% of the step's rate. */
export function servedRate(st: SweepStep): boolean {
  return st.result.rps >= st.rate * 0.9;
}

/** A step the system kept up with: it served the rate and failed at most 1% of requests. */
export function keptUp(st: SweepStep): boolean {
  return st.result.errors <= st.result.requests * 0.01 && servedRate(st);
}

/**
 * The highest throughput among the steps kept up with — within an added p99
 * over Baseline of `boundMs` when given (Baseline's own steps have none) —
 * or null when no step qualifies.
 */
export function capacityAt(w: SweepResult, boundMs?: number): number | null {
  const ok = w.steps.filter((st) => keptUp(st) && (boundMs === undefined || (st.addedP99Ms !== null && st.addedP99Ms <= boundMs)));
  return ok.length === 0 ? null : Math.max(...ok.map((st) => st.result.rps));
}

/** The last step whose rate the system served: where the sweep's CPU µs/request is read. */
export function lastServedStep(w: SweepResult): SweepStep | undefined {
  return w.steps.filter(servedRate).at(-1);
}
