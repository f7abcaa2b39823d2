// pino's destination for the hot path: log lines are appended to a buffer and
// written with one asynchronous fs.write per 64 KiB (or per second when quiet).
//
// Why not pino.destination({ sync: false }) (sonic-boom): on this machine it
// cost ~3 µs per line against ~0.3 µs here, and the gateway writes one line
// per request, where the whole budget is a few tens of µs.
//
// It never blocks the event loop on a slow reader: while a write is in flight
// further lines queue, and past `maxBacklogBytes` lines are dropped and
// counted (the count is reported in the next line written).
//
// A full non-blocking pipe (stdout is one once any process sharing it has
// touched process.stdout) answers EAGAIN: the writer then waits for it to
// drain, on a timer that backs off to RETRY_MAX_MS, never retrying at once
// (that spins a core). At exit, flushSync sleeps between tries, as sonic-boom
// does (Atomics.wait), for at most `exitWaitMs` in all; what is still unwritten
// then is counted as dropped, so a stuck reader cannot hold the process.
import { write, writeSync } from 'node:fs';

const CHUNK = 64 * 1024;
const RETRY_MIN_MS = 10;
const RETRY_MAX_MS = 100;
/** Longest single sleep in flushSync: how late it notices a reader that reads again. */
const SYNC_SLEEP_MAX_MS = 50;

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/** The fd cannot take more now (a full non-blocking pipe or socket); anything else means the reader is gone. */
function isBusy(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EBUSY';
}

export interface LogDestinationOptions {
  /** Past this many bytes waiting to be written, lines are dropped and counted. Default 16 MiB. */
  maxBacklogBytes?: number;
  /** How often buffered lines are handed to the writer when quiet. Default 1000. */
  flushMs?: number;
  /** The most flushSync waits for a stuck reader in all (ms). Default 2000. */
  exitWaitMs?: number;
}

export class LogDestination {
  private buf = Buffer.allocUnsafe(CHUNK);
  private off = 0;
  private readonly queue: Buffer[] = [];
  private queued = 0;
  /** A writer is active: a write is in flight or waiting on the retry timer. */
  private writing = false;
  /** queue[0] is in the thread pool's hands (fs.write called, its callback not run yet). */
  private inFlight = false;
  private retry: NodeJS.Timeout | null = null;
  private retryMs = RETRY_MIN_MS;
  private dropped = 0;
  private readonly maxBacklogBytes: number;
  private readonly exitWaitMs: number;

  constructor(
    private readonly fd: number,
    opts: LogDestinationOptions = {},
  ) {
    this.maxBacklogBytes = opts.maxBacklogBytes ?? 16 * 1024 * 1024;
    this.exitWaitMs = opts.exitWaitMs ?? 2000;
    setInterval(() => this.flush(), opts.flushMs ?? 1000).unref();
  }

  /** pino calls this with one complete line (newline included). */
  write(line: string): boolean {
    if (this.off + line.length * 3 > CHUNK) {
      this.flush();
      if (line.length * 3 > CHUNK) {
        this.enqueue(Buffer.from(line, 'utf8'));
        return true;
      }
    }
    this.off += this.buf.write(line, this.off, 'utf8');
    return true;
  }

  /** Hands the buffered lines to the writer. */
  flush(): void {
    if (this.off === 0) return;
    const chunk = this.buf.subarray(0, this.off);
    this.buf = Buffer.allocUnsafe(CHUNK);
    this.off = 0;
    this.enqueue(chunk);
  }

  private enqueue(chunk: Buffer): void {
    if (this.queued + chunk.length > this.maxBacklogBytes) {
      this.dropped += countLines(chunk);
      return;
    }
    if (this.dropped > 0) {
      const note = Buffer.from(`{"level":40,"time":${Date.now()},"msg":"log lines dropped: the log reader is too slow","dropped":${this.dropped}}\n`);
      this.dropped = 0;
      this.queue.push(note);
      this.queued += note.length;
    }
    this.queue.push(chunk);
    this.queued += chunk.length;
    if (!this.writing) this.next();
  }

  private next(): void {
    const chunk = this.queue[0];
    if (chunk === undefined) {
      this.writing = false;
      return;
    }
    this.writing = true;
    this.inFlight = true;
    write(this.fd, chunk, 0, chunk.length, null, (err, n) => {
      this.inFlight = false;
      // flushSync may have written or dropped everything meanwhile.
      if (this.queue[0] !== chunk) {
        this.next();
        return;
      }
      if (err && !isBusy(err)) {
        // The reader is gone (EPIPE …): nothing more can be written.
        this.queue.length = 0;
        this.queued = 0;
        this.writing = false;
        return;
      }
      if (err || n === 0) {
        // Full: wait for the reader to drain it.
        this.retry = setTimeout(() => {
          this.retry = null;
          this.next();
        }, this.retryMs).unref();
        this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
        return;
      }
      this.retryMs = RETRY_MIN_MS;
      this.queued -= n;
      if (n < chunk.length) this.queue[0] = chunk.subarray(n);
      else this.queue.shift();
      this.next();
    });
  }

  /**
   * Writes everything now, synchronously: for process exit. Waits for a full
   * pipe to drain (sleeping, not spinning) for at most exitWaitMs in all, then
   * gives up on the rest. Returns the number of lines lost (dropped and not
   * reported before, or left unwritten now).
   */
  flushSync(): number {
    this.flush();
    if (this.retry !== null) {
      // Waiting to retry queue[0]: nothing of it is in flight, write it here.
      clearTimeout(this.retry);
      this.retry = null;
    }
    // A chunk handed to fs.write is written by the thread pool; the rest goes
    // after it (it left first, so the order is kept).
    const first = this.inFlight ? 1 : 0;
    const deadline = Date.now() + this.exitWaitMs;
    let sleepMs = 1;
    while (this.queue.length > first) {
      const chunk = this.queue[first]!;
      let n = 0;
      try {
        n = writeSync(this.fd, chunk, 0, chunk.length);
      } catch (err) {
        if (!isBusy(err)) {
          this.drop(first);
          break;
        }
      }
      if (n > 0) {
        this.queued -= n;
        if (n < chunk.length) this.queue[first] = chunk.subarray(n);
        else this.queue.splice(first, 1);
        sleepMs = 1;
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        this.drop(first);
        break;
      }
      sleepMs = Math.min(sleepMs * 2, SYNC_SLEEP_MAX_MS, left);
      sleepSync(sleepMs);
    }
    if (!this.inFlight) this.writing = false;
    const lost = this.dropped;
    this.dropped = 0;
    return lost;
  }

  /** Counts as dropped, and forgets, the queued chunks from index `from` on. */
  private drop(from: number): void {
    for (let i = from; i < this.queue.length; i++) {
      const c = this.queue[i]!;
      this.dropped += countLines(c);
      this.queued -= c.length;
    }
    this.queue.length = from;
  }
}

function countLines(chunk: Buffer): number {
  let n = 0;
  for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) n++;
  return n;
}
