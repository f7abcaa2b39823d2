// Messages between the primary and its workers.
export const MSG = {
  listening: 'sluice:listening',
  /** Stop: keep answering for graceMs (/readyz 503), then stop accepting, drain and exit. */
  shutdown: 'sluice:shutdown',
  /** A reload's new workers listen: stop accepting now, drain and exit. */
  retire: 'sluice:retire',
  metricsRequest: 'sluice:metrics?',
  metricsResponse: 'sluice:metrics',
  broadcast: 'sluice:broadcast',
} as const;

export type WorkerMessage =
  | { type: typeof MSG.listening; port: number }
  | { type: typeof MSG.metricsRequest; id: number }
  | { type: typeof MSG.broadcast; payload: unknown };

export type PrimaryMessage =
  | { type: typeof MSG.shutdown; graceMs: number }
  | { type: typeof MSG.retire }
  | { type: typeof MSG.metricsResponse; id: number; text: string }
  | { type: typeof MSG.broadcast; payload: unknown };
