// The default matrix: the reference write-up's three scenarios in its order,
// the streaming scenario it said it should have modelled, and one short
// capacity sweep. Lengths are set so that a default run of the five systems
// ends in about 10 minutes on a 2-core machine; `--full` stretches every
// cell to at least 10,000 requests.
import { parse as parseYamlText, stringify } from 'yaml';
import { validateMatrix } from './schema.js';
import type { Matrix, Scenario } from './types.js';

export const DEFAULT_MATRIX_YAML = `# sluice bench matrix: scenarios x systems x repetitions.
# Each scenario gets a fresh sink started with its wait (and streaming timing).
# Closed loop: \`workers\` users, each sending its next request when the last ends.
# Open loop: \`rate\` arrivals per second, at most \`workers\` in flight.
scenarios:
  # The reference's three tables (100 users / 0.5 s, 100 users / 0.1 s, 50 users / 2.0 s), 1 KB bodies.
  - name: 100u-1kb-wait500
    workers: 100
    request_bytes: 1024
    wait_ms: 500
    duration_s: 15
  - name: 100u-1kb-wait100
    workers: 100
    request_bytes: 1024
    wait_ms: 100
    duration_s: 10
  - name: 50u-1kb-wait2000
    workers: 50
    request_bytes: 1024
    wait_ms: 2000
    duration_s: 20
    warmup_s: 4          # a warm-up of two cycles spreads the users out
  # What the reference should have modelled: a streamed completion.
  - name: 100u-1kb-stream
    workers: 100
    request_bytes: 1024
    stream: { ttft_ms: 100, itl_ms: 10, output_tokens: 64 }
    duration_s: 12
  # How much load one instance carries before a user notices it: open-loop
  # rates stepped up until the system adds more than 100 ms at p99 over
  # Baseline. A short sink wait (20 ms) keeps the sink's own work per request
  # small, so the system's cost decides where it stops; the cap of 512 in
  # flight is never reached by a system that keeps up (3,000/s x 20 ms is 60
  # in flight) and bounds one that does not. On 2 cores, where source, sink
  # and system share the machine, Baseline's own p99 rises past ~2,000/s and
  # at 4,000/s it drops arrivals: 3,000/s is the top step.
  - name: capacity-wait20
    workers: 512
    request_bytes: 1024
    wait_ms: 20
    sweep: { rates: [250, 500, 1000, 2000, 3000], step_s: 5, bound_ms: 100 }
systems: [baseline, sluice, sluice-redis, nginx, portkey]
repetitions: 1
warmup_s: 2
model: benchmark-model
`;

export function defaultMatrix(): Matrix {
  // Parsed from the text so that --print-matrix shows exactly what runs.
  return validateMatrix(parseYamlText(DEFAULT_MATRIX_YAML));
}

/** End-to-end latency of one request at the sink (ms), without the system or the network. */
export function sinkLatencyMs(s: Scenario): number {
  if (s.stream === undefined) return s.wait_ms;
  return s.wait_ms + s.stream.ttft_ms + Math.max(0, s.stream.output_tokens - 1) * s.stream.itl_ms;
}

/** What a perfect system would do: closed loop, workers / latency; open loop, the rate. */
export function theoreticalRps(s: Scenario): number {
  if (s.rate !== undefined) return s.rate;
  const ms = sinkLatencyMs(s);
  return ms > 0 ? (s.workers * 1000) / ms : Infinity;
}

/** The matrix with every cell long enough to hold at least `min` requests (--full). */
export function fullMatrix(m: Matrix, min = 10_000): Matrix {
  const out = structuredClone(m);
  for (const s of out.scenarios) {
    if (s.sweep !== undefined) {
      s.sweep.step_s = Math.max(s.sweep.step_s, Math.ceil((min * 1.05) / s.sweep.rates[0]!));
      continue;
    }
    if (s.requests !== undefined) {
      s.requests = Math.max(s.requests, min);
      continue;
    }
    const rps = theoreticalRps(s);
    if (Number.isFinite(rps)) s.duration_s = Math.max(s.duration_s ?? 10, Math.ceil((min * 1.05) / rps));
    else s.requests = min;
  }
  return out;
}

/** The matrix as YAML (what --print-matrix writes for a matrix other than the default). */
export function matrixYaml(m: Matrix): string {
  return stringify(m);
}
