// Messages between the primary and its workers.
export const MSG = {
  listening: 'sluice:listening',
  /** Stop: keep answering for graceMs (/readyz 503), then stop accepting, drain and exit. */
  shutdown: 'sluice:shutdown',
  /** A reload's new workers listen: stop accepting now (and say so with stoppedAccepting). */
  retire: 'sluice:retire',
  stoppedAccepting: 'sluice:stopped-accepting',
  /** Every retiring worker stopped accepting: answer with Connection: close, drain and exit. */
  closeConnections: 'sluice:close-connections',
  metricsRequest: 'sluice:metrics?',
  metricsResponse: 'sluice:metrics',
  broadcast: 'sluice:broadcast',
} as const;

export type WorkerMessage =
  | { type: typeof MSG.listening; port: number }
  | { type: typeof MSG.stoppedAccepting; worker: number }
  | { type: typeof MSG.metricsRequest; id: number }
  | { type: typeof MSG.broadcast; payload: unknown };

export type PrimaryMessage =
  | { type: typeof MSG.shutdown; graceMs: number }
  | { type: typeof MSG.retire }
  | { type: typeof MSG.closeConnections }
  | { type: typeof MSG.metricsResponse; id: number; text: string }
  | { type: typeof MSG.broadcast; payload: unknown };
