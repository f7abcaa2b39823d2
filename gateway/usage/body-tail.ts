// The last bytes of a response too large to buffer (or chunked): enough to
// read its usage, which OpenAI-compatible servers put at the end of the JSON.
import { lastUsage, type Usage } from './usage-json.js';

/** Bytes kept: the usage object and what servers write after it (service_tier, system_fingerprint, prompt_logprobs …). */
export const TAIL_BYTES = 16 * 1024;

export class BodyTail {
  private readonly buf = Buffer.allocUnsafe(TAIL_BYTES);
  private len = 0;

  /** Keeps the last TAIL_BYTES of what was pushed (`chunk` may be a view of a reused buffer: it is copied). */
  push(chunk: Buffer): void {
    const n = chunk.length;
    if (n >= TAIL_BYTES) {
      chunk.copy(this.buf, 0, n - TAIL_BYTES);
      this.len = TAIL_BYTES;
      return;
    }
    if (this.len + n > TAIL_BYTES) {
      const keep = TAIL_BYTES - n;
      this.buf.copy(this.buf, 0, this.len - keep, this.len);
      this.len = keep;
    }
    chunk.copy(this.buf, this.len);
    this.len += n;
  }

  usage(): Usage | null {
    return lastUsage(this.buf, 0, this.len);
  }
}
