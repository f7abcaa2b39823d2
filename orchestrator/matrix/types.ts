// The matrix spec: what `sluice bench --matrix FILE` reads (YAML or JSON) and
// the daemon accepts. Field names are snake_case, as in the gateway's config.

export type Arrival = 'constant' | 'poisson';

export interface StreamSpec {
  /** Time from response start to the first token, ms. */
  ttft_ms: number;
  /** Time between tokens, ms. */
  itl_ms: number;
  output_tokens: number;
}

/** A capacity sweep: open-loop rates stepped up until the system's added p99 over Baseline passes `bound_ms`. */
export interface SweepSpec {
  /** Arrivals per second, in the order they are run. */
  rates: number[];
  /** Measured seconds per rate. */
  step_s: number;
  /** A system stops at the first rate where its p99 exceeds Baseline's at that rate by more than this. */
  bound_ms: number;
}

export interface Scenario {
  name: string;
  /** Concurrent users (closed loop), or the most requests in flight (open loop and sweeps). */
  workers: number;
  /** Requests measured; excludes duration_s. */
  requests?: number;
  /** Seconds measured; the default when neither is given. */
  duration_s?: number;
  request_bytes: number;
  /** The sink's wait before each response starts (ms); with `stream`, ttft_ms replaces it. */
  wait_ms: number;
  stream?: StreamSpec;
  /** Open loop: arrivals per second. */
  rate?: number;
  arrival: Arrival;
  /** Closed-loop load before measuring (s); the matrix's warmup_s when absent. */
  warmup_s?: number;
  sweep?: SweepSpec;
}

/** A gateway the user runs or can start, in the same tables as the built-in systems. */
export interface CustomSystem {
  /** Started before each scenario, stopped after; {sink_url} {sink_origin} {port} are replaced. Run with sh -c. */
  command?: string;
  /** The base URL the load is sent to (ending in /v1); {port} is replaced. */
  url: string;
  /** Polled until it answers 2xx before the load starts (default: none). */
  ready_url?: string;
  /** Bearer key sent as Authorization (or in key_header). */
  key?: string;
  /** Header the key is sent in (default authorization, as "Bearer <key>"). */
  key_header?: string;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** The process whose tree is sampled for CPU and RSS: "command" (the started command, default when there is one) or a pid. */
  sample?: 'command' | number;
  /** How the tables name its version. */
  version?: string;
  /** Model name in the requests (default benchmark-model). */
  model?: string;
}

export interface Matrix {
  scenarios: Scenario[];
  /** Systems to run, in table order; Baseline always runs first. */
  systems: string[];
  custom: Record<string, CustomSystem>;
  repetitions: number;
  warmup_s: number;
  model: string;
  /** Where --provider gcp creates its VMs; flags override each field. */
  gcp?: GcpPlacement;
}

export interface GcpPlacement {
  project?: string;
  zone?: string;
  machine_type?: string;
  image?: string;
  network?: string;
}

/** The built-in systems. */
export const BUILTIN_SYSTEMS = ['baseline', 'sluice', 'sluice-redis', 'nginx', 'portkey'] as const;
