// Splits a streamed response (text/event-stream) into SSE events, whatever
// the read boundaries and line endings (LF, CRLF, CR), and examines each
// event on its own: its usage object (the totals OpenAI-compatible servers
// send last, with `"choices": []`, when asked by stream_options.include_usage;
// OpenAI also sends `"usage": null` in every other chunk), and whether it
// delivered content (for the estimate of a stream that ends without usage).
//
// Two modes. Passing (the client asked for usage itself): every chunk goes on
// as it came, and only the unfinished last event is copied aside to be
// examined once complete. Stripping (the gateway asked for usage): complete
// events go on, minus the usage-only event the client did not ask for, and
// the unfinished last event waits for its end.
//
// Cost: a few native indexOf scans per read; per event a bounded check of
// its own bytes. Nothing is decoded to a string.
import { hasEmptyChoices, USAGE_KEY, usageAt, type Usage } from './usage-json.js';

const LF = 10;
const CR = 13;
const SP = 32;
const TAB = 9;
const COLON = 58;
const QUOTE = 34;
const EMPTY = Buffer.alloc(0);

/** An event not finished within this many bytes is passed on unexamined. */
export const EVENT_LIMIT = 64 * 1024;

// Keys whose non-empty string value means the event delivered generated text.
const CONTENT_KEYS = ['"content"', '"text"', '"reasoning_content"', '"arguments"'].map((k) => Buffer.from(k));

/** The next index of `pat` at or after `from` in `buf`, reusing `cached` while it is still ahead. */
function next(buf: Buffer, pat: number | Buffer, from: number, cached: number): number {
  if (cached === -1 || cached >= from) return cached;
  return buf.indexOf(pat, from);
}

export class SseScanner {
  /** The last usage object seen in a complete event (servers with continuous usage send running totals). */
  usage: Usage | null = null;
  /** Complete events forwarded that carried generated text (one token each in the estimate). */
  contentEvents = 0;
  /** Bytes of the unfinished last event (a copy: reads come in a reused buffer). */
  private carry: Buffer | null = null;
  /** Offset in `carry` of its unfinished last line (the lines before it are complete and not blank). */
  private resumeAt = 0;
  /** The previous read ended in CR: an LF first in the next one completes that CRLF. */
  private crPending = false;
  /** Inside an oversized event, passed on unexamined until its end; `midLine`: not at a line start. */
  private skipping = false;
  private midLine = false;
  /** The event just dropped ended in a CR last in the read: a leading LF in the next one is dropped with it. */
  private dropLF = false;
  // Cached positions of the patterns in the buffer being scanned (-2: not looked up yet).
  private nLF = -2;
  private nCR = -2;
  private nUsage = -2;
  private readonly nContent = new Int32Array(CONTENT_KEYS.length);

  constructor(private strip: boolean) {}

  /** The bytes of `chunk` (a view valid only during the call) to forward now: `chunk` itself, part of it, or a new buffer. */
  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    const carried = this.carry;
    const buf = carried === null ? chunk : Buffer.concat([carried, chunk]);
    this.nLF = this.nCR = this.nUsage = -2;
    this.nContent.fill(-2);
    let i = carried === null ? 0 : this.resumeAt;
    let out: Buffer[] | null = null; // pieces to forward when an event is dropped
    let outFrom = 0;
    if (this.crPending) {
      this.crPending = false;
      if (buf[i] === LF) {
        i++;
        // The LF of a CRLF that ended an event we dropped: it goes with it.
        if (this.dropLF) outFrom = 1;
      }
    }
    this.dropLF = false;
    // The first event starts at the carried one's start, or after an LF that ended the last one.
    let evStart = carried === null ? i : 0;
    let midLine = false;
    if (this.skipping) {
      midLine = this.midLine;
      evStart = -1; // the oversized event's start is already gone
    }
    let lineStart = i;
    for (;;) {
      lineStart = i;
      this.nLF = next(buf, LF, i, this.nLF);
      this.nCR = next(buf, CR, i, this.nCR);
      const lf = this.nLF;
      const cr = this.nCR;
      const t = lf < 0 ? cr : cr < 0 ? lf : Math.min(lf, cr);
      if (t < 0) break;
      let termEnd = t + 1;
      if (buf[t] === CR) {
        // A CR last in the read ends its line either way; an LF first in the next read completes it.
        if (t + 1 === buf.length) this.crPending = true;
        else if (buf[t + 1] === LF) termEnd = t + 2;
      }
      const blank = t === lineStart && !midLine;
      midLine = false;
      i = termEnd;
      if (!blank) continue;
      if (evStart < 0) {
        // The end of the oversized event: it went on unexamined.
        this.skipping = false;
      } else if (this.event(buf, evStart, termEnd)) {
        (out ??= []).push(buf.subarray(outFrom, evStart));
        outFrom = termEnd;
        this.dropLF = this.crPending;
      }
      evStart = termEnd;
    }

    // What is left is an unfinished event: [evStart, end), its last line from lineStart.
    const end = buf.length;
    let keepFrom = end;
    if (evStart < 0) {
      // Still inside the oversized event: it all goes on.
      this.midLine = lineStart < end;
    } else if (end - evStart > EVENT_LIMIT) {
      // No end in sight: not an event we can examine. Pass it on and skip to its end.
      this.skipping = true;
      this.midLine = lineStart < end;
    } else keepFrom = evStart;
    if (keepFrom < end) {
      this.carry = buf === chunk || keepFrom > 0 ? Buffer.from(buf.subarray(keepFrom)) : buf;
      this.resumeAt = lineStart - keepFrom;
    } else {
      this.carry = null;
      this.resumeAt = 0;
    }
    if (!this.strip) return chunk;
    if (out !== null) return concatOut(out, buf, outFrom, keepFrom);
    if (outFrom === 0 && keepFrom === end) return buf;
    return keepFrom > outFrom ? buf.subarray(outFrom, keepFrom) : EMPTY;
  }

  /** At the end of the body: the unfinished event still held back (stripping), or null. */
  end(): Buffer | null {
    const rest = this.strip ? this.carry : null;
    this.carry = null;
    return rest;
  }

  /** Examines the complete event buf[s, e); true when it must be dropped (the usage-only event we asked for). */
  private event(buf: Buffer, s: number, e: number): boolean {
    this.nUsage = next(buf, USAGE_KEY, s, this.nUsage);
    const at = this.nUsage;
    if (at >= 0 && at < e) {
      const u = usageAt(buf, at, e);
      if (u !== null) {
        this.usage = u;
        if (this.strip && hasEmptyChoices(buf, s, e)) return true;
      }
    }
    const c = this.nContent;
    for (let k = 0; k < CONTENT_KEYS.length; k++) {
      const key = CONTENT_KEYS[k]!;
      c[k] = next(buf, key, s, c[k]!);
      const p = c[k]!;
      if (p >= 0 && p < e && nonEmptyString(buf, p + key.length, e)) {
        this.contentEvents++;
        break;
      }
    }
    return false;
  }
}

/** Whether a `: "x…"` (a string of at least one character) follows at i. */
function nonEmptyString(buf: Buffer, i: number, end: number): boolean {
  while (i < end && (buf[i] === SP || buf[i] === TAB)) i++;
  if (i >= end || buf[i] !== COLON) return false;
  i++;
  while (i < end && (buf[i] === SP || buf[i] === TAB)) i++;
  return i + 1 < end && buf[i] === QUOTE && buf[i + 1] !== QUOTE;
}

function concatOut(out: Buffer[], buf: Buffer, from: number, to: number): Buffer {
  if (to > from) out.push(buf.subarray(from, to));
  return out.length === 1 ? out[0]! : Buffer.concat(out);
}
