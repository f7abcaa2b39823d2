// One worker thread of the load generator (a piscina task): runs its share of
// the workers, each over its own undici keep-alive Client (one connection),
// through the low-level dispatch API (no promise, stream or body object per
// request), and records latencies in microseconds into its own histograms,
// which it returns encoded. An undici Pool would pick the connection: it scans
// its clients for a free one twice per dispatch and relays every client's
// drain, O(connections) per request; a worker that owns its connection needs
// none of that (at 100 workers this thread's CPU per request fell ~10%).
import { Client, type Dispatcher } from 'undici';
import { performance } from 'node:perf_hooks';
import { chatBody } from './body.js';
import { SLOT, type ThreadResult, type ThreadTask } from './shared.js';
import { encode, newHistogram, zeroErrors, type ErrorKind, type RawCounts } from './result.js';

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNABORTED']);

export function errorKind(err: Error): ErrorKind {
  const e = err as Error & { code?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code ?? '';
  if (code === 'ECONNREFUSED') return 'refused';
  if (TIMEOUT_CODES.has(code)) return 'timeout';
  if (RESET_CODES.has(code)) return 'reset';
  return 'other';
}

// One SSE event that carries generated text: a chat delta with non-empty
// content, or a completion chunk with non-empty text. The role chunk
// ("content":"") and the usage and [DONE] events do not match.
const TOKEN_EVENT = /"(?:content|text)":"(?!")/g;

type Outcome = (x: Exchange, err: Error | null) => void;

/**
 * One request in flight; each worker slot reuses its own. It implements
 * undici's legacy handler interface (onConnect … onComplete), which the
 * client calls directly; the newer controller interface adds a wrapper per request.
 */
class Exchange {
  status = 0;
  /**
   * Intended (open loop) or actual (closed loop) send time, performance.now()
   * ms. Closed loop, on a connection already open: the time undici writes the
   * request (onConnect), not the time it was handed to undici, which defers
   * the write of a request on an idle keep-alive socket to the check phase.
   */
  start = 0;
  /** The last exchange on this slot's connection ended well: the next request reuses it. */
  private reusing = false;
  firstToken = 0;
  lastToken = 0;
  carry = '';
  done = false;
  /** Measured phase, closed loop: this worker's first send, last counted outcome, outcomes counted. */
  firstSend = 0;
  lastDone = 0;
  counted = 0;
  constructor(
    /** This slot's keep-alive connection. */
    readonly client: Client,
    /** Closed loop: time from the write (see start). */
    private readonly timedAtWrite: boolean,
    private readonly outcome: Outcome,
    private readonly onTokens: ((x: Exchange, n: number) => void) | null,
  ) {}

  reset(start: number): void {
    this.status = 0;
    this.start = start;
    this.firstToken = 0;
    this.lastToken = 0;
    this.carry = '';
    this.done = false;
  }

  onConnect(): void {
    // A fresh connection's first request keeps its dispatch time: it includes the connect.
    if (this.timedAtWrite && this.reusing) this.start = performance.now();
  }

  onHeaders(statusCode: number): boolean {
    this.status = statusCode;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.onTokens === null || this.status !== 200) return true;
    const text = this.carry + chunk.toString('latin1');
    const end = text.lastIndexOf('\n\n');
    if (end < 0) {
      this.carry = text;
      return true;
    }
    this.carry = text.slice(end + 2);
    const n = text.slice(0, end).match(TOKEN_EVENT)?.length ?? 0;
    if (n > 0) this.onTokens(this, n);
    return true;
  }

  onComplete(): void {
    if (this.done) return;
    this.done = true;
    this.reusing = true;
    this.outcome(this, null);
  }

  onError(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.reusing = false;
    // Reported on the next turn, never from inside undici: it calls onError
    // from loops over its queue (a failed connect fails every queued request
    // and then checks the queue is empty) and from inside dispatch, where the
    // next request this outcome dispatches must not land.
    setImmediate(() => this.outcome(this, err));
  }
}

const us = (ms: number): number => Math.max(1, Math.round(ms * 1000));

export default async function runThread(task: ThreadTask): Promise<ThreadResult> {
  const { spec } = task;
  const shared = new Int32Array(task.sab);
  const url = new URL(spec.url);
  const timeoutMs = spec.timeoutS * 1000;
  const clientOpts: Client.Options = {
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connectTimeout: timeoutMs,
  };
  const headers: string[] = ['content-type', 'application/json'];
  if (spec.key) headers.push('authorization', `Bearer ${spec.key}`);
  for (const [k, v] of Object.entries(spec.headers)) headers.push(k, v);
  const dispatchOpts: Dispatcher.DispatchOptions = {
    origin: url.origin,
    path: `${url.pathname.replace(/\/+$/, '')}/chat/completions`,
    method: 'POST',
    headers,
    body: chatBody(spec.requestBytes, spec.model, spec.stream),
  };

  const lat = newHistogram();
  const ttft = spec.stream ? newHistogram() : null;
  const itl = spec.stream ? newHistogram() : null;
  const counts: RawCounts = { requests: 0, ok: 0, errorsByKind: zeroErrors(), errorsByStatus: {} };

  // Phase: 0 warm-up (nothing counted), 1 measuring, 2 over (late completions ignored).
  let phase = 0;
  let goAt = 0;
  let endAt = 0;
  let inFlight = 0;
  let arrivalsOver = false;
  let finish: () => void = () => {};

  const countError = (kind: ErrorKind, status = 0): void => {
    counts.requests++;
    counts.errorsByKind[kind]++;
    if (status) counts.errorsByStatus[status] = (counts.errorsByStatus[status] ?? 0) + 1;
    Atomics.add(shared, SLOT.DONE, 1);
    Atomics.add(shared, SLOT.ERRORS, 1);
  };

  const onTokens = (x: Exchange, n: number): void => {
    const now = performance.now();
    if (phase === 1) {
      if (x.firstToken === 0) ttft!.recordValue(us(now - x.start));
      else itl!.recordValue(us(now - x.lastToken));
      // Tokens that arrived in the same read were 0 ms apart for this client.
      if (n > 1) itl!.recordValueWithCount(1, n - 1);
    }
    if (x.firstToken === 0) x.firstToken = now;
    x.lastToken = now;
  };

  // What happens after each request; set per phase and mode below.
  let next: (x: Exchange) => void = () => {};

  const outcome: Outcome = (x, err) => {
    inFlight--;
    if (phase === 1) {
      const now = performance.now();
      if (err !== null) countError(errorKind(err));
      else if (x.status >= 200 && x.status < 300) {
        lat.recordValue(us(now - x.start));
        counts.requests++;
        counts.ok++;
        Atomics.add(shared, SLOT.DONE, 1);
      } else if (x.status >= 500) countError('5xx', x.status);
      else if (x.status >= 400) countError('4xx', x.status);
      else countError('other', x.status);
      if (now > endAt) endAt = now;
      x.counted++;
      x.lastDone = now;
    }
    next(x);
  };

  const send = (x: Exchange, start: number): void => {
    if (phase === 1 && x.firstSend === 0) x.firstSend = start;
    inFlight++;
    x.reset(start);
    try {
      x.client.dispatch(dispatchOpts, x as unknown as Dispatcher.DispatchHandler);
    } catch (err) {
      x.onError(err as Error);
    }
  };

  const slots: Exchange[] = [];
  for (let i = 0; i < task.workers; i++) slots.push(new Exchange(new Client(url.origin, clientOpts), task.rate === undefined, outcome, spec.stream ? onTokens : null));

  const stopped = (): boolean => Atomics.load(shared, SLOT.STOP) === 1;

  // Warm-up: closed loop, nothing counted, no tickets claimed; it measures the
  // mean latency (the closed-loop cycle) that the measured phase spreads its
  // workers' starts over.
  let warmSum = 0;
  let warmN = 0;
  if (spec.warmupS > 0) {
    const until = performance.now() + spec.warmupS * 1000;
    await new Promise<void>((resolve) => {
      // A cancel does not wait for the requests in flight (up to the timeout each).
      const stopPoll = setInterval(() => stopped() && end(), 25);
      const end = (): void => {
        clearInterval(stopPoll);
        resolve();
      };
      next = (x) => {
        warmSum += performance.now() - x.start;
        warmN++;
        if (performance.now() < until && !stopped()) send(x, performance.now());
        else if (inFlight === 0) end();
      };
      for (const x of slots) send(x, performance.now());
    });
  }
  if (stopped()) {
    // Canceled before measuring: abort what is in flight (destroy fails it,
    // and nothing counts it now), count nothing.
    phase = 2;
    next = () => {};
    await Promise.all(slots.map((x) => x.client.destroy().catch(() => {})));
    return {
      ...counts,
      elapsedMs: 0,
      histogram: encode(lat),
      ...(ttft && itl ? { ttftHistogram: encode(ttft), itlHistogram: encode(itl) } : {}),
    };
  }

  // Wait for every thread, then start together.
  Atomics.add(shared, SLOT.READY, 1);
  Atomics.notify(shared, SLOT.READY);
  const waitAsync = (Atomics as unknown as { waitAsync?: (a: Int32Array, i: number, v: number) => { async: boolean; value: Promise<string> | string } }).waitAsync;
  while (Atomics.load(shared, SLOT.GO) === 0) {
    if (waitAsync) {
      const w = waitAsync(shared, SLOT.GO, 0);
      if (w.async) await w.value;
    } else await new Promise((r) => setTimeout(r, 1));
  }
  phase = 1;
  goAt = performance.now();
  endAt = goAt;
  const deadline = spec.durationS !== undefined ? goAt + spec.durationS * 1000 : Infinity;
  const total = spec.requests ?? Infinity;
  const claim = (): boolean => spec.requests === undefined || Atomics.add(shared, SLOT.CLAIMED, 1) < total;

  await new Promise<void>((resolve) => {
    let over = false;
    let tickTimer: NodeJS.Timeout | null = null;
    const startTimers: NodeJS.Timeout[] = [];
    const deadlineTimer = deadline !== Infinity ? setTimeout(() => finish(), deadline - goAt) : null;
    const stopPoll = setInterval(() => stopped() && finish(), 25);
    finish = () => {
      if (over) return;
      over = true;
      // Requests still in flight at the deadline or a cancel are not counted.
      phase = 2;
      clearInterval(stopPoll);
      if (deadlineTimer) clearTimeout(deadlineTimer);
      if (tickTimer) clearTimeout(tickTimer);
      for (const st of startTimers) clearTimeout(st);
      resolve();
    };

    if (task.rate === undefined) {
      // Closed loop: each worker dispatches its next request as soon as the
      // last one ends, from inside onComplete. undici writes it on the check
      // phase of this loop turn (it reuses a keep-alive socket only after
      // setImmediate), so the responses that arrived together are all
      // timestamped before any of the next requests is written (a write costs
      // tens of µs; 100 of them would add milliseconds to the last response's
      // measured latency), and the send time is taken at the write (onConnect).
      // A deferral of our own on top of undici's cost a whole extra loop turn
      // per request: undici defers a request dispatched onto an idle socket
      // once more (its idle-socket check), to the next turn's check phase.
      /** Workers whose first request is still to come (their start is spread, below). */
      let starting = 0;
      next = (x) => {
        if (over) return;
        const now = performance.now();
        if (!stopped() && now < deadline && claim()) send(x, now);
        else if (inFlight === 0 && starting === 0) finish();
      };
      // The workers' first requests are spread evenly over one cycle (the
      // warm-up's mean latency; without a warm-up they all start at once).
      // Started together, closed-loop users stay together for the whole run:
      // every cycle, all of them hit the server within a few ms and all their
      // responses come back within a few ms, and both the server and this
      // process serialise the burst (tens of µs per request each), which adds
      // ~1 ms to the mean latency and several to p99 at 100 users of a 100 ms
      // sink, and makes the run measure its own burst handling. Spread, they
      // form the steady stream that "N concurrent users" means. The rate is
      // then counted per worker (see elapsedMs below), so the ramp does not
      // count against it.
      // A tenth of the run at most: a slow server must not keep users from starting.
      const spread = Math.min(warmN > 0 ? warmSum / warmN : 0, (deadline - goAt) / 10);
      if (!(spread >= 2)) {
        // Under ~2 ms, ms timers cannot spread anything, and bursts are brief.
        for (const x of slots) next(x);
        return;
      }
      const threads = Math.min(spec.threads, spec.workers);
      const now: Exchange[] = [];
      slots.forEach((x, i) => {
        // Interleaved with the other threads' workers: global index i * threads + index.
        const offset = Math.floor(((i * threads + task.index) / spec.workers) * spread);
        if (offset === 0) now.push(x);
        else {
          starting++;
          startTimers.push(
            setTimeout(() => {
              starting--;
              next(x);
            }, offset),
          );
        }
      });
      for (const x of now) next(x);
      return;
    }

    // Open loop: arrivals on a schedule, each timed from its intended send time
    // (so a stalled server shows in the latencies instead of slowing the
    // arrivals: no coordinated omission). An arrival with no free slot is dropped.
    const rate = task.rate;
    const free: Exchange[] = [...slots];
    next = (x) => {
      free.push(x);
      if (arrivalsOver && inFlight === 0) finish();
    };
    let arrival = goAt + task.phaseMs;
    const gap = (): number => (spec.arrival === 'poisson' ? (-Math.log(1 - Math.random()) * 1000) / rate : 1000 / rate);
    const tick = (): void => {
      tickTimer = null;
      if (over) return;
      const now = performance.now();
      let steps = 0;
      while (arrival <= now) {
        // Behind schedule, this loop may take longer than the run: the clock
        // ends it too, every 1024 arrivals.
        if (stopped() || arrival >= deadline || ((++steps & 1023) === 0 && performance.now() >= deadline) || !claim()) {
          arrivalsOver = true;
          if (inFlight === 0) finish();
          return;
        }
        const x = free.pop();
        if (x) send(x, arrival);
        else {
          countError('dropped');
          if (arrival > endAt) endAt = arrival;
        }
        arrival += gap();
      }
      tickTimer = setTimeout(tick, arrival - now);
    };
    tick();
  });

  // Open loop: the rate is counted over GO to the last counted completion, not
  // to the deadline (a deadline that cuts between completions would count the
  // time but not the requests). Closed loop: per worker, over its own first
  // send to its last counted outcome, summed over the workers, and elapsedMs is
  // requests / that rate: exact for back-to-back requests, whether the workers
  // started together (then it equals GO..last completion) or spread over the
  // first cycle (then the ramp, with fewer than all workers busy, does not
  // count against the rate).
  let elapsedMs = counts.requests > 0 ? endAt - goAt : Math.min(performance.now(), deadline) - goAt;
  if (task.rate === undefined && counts.requests > 0) {
    let perMs = 0;
    for (const x of slots) if (x.counted > 0 && x.lastDone > x.firstSend) perMs += x.counted / (x.lastDone - x.firstSend);
    if (perMs > 0) elapsedMs = counts.requests / perMs;
  }
  await Promise.all(slots.map((x) => x.client.destroy().catch(() => {})));
  return {
    ...counts,
    elapsedMs,
    histogram: encode(lat),
    ...(ttft && itl ? { ttftHistogram: encode(ttft), itlHistogram: encode(itl) } : {}),
  };
}
