// pino, writing asynchronously (a buffered destination) so a log line never
// blocks the event loop on a slow stdout. Secrets never reach a logger: the
// gateway logs key ids and names only.
import { pino, type Logger } from 'pino';
import { LogDestination } from './log-destination.js';

export type { Logger };

export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  const destination = new LogDestination(1);
  const logger = pino(
    {
      level,
      base: { pid: process.pid, ...base },
      redact: { paths: ['authorization', 'headers.authorization', 'apiKey', 'token', 'secret'], censor: '[redacted]' },
    },
    destination,
  );
  flushers.push(() => destination.flushSync());
  return logger;
}

const flushers: Array<() => void> = [];

/** Flushes buffered log lines; call before process.exit. */
export function flushLogs(): void {
  for (const f of flushers) f();
}
