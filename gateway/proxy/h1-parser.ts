// An incremental HTTP/1.x response parser over byte ranges of a read buffer.
// It copies nothing it does not have to: body bytes go to the owner as ranges
// of the buffer it was given, and only a response head split across two reads
// (rare) is stitched together.
//
// Strict where laxness would be a request-smuggling or framing risk: CRLF line
// ends, no obsolete line folding, no NUL in a header, one Content-Length
// value and never with Transfer-Encoding, chunk sizes of at most 16 hex digits.

import { hasCrLfNul } from './h1-types.js';

export interface ParserOwner {
  /** The final response head; names lower-case. */
  onHead(status: number, headers: string[]): void;
  /** Body bytes buf[start, end). Return false to stop parsing after this call (backpressure). */
  onBody(buf: Buffer, start: number, end: number): boolean;
}

const enum State {
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  UntilClose,
  Done,
  Error,
}

const CR = 13;
const LF = 10;
const MAX_CHUNK_LINE = 1024;
/** Whitespace or NUL in a header name. */
const BAD_NAME = /[\s\0]/;

export class ResponseParser {
  private state = State.Head;
  /** Bytes still due in a Content-Length body or in the current chunk. */
  private remaining = 0;
  /** A head or chunk-size/trailer line split across reads. */
  private carry: Buffer | null = null;
  private noBody = false;
  private halted = false;
  status = 0;
  /** Whether the connection may carry another request after this response. */
  keepAlive = true;
  /** The server's `Keep-Alive: timeout=N` in ms, or 0. */
  keepAliveMs = 0;
  error = '';

  constructor(
    private readonly owner: ParserOwner,
    private readonly maxHeaderBytes: number,
  ) {}

  /** Prepares for the response to the next request. */
  reset(method: string): void {
    this.state = State.Head;
    this.remaining = 0;
    this.carry = null;
    this.noBody = method === 'HEAD';
    this.halted = false;
    this.status = 0;
    this.keepAlive = true;
    this.keepAliveMs = 0;
    this.error = '';
  }

  get done(): boolean {
    return this.state === State.Done;
  }

  get failed(): boolean {
    return this.state === State.Error;
  }

  /** True while the body runs until the server closes the connection. */
  get untilClose(): boolean {
    return this.state === State.UntilClose;
  }

  /** Stops parsing at once (the exchange was aborted from inside a callback). */
  halt(): void {
    this.halted = true;
  }

  /** The connection reached EOF: completes a close-delimited body. */
  eof(): void {
    if (this.state === State.UntilClose) this.state = State.Done;
  }

  /**
   * Parses buf[start, end). Returns the index where it stopped: `end` when all
   * was consumed, less when the response completed (check `done`), the owner
   * asked to pause, or it failed (check `failed`).
   */
  execute(buf: Buffer, start: number, end: number): number {
    let i = start;
    this.halted = false;
    while (i < end && !this.halted) {
      switch (this.state) {
        case State.Head:
          i = this.head(buf, i, end);
          break;
        case State.Length: {
          const n = Math.min(this.remaining, end - i);
          this.remaining -= n;
          const from = i;
          i += n;
          if (this.remaining === 0) this.state = State.Done;
          if (!this.owner.onBody(buf, from, i)) return i;
          break;
        }
        case State.ChunkSize:
          i = this.chunkSize(buf, i, end);
          break;
        case State.ChunkData: {
          const n = Math.min(this.remaining, end - i);
          this.remaining -= n;
          const from = i;
          i += n;
          if (this.remaining === 0) {
            this.state = State.ChunkDataEnd;
            this.remaining = 2;
          }
          if (!this.owner.onBody(buf, from, i)) return i;
          break;
        }
        case State.ChunkDataEnd:
          // The CRLF after chunk data, possibly split across reads.
          if (buf[i] !== (this.remaining === 2 ? CR : LF)) return this.fail(i, 'invalid chunk terminator');
          i++;
          if (--this.remaining === 0) this.state = State.ChunkSize;
          break;
        case State.Trailers:
          i = this.trailers(buf, i, end);
          break;
        case State.UntilClose: {
          const from = i;
          i = end;
          if (!this.owner.onBody(buf, from, end)) return i;
          break;
        }
        case State.Done:
        case State.Error:
          return i;
      }
    }
    return i;
  }

  private fail(i: number, message: string): number {
    this.state = State.Error;
    this.error = message;
    this.halted = true;
    return i;
  }

  /** Finds the end of the response head, stitching a head that spans reads. */
  private head(buf: Buffer, i: number, end: number): number {
    const carried = this.carry === null ? 0 : this.carry.length;
    const src = carried === 0 ? buf : Buffer.concat([this.carry!, buf.subarray(i, end)]);
    const from = carried === 0 ? i : 0;
    const stop = carried === 0 ? end : src.length;
    // Bytes past `end` in a shared read buffer are stale: a match there is no match.
    const at = src.indexOf('\r\n\r\n', from, 'latin1');
    if (at < 0 || at + 4 > stop) {
      if (stop - from > this.maxHeaderBytes) return this.fail(end, `response head larger than ${this.maxHeaderBytes} bytes`);
      this.carry = carried === 0 ? Buffer.from(buf.subarray(i, end)) : src;
      return end;
    }
    if (at - from > this.maxHeaderBytes) return this.fail(end, `response head larger than ${this.maxHeaderBytes} bytes`);
    const next = i + (at + 4 - from - carried);
    this.carry = null;
    if (!this.parseHead(src.toString('latin1', from, at))) return this.fail(next, this.error);
    return next;
  }

  private parseHead(text: string): boolean {
    // Status line: HTTP/1.x SSS reason
    if (text.length < 12 || !text.startsWith('HTTP/1.') || text.charCodeAt(8) !== 32) {
      this.error = 'invalid status line';
      return false;
    }
    const minor = text.charCodeAt(7) - 48;
    const status = Number(text.slice(9, 12));
    if ((minor !== 0 && minor !== 1) || !(status >= 100 && status <= 599) || (text.length > 12 && text.charCodeAt(12) !== 32 && text.charCodeAt(12) !== 13)) {
      this.error = 'invalid status line';
      return false;
    }
    const headers: string[] = [];
    let length = -1;
    let chunked = false;
    let transferEncoding = false;
    let connClose = minor === 0;
    let p = text.indexOf('\r\n');
    while (p >= 0) {
      const lineStart = p + 2;
      const lineEnd0 = text.indexOf('\r\n', lineStart);
      const lineEnd = lineEnd0 < 0 ? text.length : lineEnd0;
      p = lineEnd0;
      if (lineEnd === lineStart) continue;
      const c0 = text.charCodeAt(lineStart);
      if (c0 === 32 || c0 === 9) {
        this.error = 'obsolete header line folding';
        return false;
      }
      const colon = text.indexOf(':', lineStart);
      if (colon <= lineStart || colon > lineEnd) {
        this.error = 'invalid header line';
        return false;
      }
      const name = text.slice(lineStart, colon).toLowerCase();
      if (BAD_NAME.test(name)) {
        this.error = 'invalid header name';
        return false;
      }
      const value = text.slice(colon + 1, lineEnd).trim();
      if (hasCrLfNul(value)) {
        this.error = 'invalid header value';
        return false;
      }
      headers.push(name, value);
      switch (name) {
        case 'content-length': {
          if (!/^\d{1,15}$/.test(value) || (length >= 0 && length !== Number(value))) {
            this.error = 'invalid content-length';
            return false;
          }
          length = Number(value);
          break;
        }
        case 'transfer-encoding': {
          transferEncoding = true;
          const codings = value.toLowerCase().split(',');
          chunked = codings[codings.length - 1]!.trim() === 'chunked';
          break;
        }
        case 'connection': {
          const v = value.toLowerCase();
          if (v.includes('close')) connClose = true;
          else if (v.includes('keep-alive')) connClose = false;
          break;
        }
        case 'keep-alive': {
          const m = /timeout\s*=\s*(\d+)/i.exec(value);
          if (m) this.keepAliveMs = Number(m[1]) * 1000;
          break;
        }
      }
    }
    if (transferEncoding && length >= 0) {
      // RFC 9112 6.1: such a message "ought to be handled as an error": it is
      // how responses are smuggled, and the two framings disagree on the body.
      this.error = 'both transfer-encoding and content-length';
      return false;
    }
    if (status < 200) {
      if (status === 101) {
        this.error = 'unexpected protocol upgrade';
        return false;
      }
      // An interim response: the final one follows on the same connection.
      this.keepAliveMs = 0;
      return true;
    }
    this.status = status;
    this.keepAlive = !connClose;
    this.owner.onHead(status, headers);
    if (this.noBody || status === 204 || status === 304) {
      this.state = State.Done;
    } else if (transferEncoding) {
      // A final coding other than chunked means the body runs until close (RFC 9112 6.3).
      if (chunked) this.state = State.ChunkSize;
      else {
        this.state = State.UntilClose;
        this.keepAlive = false;
      }
    } else if (length >= 0) {
      this.remaining = length;
      this.state = length === 0 ? State.Done : State.Length;
    } else {
      this.state = State.UntilClose;
      this.keepAlive = false;
    }
    return true;
  }

  /** Reads one CRLF-terminated line (possibly spanning reads). Returns the line and the index after it, or null. */
  private line(buf: Buffer, i: number, end: number): { text: string; next: number } | null {
    const at = buf.indexOf(LF, i);
    if (at < 0 || at >= end) {
      const part = buf.subarray(i, end);
      this.carry = this.carry === null ? Buffer.from(part) : Buffer.concat([this.carry, part]);
      if (this.carry.length > MAX_CHUNK_LINE) {
        this.fail(end, 'chunk size or trailer line too long');
        return { text: '', next: end };
      }
      return null;
    }
    let text = buf.toString('latin1', i, at);
    if (this.carry !== null) {
      text = this.carry.toString('latin1') + text;
      this.carry = null;
    }
    if (text.charCodeAt(text.length - 1) !== CR) {
      this.fail(at + 1, 'line not terminated by CRLF');
      return { text: '', next: at + 1 };
    }
    return { text: text.slice(0, -1), next: at + 1 };
  }

  private chunkSize(buf: Buffer, i: number, end: number): number {
    const l = this.line(buf, i, end);
    if (l === null) return end;
    if (this.state === State.Error) return l.next;
    const semi = l.text.indexOf(';');
    const hex = (semi < 0 ? l.text : l.text.slice(0, semi)).trim();
    if (!/^[0-9a-fA-F]{1,16}$/.test(hex)) return this.fail(l.next, 'invalid chunk size');
    const size = parseInt(hex, 16);
    if (!Number.isSafeInteger(size)) return this.fail(l.next, 'invalid chunk size');
    if (size === 0) this.state = State.Trailers;
    else {
      this.remaining = size;
      this.state = State.ChunkData;
    }
    return l.next;
  }

  private trailers(buf: Buffer, i: number, end: number): number {
    const l = this.line(buf, i, end);
    if (l === null) return end;
    if (this.state === State.Error) return l.next;
    // Trailer fields are read and dropped; an empty line ends the message.
    if (l.text.length === 0) this.state = State.Done;
    return l.next;
  }
}
