// Baseline: the source straight at the sink. Every table's reference: what
// the apparatus itself costs, so a system's figures are read against it.
import type { SystemModule } from './types.js';

export const baseline: SystemModule = {
  name: 'baseline',
  unavailable: async () => null,
  start: async (ctx) => ({ url: ctx.sink.url, headers: {}, pids: [], version: 'the sink, direct', stop: async () => undefined }),
};
