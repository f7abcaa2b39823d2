// Token usage per key and model, counted in process and flushed to the store
// in batches (every second, and on graceful shutdown).
//
// Exactly once: each batch has an id, and a batch whose write failed is sent again with the same
// id and the same deltas until the store confirms it (the store applies an id at most once). Only
// one batch is outstanding at a time: while it is unconfirmed, new usage waits in `pending`, so
// during an outage memory holds at most two sets of per-key-and-model counters, however long it
// lasts. A batch the store certainly never applied (NotAppliedError) takes in what is pending
// before its next attempt. Nothing is dropped unlogged: a batch that cannot be confirmed (its id
// too old for the store to tell, see USAGE_BATCH_MAX_AGE_MS, or stop() ran out of time) is passed
// to onError with its amounts.
import { randomBytes } from 'node:crypto';
import { NotAppliedError } from '../store/common.js';
import type { KeyStore, UsageDelta } from '../store/types.js';

export interface UsageAccumulatorOptions {
  /** Where failures go: the first failed write of a run of them, and every amount not written. */
  onError?: (msg: string, fields: Record<string, unknown>) => void;
  /** How long stop() keeps trying to write what is left (default 3000 ms; the primary kills a worker 5 s after its drain). */
  stopTimeoutMs?: number;
  /** Attempts stop() makes within stopTimeoutMs (default 4). */
  stopAttempts?: number;
}

interface Batch {
  id: string;
  deltas: UsageDelta[];
  /** When the first attempt that may have reached the store was made; null while none may have. */
  sentAt: number | null;
}

export class UsageAccumulator {
  private pending = new Map<string, UsageDelta>();
  /** The batch being written or waiting to be written again; new usage waits until it is confirmed. */
  private batch: Batch | null = null;
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  private failures = 0;
  private readonly onError: (msg: string, fields: Record<string, unknown>) => void;
  private readonly stopTimeoutMs: number;
  private readonly stopAttempts: number;

  constructor(
    private readonly store: KeyStore | null,
    opts: UsageAccumulatorOptions = {},
  ) {
    this.onError = opts.onError ?? (() => undefined);
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 3000;
    this.stopAttempts = Math.max(1, opts.stopAttempts ?? 4);
  }

  /** `estimated`: the tokens were estimated by the gateway, not reported by the upstream (a stream the client cut, a response without usage). */
  add(keyId: string, model: string, promptTokens: number, completionTokens: number, estimated = false): void {
    const k = keyId + '\u0000' + model;
    let d = this.pending.get(k);
    if (d === undefined) {
      d = { keyId, model, requests: 0, promptTokens: 0, completionTokens: 0, estimatedRequests: 0 };
      this.pending.set(k, d);
    }
    d.requests++;
    if (estimated) d.estimatedRequests = (d.estimatedRequests ?? 0) + 1;
    d.promptTokens += promptTokens;
    d.completionTokens += completionTokens;
  }

  start(intervalMs = 1000): void {
    this.timer = setInterval(() => {
      // A write still running (Redis slow) is not joined by another: the next tick comes soon.
      if (this.flushing === null) void this.flush();
    }, intervalMs);
    this.timer.unref();
  }

  /**
   * Writes what is pending (after the outstanding batch, if any). Never rejects: what could not
   * be written stays for the next flush. A flush called while one runs waits for it and then
   * writes what came in meanwhile.
   */
  flush(): Promise<void> {
    if (this.flushing === null) {
      this.flushing = this.writeOnce().finally(() => (this.flushing = null));
      return this.flushing;
    }
    this.queued ??= this.flushing.then(() => {
      this.queued = null;
      return this.flush();
    });
    return this.queued;
  }

  /** Nothing waiting to be written. */
  get idle(): boolean {
    return this.batch === null && this.pending.size === 0;
  }

  private async writeOnce(): Promise<void> {
    if (this.store === null) return;
    if (this.batch !== null) {
      if (this.batch.sentAt === null) this.takePending(this.batch);
      if (!(await this.write(this.batch))) return;
    }
    if (this.pending.size === 0) return;
    this.batch = { id: randomBytes(12).toString('base64url'), deltas: [...this.pending.values()], sentAt: null };
    this.pending = new Map();
    await this.write(this.batch);
  }

  /** A batch no attempt of which reached the store may still change: it takes in what is pending. */
  private takePending(b: Batch): void {
    if (this.pending.size === 0) return;
    const byKey = new Map(b.deltas.map((d) => [d.keyId + '\u0000' + d.model, d]));
    for (const [k, d] of this.pending) {
      const cur = byKey.get(k);
      if (cur === undefined) b.deltas.push(d);
      else {
        cur.requests += d.requests;
        cur.promptTokens += d.promptTokens;
        cur.completionTokens += d.completionTokens;
        cur.estimatedRequests = (cur.estimatedRequests ?? 0) + (d.estimatedRequests ?? 0);
      }
    }
    this.pending = new Map();
  }

  /** One attempt at the outstanding batch; true when the store confirmed it (it is then cleared). */
  private async write(b: Batch): Promise<boolean> {
    const now = Date.now();
    const sentAt = b.sentAt;
    b.sentAt ??= now;
    try {
      await this.store!.addUsage(b.deltas, { id: b.id, firstSentAt: b.sentAt });
    } catch (err) {
      const notApplied = err instanceof NotAppliedError;
      if (notApplied && err.reason === 'expired') {
        // The store can no longer tell whether an earlier attempt applied it: retrying could count it twice.
        this.giveUp(b, 'unknown', 'usage batch unconfirmed for too long; not retried');
        return true;
      }
      if (notApplied) b.sentAt = sentAt;
      if (this.failures++ === 0)
        this.onError('usage flush failed; keeping the batch to write again', { err: err instanceof Error ? err.message : String(err), batchId: b.id });
      return false;
    }
    if (this.batch === b) this.batch = null;
    this.failures = 0;
    return true;
  }

  private giveUp(b: Batch, applied: 'no' | 'unknown', msg: string): void {
    if (this.batch === b) this.batch = null;
    this.onError(msg, { batchId: b.id, applied, usage: b.deltas.map(amounts) });
  }

  /**
   * Stops the timer, waits for a write in flight, then tries to write the rest: up to
   * stopAttempts attempts with a short backoff, within stopTimeoutMs in all. What is still not
   * written then is passed to onError with its amounts, per key and model.
   */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const deadline = Date.now() + this.stopTimeoutMs;
    let backoff = 100;
    for (let attempt = 0; attempt < this.stopAttempts && !this.idle; attempt++) {
      if (attempt > 0) {
        if (Date.now() + backoff >= deadline) break;
        await sleep(backoff);
        backoff *= 2;
      }
      // flush() waits for a write already in flight, then writes what is left.
      if (!(await beforeDeadline(this.flush(), deadline))) break;
    }
    if (this.store === null || this.idle) return;
    if (this.batch !== null)
      this.giveUp(this.batch, this.batch.sentAt === null ? 'no' : 'unknown', 'usage not written to the store at shutdown');
    if (this.pending.size > 0) {
      const b: Batch = { id: '-', deltas: [...this.pending.values()], sentAt: null };
      this.pending = new Map();
      this.giveUp(b, 'no', 'usage not written to the store at shutdown');
    }
  }
}

function amounts(d: UsageDelta): Record<string, unknown> {
  return {
    keyId: d.keyId,
    model: d.model,
    requests: d.requests,
    promptTokens: d.promptTokens,
    completionTokens: d.completionTokens,
    estimatedRequests: d.estimatedRequests ?? 0,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Whether `p` settled before `deadline` (ms since the epoch). */
async function beforeDeadline(p: Promise<unknown>, deadline: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((r) => (timer = setTimeout(() => r(false), Math.max(0, deadline - Date.now()))));
  try {
    return await Promise.race([p.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}
