// Messages between the primary and its workers.
export const MSG = {
  listening: 'sluice:listening',
  shutdown: 'sluice:shutdown',
  metricsRequest: 'sluice:metrics?',
  metricsResponse: 'sluice:metrics',
  broadcast: 'sluice:broadcast',
} as const;

export type WorkerMessage =
  | { type: typeof MSG.listening; port: number }
  | { type: typeof MSG.metricsRequest; id: number }
  | { type: typeof MSG.broadcast; payload: unknown };

export type PrimaryMessage =
  | { type: typeof MSG.shutdown }
  | { type: typeof MSG.metricsResponse; id: number; text: string }
  | { type: typeof MSG.broadcast; payload: unknown };
