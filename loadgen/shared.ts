// The protocol between the main thread and the worker threads: the task each
// thread gets, what it returns, and the layout of the SharedArrayBuffer that
// holds the shared request queue and the live counters.
import type { RunSpec } from './spec.js';
import type { RawCounts } from './result.js';

/** Int32 slots of the shared buffer. */
export const SLOT = {
  /** Tickets claimed from the shared queue (Atomics.add; a ticket >= requests means empty). */
  CLAIMED: 0,
  /** Requests finished and counted (progress). */
  DONE: 1,
  /** Of those, errors (progress). */
  ERRORS: 2,
  /** Set to 1 to stop every thread now (cancel). */
  STOP: 3,
  /** Threads that are warmed up and waiting for GO. */
  READY: 4,
  /** Set to 1 (and notified) when measuring starts. */
  GO: 5,
} as const;
export const SLOTS = 8;

export interface ThreadTask {
  spec: RunSpec;
  index: number;
  /** Workers (concurrent users, or open-loop slots) this thread runs. */
  workers: number;
  /** Open loop: this thread's share of the arrival rate, per second. */
  rate?: number;
  /** Open loop, constant arrivals: this thread's offset into the common schedule, ms. */
  phaseMs: number;
  sab: SharedArrayBuffer;
}

export interface ThreadResult extends RawCounts {
  /**
   * requests / this thread's rate, ms. Open loop: GO to the last counted
   * request (or the deadline); closed loop: the rate is summed per worker.
   */
  elapsedMs: number;
  histogram: string;
  ttftHistogram?: string;
  itlHistogram?: string;
}
