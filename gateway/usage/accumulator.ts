// Token usage per key and model, counted in process and flushed to the store
// in batches (every second, and on graceful shutdown).
import type { KeyStore, UsageDelta } from '../store/types.js';

export class UsageAccumulator {
  private pending = new Map<string, UsageDelta>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly store: KeyStore | null) {}

  add(keyId: string, model: string, promptTokens: number, completionTokens: number): void {
    const k = keyId + '\u0000' + model;
    let d = this.pending.get(k);
    if (d === undefined) {
      d = { keyId, model, requests: 0, promptTokens: 0, completionTokens: 0 };
      this.pending.set(k, d);
    }
    d.requests++;
    d.promptTokens += promptTokens;
    d.completionTokens += completionTokens;
  }

  start(intervalMs = 1000): void {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  /** Writes what is pending; on failure keeps it for the next flush, so nothing is lost. */
  async flush(): Promise<void> {
    if (this.store === null || this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    try {
      await this.store.addUsage([...batch.values()]);
    } catch {
      for (const [k, d] of batch) {
        const cur = this.pending.get(k);
        if (cur === undefined) this.pending.set(k, d);
        else {
          cur.requests += d.requests;
          cur.promptTokens += d.promptTokens;
          cur.completionTokens += d.completionTokens;
        }
      }
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }
}

const PROMPT = /"prompt_tokens"\s*:\s*(\d+)/;
const COMPLETION = /"completion_tokens"\s*:\s*(\d+)/;

/** Reads prompt/completion tokens from a text holding an OpenAI `usage` object; null when there is none. */
export function parseUsage(text: string): { prompt: number; completion: number } | null {
  const i = text.lastIndexOf('"usage"');
  if (i < 0) return null;
  const tail = text.slice(i);
  const p = PROMPT.exec(tail);
  if (p === null) return null;
  const c = COMPLETION.exec(tail);
  return { prompt: Number(p[1]), completion: c === null ? 0 : Number(c[1]) };
}
