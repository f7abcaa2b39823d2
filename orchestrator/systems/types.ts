// One interface for every system under test: start in front of a given sink,
// report where to send the load (URL, key, headers), which process tree to
// sample, and its version; stop.
import type { ProcessSet } from '../providers/processes.js';
import type { HostFiles } from '../providers/types.js';

export interface SinkEndpoint {
  /** Base URL ending in /v1. */
  url: string;
  origin: string;
  host: string;
  port: number;
}

export interface SystemContext {
  sink: SinkEndpoint;
  /** A scratch folder of this system's own for this scenario (config files, databases, logs). */
  dir: string;
  /** `node dist/cli.js`: how to run sluice itself. */
  cli: string[];
  procs: ProcessSet;
  /** Files on the system's host. */
  files: HostFiles;
  /** A TCP port free on the system's address. */
  freePort(): Promise<number>;
  /** The HTTP status of a GET from where the load comes from, or null when nothing answers (readiness checks). */
  probe(url: string, timeoutMs?: number): Promise<number | null>;
  /** CPU cores of the host the system runs on (nginx's workers, sluice's workers: auto). */
  cores: number;
  /** Where peers (Portkey …) are installed by --install-peers. */
  peersDir: string;
  /** The model name the load asks for. */
  model: string;
  /** The address the system listens on, which the source reaches (127.0.0.1 locally; the SUT's own in a netns run). */
  host: string;
}

export interface RunningSystem {
  /** Base URL the load is sent to, ending in /v1. */
  url: string;
  /** Bearer key, sent as Authorization. */
  key?: string;
  headers: Record<string, string>;
  /** Roots of the process trees whose CPU and RSS are the system's (none for Baseline). */
  pids: number[];
  version: string;
  stop(): Promise<void>;
}

export interface SystemModule {
  readonly name: string;
  /** Why the system cannot run on this host, with the command that fixes it; null when it can. */
  unavailable(ctx: SystemContext): Promise<string | null>;
  start(ctx: SystemContext): Promise<RunningSystem>;
}

/** A system that could not start: the run reports it as skipped and goes on. */
export class SystemUnavailable extends Error {
  override name = 'SystemUnavailable';
}
