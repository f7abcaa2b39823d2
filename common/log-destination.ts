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
import { write, writeSync } from 'node:fs';

const CHUNK = 64 * 1024;

export class LogDestination {
  private buf = Buffer.allocUnsafe(CHUNK);
  private off = 0;
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private writing = false;
  private dropped = 0;

  constructor(
    private readonly fd: number,
    private readonly maxBacklogBytes = 16 * 1024 * 1024,
    flushMs = 1000,
  ) {
    setInterval(() => this.flush(), flushMs).unref();
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
    write(this.fd, chunk, 0, chunk.length, null, (err, n) => {
      if (err) {
        if (err.code === 'EAGAIN') {
          // A non-blocking pipe is full: try again shortly.
          setTimeout(() => this.next(), 10).unref();
          return;
        }
        // The reader is gone (EPIPE …): nothing more can be written.
        this.queue.length = 0;
        this.queued = 0;
        this.writing = false;
        return;
      }
      this.queued -= n;
      if (n < chunk.length) this.queue[0] = chunk.subarray(n);
      else this.queue.shift();
      this.next();
    });
  }

  /** Writes everything now, synchronously: for process exit. */
  flushSync(): void {
    this.flush();
    // A chunk handed to fs.write may still be in flight: its bytes are written
    // by the thread pool; writing the rest after it keeps the order.
    const rest = this.writing ? this.queue.slice(1) : this.queue.slice();
    if (this.writing) this.queue.length = 1;
    else this.queue.length = 0;
    for (const chunk of rest) {
      let off = 0;
      while (off < chunk.length) {
        try {
          off += writeSync(this.fd, chunk, off, chunk.length - off);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
          return;
        }
      }
    }
  }
}

function countLines(chunk: Buffer): number {
  let n = 0;
  for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) n++;
  return n;
}
