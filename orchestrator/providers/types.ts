// Where the three roles run. Locally they are processes on loopback; the
// netns and gcp providers put them on hosts of their own. The runner sees
// only this interface.
import type { SinkEndpoint } from '../systems/types.js';
import type { ProcessSet } from './processes.js';

export interface SinkHandle {
  endpoint: SinkEndpoint;
  stop(): Promise<void>;
}

export interface Host {
  readonly name: string;
  /** How to run sluice on the system-under-test host: [node, dist/cli.js]. */
  readonly cli: string[];
  /** The processes started on the system-under-test host. */
  readonly procs: ProcessSet;
  /** CPU cores of the system-under-test host. */
  readonly cores: number;
  /** The address systems listen on, which the source reaches. */
  readonly sutAddress: string;
  /** The origin of the load generator's REST API on the source host (started on first use). */
  loadgen(): Promise<string>;
  /** A fresh sink with these flags on the sink host. */
  sink(args: string[]): Promise<SinkHandle>;
  /** Stops every process the provider started. */
  close(): Promise<void>;
}
