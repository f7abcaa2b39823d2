// Progress on stderr while a run goes (stdout stays free for --json): a
// cli-progress bar on a terminal, a plain line a second otherwise.
import cliProgress from 'cli-progress';
import type { Progress } from './run.js';

export interface ProgressSink {
  update: (p: Progress) => void;
  stop: () => void;
}

function fraction(p: Progress): { value: number; total: number } {
  if (p.total !== null) return { value: p.done, total: p.total };
  const d = p.durationS ?? 1;
  return { value: Math.min(d, Math.round(p.elapsedS * 10) / 10), total: d };
}

export function progressReporter(stream: NodeJS.WriteStream = process.stderr): ProgressSink {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format: ' {bar} {percentage}% | {done} done | {rps} req/s | {errors} errors | {phase}',
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(p) {
        const f = fraction(p);
        const payload = { done: p.done, rps: p.rps.toFixed(0), errors: p.errors, phase: p.phase };
        if (!started) {
          bar.start(f.total, f.value, payload);
          started = true;
        } else bar.update(f.value, payload);
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  let last = 0;
  let latest: Progress | null = null;
  const line = (p: Progress): string => {
    const of = p.total !== null ? `${p.done}/${p.total}` : `${p.done} in ${p.elapsedS.toFixed(1)}/${p.durationS}s`;
    return `loadgen: ${p.phase} ${of} requests, ${p.rps.toFixed(0)} req/s, ${p.errors} errors\n`;
  };
  return {
    update(p) {
      latest = p;
      const now = Date.now();
      if (now - last < 1000) return;
      last = now;
      latest = null;
      stream.write(line(p));
    },
    stop() {
      // The final count, unless it was the last line written.
      if (latest) stream.write(line(latest));
    },
  };
}
