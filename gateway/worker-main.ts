// Entry point of a gateway worker process (forked by the primary).
import { runWorker } from './worker.js';

runWorker().catch((err: unknown) => {
  process.stderr.write(`gateway worker failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
