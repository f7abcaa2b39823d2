import type { HttpResponse } from './uws.js';

export type BodyResult = { ok: true; body: Buffer } | { ok: false; tooLarge: true };

/**
 * Like readBody, but a body that arrives in one chunk is handed over without a
 * copy, as a view of uWS's ArrayBuffer: `done` must finish with it before it
 * returns (parse it, do not keep it). Saves an allocation and a copy per
 * request on the common small-body path.
 */
export function readBodyTransient(
  res: HttpResponse,
  contentLength: number,
  maxBytes: number,
  done: (result: BodyResult) => void,
): void {
  if (contentLength > maxBytes) {
    done({ ok: false, tooLarge: true });
    return;
  }
  let first = true;
  let rest: ((ab: ArrayBuffer, isLast: boolean) => void) | null = null;
  res.onData((ab, isLast) => {
    if (first) {
      first = false;
      if (isLast) {
        if (ab.byteLength > maxBytes) done({ ok: false, tooLarge: true });
        else done({ ok: true, body: Buffer.from(ab) });
        return;
      }
      rest = collector(contentLength, maxBytes, done);
    }
    rest!(ab, isLast);
  });
}

/**
 * Reads a request body into one buffer. uWS detaches every onData ArrayBuffer
 * after the callback returns, so each chunk is copied out at once (a kept
 * reference kills the process). When the Content-Length is known we copy into
 * a buffer of that size instead of concatenating.
 * `done` is called exactly once, unless the request is aborted first.
 */
export function readBody(
  res: HttpResponse,
  contentLength: number,
  maxBytes: number,
  done: (result: BodyResult) => void,
): void {
  if (contentLength > maxBytes) {
    done({ ok: false, tooLarge: true });
    return;
  }
  res.onData(collector(contentLength, maxBytes, done));
}

/** An onData handler that copies chunks into one buffer (pre-sized when the length is known). */
function collector(contentLength: number, maxBytes: number, done: (result: BodyResult) => void): (ab: ArrayBuffer, isLast: boolean) => void {
  let finished = false;
  if (contentLength > 0) {
    const buf = Buffer.allocUnsafe(contentLength);
    let offset = 0;
    return (ab, isLast) => {
      if (finished) return;
      const chunk = new Uint8Array(ab);
      if (offset + chunk.length > contentLength) {
        finished = true;
        done({ ok: false, tooLarge: true });
        return;
      }
      buf.set(chunk, offset);
      offset += chunk.length;
      if (isLast) {
        finished = true;
        done({ ok: true, body: offset === contentLength ? buf : buf.subarray(0, offset) });
      }
    };
  }
  const chunks: Buffer[] = [];
  let total = 0;
  return (ab, isLast) => {
    if (finished) return;
    total += ab.byteLength;
    if (total > maxBytes) {
      finished = true;
      done({ ok: false, tooLarge: true });
      return;
    }
    if (ab.byteLength > 0) chunks.push(Buffer.from(ab.slice(0)));
    if (isLast) {
      finished = true;
      done({ ok: true, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total) });
    }
  };
}

/**
 * A body not to be read yet (its request is not authorised): reads from the
 * client are paused at once, so nothing beyond what uWS had already read with
 * the headers arrives (one socket read, at most uWS's 512 KiB receive buffer),
 * and that is copied aside. read() resumes and collects the body as readBody
 * does; discard() resumes and drops it (uWS reads the rest of the body past
 * the response and keeps the connection). Call one of them exactly once,
 * before answering the request and never after onAborted: uWS refuses any
 * call on a response that ended.
 *
 * Build it synchronously in the request handler (onData is attached there).
 */
export class HeldBody {
  private held: ArrayBuffer[] = [];
  private heldBytes = 0;
  private ended = false;
  private sink: ((ab: ArrayBuffer, isLast: boolean) => void) | null = null;
  private dropped = false;

  constructor(
    private readonly res: HttpResponse,
    private readonly contentLength: number,
    private readonly maxBytes: number,
  ) {
    res.onData((ab, isLast) => this.onData(ab, isLast));
    res.pause();
  }

  private onData(ab: ArrayBuffer, isLast: boolean): void {
    if (this.sink !== null) {
      this.sink(ab, isLast);
      return;
    }
    if (this.dropped) return;
    if (isLast) this.ended = true;
    this.heldBytes += ab.byteLength;
    // Paused, this is one socket read at most; the cap holds should uWS deliver more.
    if (this.heldBytes > this.maxBytes) this.held = [];
    else this.held.push(ab.slice(0));
  }

  /** Resumes reading; `done` is called exactly once (maybe before this returns), unless the request is aborted first. */
  read(done: (result: BodyResult) => void): void {
    this.res.resume();
    if (this.heldBytes > this.maxBytes) {
      this.dropped = true;
      done({ ok: false, tooLarge: true });
      return;
    }
    const sink = collector(this.contentLength, this.maxBytes, done);
    const held = this.held;
    this.held = [];
    for (let i = 0; i < held.length; i++) sink(held[i]!, this.ended && i === held.length - 1);
    this.sink = sink;
  }

  /** Resumes reading and drops the body. */
  discard(): void {
    this.dropped = true;
    this.held = [];
    this.res.resume();
  }
}
