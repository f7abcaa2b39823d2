// results.json: the matrix, the environment, each system's version, and every
// cell's load-generator result (with its histogram), the system's CPU µs per
// request and peak RSS, or the reason it was skipped.
import type { LoadgenResult } from '../loadgen/result.js';
import type { Environment } from './environment.js';
import type { Matrix } from './matrix/types.js';

export const RESULTS_VERSION = 1;

export interface CellResult {
  scenario: string;
  system: string;
  repetition: number;
  /** The load generator's result; absent when the cell did not run. */
  result?: LoadgenResult;
  /** utime + stime of the system's process tree over the measured window, per request (µs); null for Baseline. */
  cpuUsPerReq?: number | null;
  /** Peak resident memory of the system's process tree while measured (MB); null for Baseline. */
  peakRssMb?: number | null;
  /** Why the cell did not run (the system could not start, the run was cancelled …). */
  skipped?: string;
}

export interface SweepStep {
  rate: number;
  result: LoadgenResult;
  cpuUsPerReq: number | null;
  peakRssMb: number | null;
  /** p99 over Baseline's p99 at the same rate (ms); null for Baseline. */
  addedP99Ms: number | null;
}

export interface SweepResult {
  scenario: string;
  system: string;
  steps: SweepStep[];
  /** Why the sweep stopped before its last rate (the bound passed, errors, the rate not kept up). */
  stopped?: string;
  skipped?: string;
}

export interface SystemInfo {
  version?: string;
  skipped?: string;
}

export interface Results {
  object: 'sluice.bench.results';
  version: typeof RESULTS_VERSION;
  startedAt: string;
  finishedAt: string;
  /** completed, or canceled / failed / interrupted (the daemon stopped during the run) with what finished kept. */
  status: 'completed' | 'canceled' | 'failed' | 'interrupted';
  error?: string;
  matrix: Matrix;
  environment: Environment;
  systems: Record<string, SystemInfo>;
  cells: CellResult[];
  sweeps: SweepResult[];
}
