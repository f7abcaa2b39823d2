// pino, writing asynchronously (a buffered destination) so a log line never
// blocks the event loop on a slow stdout. Secrets never reach a logger: the
// gateway logs key ids and names only.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  const logger = pino(
    {
      level,
      base: { pid: process.pid, ...base },
      redact: { paths: ['authorization', 'headers.authorization', 'apiKey', 'token', 'secret'], censor: '[redacted]' },
    },
    destination,
  );
  flushers.push(() => destination.flushSync());
  // Buffered lines still reach the log within a second on a quiet gateway.
  setInterval(() => destination.flush(), 1000).unref();
  return logger;
}

const flushers: Array<() => void> = [];

/** Flushes buffered log lines; call before process.exit. */
export function flushLogs(): void {
  for (const f of flushers) {
    try {
      f();
    } catch {
      /* the destination may not be ready yet */
    }
  }
}
