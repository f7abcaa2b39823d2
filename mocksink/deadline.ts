// Precise waits for the sink: a response starts at (arrival + wait), as close
// as Node's timers allow, without spinning.
//
// Why. A closed-loop client of a 100 ms sink cycles every 100 ms plus whatever
// the sink adds, so every 1 ms of lateness costs 1% of the rate a benchmark
// reads as "theoretical". A plain setTimeout(fn, wait) started once the body
// has been read answered 0.6–1 ms late on average:
//  - the clock started after the body was read, not when the request arrived;
//  - Node's timers count whole milliseconds of libuv's loop clock (uv_now:
//    CLOCK_MONOTONIC floored to ms). setTimeout(fn, n) called during loop ms k
//    fires on the first loop turn whose clock reads >= k + n, and the loop
//    reaches that turn only after an epoll_wait whose timeout is whole ms,
//    counted from a loop time that is already stale by the time it polls.
//    So it fires 0–1+ ms after its nominal time, and always after ms k + n.
// Sub-millisecond wake-ups would need a spinning loop, and the sink shares its
// cores with the system under test, so instead:
//  1. the wait is counted from the request's arrival at the handler (a body
//     that trickles in does not add to it; one slower than the wait is
//     answered as soon as it is read);
//  2. the timer is asked for the first loop millisecond at or after
//     (due - L), where L is the learned lateness of this process's timers:
//     an EWMA of (fire time - asked-for time), each sample capped, L bounded
//     to [0, MAX_COMPENSATION_MS]. With the loop-ms arithmetic below a timer
//     never fires before the time it was asked for, so a response is never
//     earlier than (arrival + wait - L); on average it starts at arrival + wait.
//     L settles near 1 ms here (measured: a timer fires 1.06 ms after the
//     time asked for, on average: up to one ms of rounding up to the next
//     loop ms, and the poll's own lateness); 1–1.6 ms on a loaded machine.
//     So a single response may be up to L (at most 2 ms, typically ~1 ms)
//     early or about a ms late; the mean, which is what a closed-loop client's
//     rate sees, is ~0 (measured: +0.05 to +0.2 ms at 1000 waits/s; the plain
//     timer was +0.6 to +1 ms, issue 5).
// The sink's own measurement is in /sink/stats under `wait` (µs).
import { performance } from 'node:perf_hooks';

/** The bound of the learned lateness, and of one lateness sample. */
export const MAX_COMPENSATION_MS = 2;
/** EWMA weight of one sample: at 1000 waits/s, L follows a change within ~0.1 s. */
const ALPHA = 1 / 64;

/**
 * performance.now() + HR_OFFSET_MS = libuv's clock (uv_hrtime, the one uv_now
 * floors) in ms. Both read CLOCK_MONOTONIC; the offset is measured over the
 * tightest of a few back-to-back readings (error well under 1 µs).
 */
const HR_OFFSET_MS = ((): number => {
  let best = Infinity;
  let offset = 0;
  for (let i = 0; i < 16; i++) {
    const a = process.hrtime.bigint();
    const p = performance.now();
    const b = process.hrtime.bigint();
    const span = Number(b - a);
    if (span < best) {
      best = span;
      offset = Number((a + b) / 2n) / 1e6 - p;
    }
  }
  return offset;
})();

export interface WaitStats {
  /** Responses that waited (wait > 0). */
  responses: number;
  /** Response start minus (arrival + wait), µs: mean, min, max (negative: early). */
  meanLateUs: number;
  minLateUs: number;
  maxLateUs: number;
  /** The current learned timer lateness L each wait is shortened by, µs. */
  compensationUs: number;
}

export class Deadlines {
  /** Updated in place; the sink serves it in /sink/stats. */
  readonly stats: WaitStats = { responses: 0, meanLateUs: 0, minLateUs: 0, maxLateUs: 0, compensationUs: 0 };
  private lateMs = 0;
  private sumLateMs = 0;

  /**
   * Runs fn at `due` (a performance.now() time) as closely as the timers allow,
   * or at once when due - L has passed. Returns the timer (to clear), or null.
   */
  at(due: number, fn: () => void): NodeJS.Timeout | null {
    const now = performance.now();
    const target = due - this.lateMs;
    // Whole loop ms from now to the first loop ms at or after target: the
    // timer's start is floor(now) on the loop clock, and it fires no sooner
    // than that plus ms.
    const ms = Math.ceil(target + HR_OFFSET_MS) - Math.floor(now + HR_OFFSET_MS);
    if (ms < 1) {
      this.record(now - due);
      fn();
      return null;
    }
    return setTimeout(() => {
      const t = performance.now();
      this.learn(t - target);
      this.record(t - due);
      fn();
    }, ms);
  }

  private learn(lateMs: number): void {
    const sample = Math.min(Math.max(lateMs, 0), MAX_COMPENSATION_MS);
    this.lateMs = Math.min(Math.max(this.lateMs + ALPHA * (sample - this.lateMs), 0), MAX_COMPENSATION_MS);
    this.stats.compensationUs = Math.round(this.lateMs * 1000);
  }

  private record(lateMs: number): void {
    const s = this.stats;
    const us = Math.round(lateMs * 1000);
    if (s.responses === 0 || us < s.minLateUs) s.minLateUs = us;
    if (s.responses === 0 || us > s.maxLateUs) s.maxLateUs = us;
    s.responses++;
    this.sumLateMs += lateMs;
    s.meanLateUs = Math.round((this.sumLateMs / s.responses) * 1000);
  }
}
