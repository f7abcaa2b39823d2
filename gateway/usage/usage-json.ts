// Reads an OpenAI `usage` object straight from response bytes, without
// decoding or parsing the whole body: upstreams put it at the end of a JSON
// response and in one SSE event of a stream, with or without spaces (Python
// servers write `"usage": {`), in any field order, or as `"usage": null`.

export interface Usage {
  prompt: number;
  completion: number;
}

const USAGE = Buffer.from('"usage"');
const PROMPT = Buffer.from('"prompt_tokens"');
const COMPLETION = Buffer.from('"completion_tokens"');
const CHOICES = Buffer.from('"choices"');

const SP = 32;
const TAB = 9;
const LF = 10;
const CR = 13;
const QUOTE = 34;
const BACKSLASH = 92;
const COLON = 58;
const LBRACE = 123;
const RBRACE = 125;
const LBRACKET = 91;
const RBRACKET = 93;

function skipSpace(buf: Buffer, i: number, end: number): number {
  while (i < end) {
    const c = buf[i]!;
    if (c !== SP && c !== TAB && c !== LF && c !== CR) break;
    i++;
  }
  return i;
}

/** Index just past the `:` after a key ending at `i`, or -1 when no colon follows (the match was inside a string). */
function afterColon(buf: Buffer, i: number, end: number): number {
  i = skipSpace(buf, i, end);
  if (i >= end || buf[i] !== COLON) return -1;
  return skipSpace(buf, i + 1, end);
}

/** Index of the `}` closing the object that opens at `open`, or -1 (strings and escapes honoured). */
function objectEnd(buf: Buffer, open: number, end: number): number {
  let depth = 0;
  let inString = false;
  for (let i = open; i < end; i++) {
    const c = buf[i]!;
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === LBRACE) depth++;
    else if (c === RBRACE && --depth === 0) return i;
  }
  return -1;
}

/** The non-negative integer value of `key` inside buf[from, to), or -1. */
function intField(buf: Buffer, key: Buffer, from: number, to: number): number {
  for (let at = buf.indexOf(key, from); at >= 0 && at < to; at = buf.indexOf(key, at + 1)) {
    const v = afterColon(buf, at + key.length, to);
    if (v < 0) continue;
    let n = 0;
    let i = v;
    for (; i < to; i++) {
      const d = buf[i]! - 48;
      if (d < 0 || d > 9) break;
      n = n * 10 + d;
    }
    // Digits only: a fraction, exponent or sign is not a token count.
    if (i === v || !Number.isSafeInteger(n)) return -1;
    const c = buf[i];
    if (c === 46 || c === 101 || c === 69) return -1;
    return n;
  }
  return -1;
}

/**
 * The usage whose `"usage"` key starts at `at`: an object with an integer
 * `prompt_tokens` (and `completion_tokens`, 0 when absent, as in embeddings),
 * or null (`"usage": null`, no object, or no counts).
 */
export function usageAt(buf: Buffer, at: number, end: number): Usage | null {
  const v = afterColon(buf, at + USAGE.length, end);
  if (v < 0 || v >= end || buf[v] !== LBRACE) return null;
  const close = objectEnd(buf, v, end);
  if (close < 0) return null;
  const prompt = intField(buf, PROMPT, v, close);
  if (prompt < 0) return null;
  const completion = intField(buf, COMPLETION, v, close);
  return { prompt, completion: completion < 0 ? 0 : completion };
}

/** The last usage object in buf[start, end) (the top-level one of a JSON response is last), or null. */
export function lastUsage(buf: Buffer, start: number, end: number): Usage | null {
  for (let at = buf.lastIndexOf(USAGE, end - USAGE.length); at >= start; at = at > 0 ? buf.lastIndexOf(USAGE, at - 1) : -1) {
    const u = usageAt(buf, at, end);
    if (u !== null) return u;
    // `"usage": null` is a real key (OpenAI's chunks carry it): nothing earlier is the usage either.
    if (afterColon(buf, at + USAGE.length, end) >= 0) return null;
  }
  return null;
}

/** Whether buf[from, to) holds `"choices"` with an empty array: the usage-only chunk of a stream. */
export function hasEmptyChoices(buf: Buffer, from: number, to: number): boolean {
  for (let at = buf.indexOf(CHOICES, from); at >= 0 && at < to; at = buf.indexOf(CHOICES, at + 1)) {
    const v = afterColon(buf, at + CHOICES.length, to);
    if (v < 0) continue;
    if (v >= to || buf[v] !== LBRACKET) return false;
    const c = skipSpace(buf, v + 1, to);
    return c < to && buf[c] === RBRACKET;
  }
  return false;
}

export const USAGE_KEY = USAGE;
