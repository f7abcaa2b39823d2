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
