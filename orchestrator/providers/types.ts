// Where the three roles run. Locally they are processes on loopback; the
// netns and gcp providers put them on hosts of their own. The runner and the
// systems see only this interface: every file, port, probe and /proc reading
// of the system's host goes through it, so one code path serves every provider.
import type { SinkEndpoint } from '../systems/types.js';
import type { Environment } from '../environment.js';
import type { ProcessSet } from './processes.js';

export interface SinkHandle {
  endpoint: SinkEndpoint;
  stop(): Promise<void>;
}

/** Files on the system-under-test host. */
export interface HostFiles {
  exists(path: string): Promise<boolean>;
  read(path: string): Promise<string>;
  /** Writes (creating its folder), readable by its owner only. */
  write(path: string, text: string): Promise<void>;
  mkdir(path: string): Promise<void>;
}

/**
 * Process trees' CPU and resident memory on the system's host, read from before the load starts,
 * so that opening the measured window is immediate (no round trip to a remote host).
 */
export interface Sampler {
  /** Opens the measured window now. */
  open(): void;
  /** Closes it: CPU µs spent since open(), and the peak of the summed RSS (kB) over it; stops sampling. */
  close(): Promise<{ cpuUs: number; peakRssKb: number }>;
  /** Stops sampling without a result. */
  cancel(): Promise<void>;
}

export interface Host {
  readonly name: string;
  /** How to run sluice on the system-under-test host: [node, dist/cli.js]. */
  readonly cli: string[];
  /** The processes started on the system-under-test host. */
  readonly procs: ProcessSet;
  readonly files: HostFiles;
  /** CPU cores of the system-under-test host. */
  readonly cores: number;
  /** The address systems listen on, which the source reaches. */
  readonly sutAddress: string;
  /** A scratch folder on the system-under-test host (config files, databases); removed by close(). */
  workDir(): Promise<string>;
  /** A TCP port free on sutAddress (for servers that cannot report the one they bound). */
  freePort(): Promise<number>;
  /** The HTTP status of a GET of `url` from where the load comes from, or null when nothing answers. */
  probe(url: string, timeoutMs?: number): Promise<number | null>;
  /** Starts sampling these process trees on the system-under-test host. */
  sampler(pids: number[]): Promise<Sampler>;
  /** The origin of the load generator's REST API on the source host (started on first use). */
  loadgen(): Promise<string>;
  /** A fresh sink with these flags on the sink host. */
  sink(args: string[]): Promise<SinkHandle>;
  /** The system-under-test host's machine, when it is not this one (the run's results name it). */
  environment?(): Promise<Environment>;
  /** Stops every process the provider started. */
  close(): Promise<void>;
}
