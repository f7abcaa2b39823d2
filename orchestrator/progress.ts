// The run's progress on stderr: a bar with the cell and an ETA on a terminal,
// plain lines (a cell started, finished, skipped) otherwise.
import cliProgress from 'cli-progress';
import type { PlannedUnit, RunEvent } from './runner.js';

export function benchProgress(stream: NodeJS.WriteStream = process.stderr): { onEvent: (e: RunEvent) => void; stop: () => void } {
  let units: PlannedUnit[] = [];
  let total = 0;
  let doneSeconds = 0;
  let current = -1;
  let unitStart = 0;
  const tty = stream.isTTY === true;
  const bar = tty
    ? new cliProgress.SingleBar(
        { stream, format: ' {bar} {percentage}% | ETA {eta_formatted} | {cell} {detail}', hideCursor: true, clearOnComplete: true, etaBuffer: 50, fps: 5 },
        cliProgress.Presets.shades_classic,
      )
    : null;
  const secondsBefore = (i: number): number => units.slice(0, i).reduce((s, u) => s + u.seconds, 0);
  const log = (line: string): void => {
    if (bar) {
      // Print above the bar.
      stream.write('\r\x1b[2K' + line + '\n');
    } else stream.write(line + '\n');
  };
  return {
    onEvent(e) {
      switch (e.type) {
        case 'plan':
          units = e.units;
          total = Math.max(1, Math.round(units.reduce((s, u) => s + u.seconds, 0)));
          if (bar) bar.start(total, 0, { cell: '', detail: '' });
          else stream.write(`sluice bench: ${units.length} cells, about ${Math.ceil(total / 60)} min\n`);
          break;
        case 'start':
          current = e.unit;
          unitStart = Date.now();
          doneSeconds = secondsBefore(e.unit);
          if (bar) bar.update(Math.round(doneSeconds), { cell: e.label, detail: '' });
          else stream.write(`[${e.unit + 1}/${units.length}] ${e.label} …\n`);
          break;
        case 'progress': {
          if (!bar || e.unit !== current) break;
          const p = e.progress;
          const planned = units[e.unit]?.seconds ?? 0;
          const inUnit = Math.min(planned, (Date.now() - unitStart) / 1000);
          bar.update(Math.round(doneSeconds + inUnit), { cell: e.label, detail: `| ${p.phase} ${p.rps.toFixed(0)} req/s ${p.errors} errors` });
          break;
        }
        case 'done':
          if (!bar) stream.write(`[${e.unit + 1}/${units.length}] ${e.label} done in ${((Date.now() - unitStart) / 1000).toFixed(1)} s\n`);
          break;
        case 'skip':
          log(`skipped ${e.system}${e.scenario ? ` in ${e.scenario}` : ''}: ${e.reason}`);
          break;
      }
    },
    stop() {
      if (bar) bar.stop();
    },
  };
}
