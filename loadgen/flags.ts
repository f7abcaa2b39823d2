// Flag parsers the load generator needs beyond common/cli-args.ts. Like those,
// each throws InvalidArgumentError saying what the value must be.
import { InvalidArgumentError } from 'commander';
import { TOKEN } from './spec.js';

const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };

/** A time span in seconds: "10", "10s", "500ms", "2m", "1h". */
export function seconds(min: number): (v: string) => number {
  return (v) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(v);
    const n = m ? Number(m[1]) * UNITS[m[2] ?? 's']! : NaN;
    if (!Number.isFinite(n) || n < min || (min === 0 ? false : n === 0)) {
      throw new InvalidArgumentError(`must be a time span such as 10, 10s, 500ms or 2m${min > 0 ? ', above 0' : ''}.`);
    }
    return n;
  };
}

export function positiveNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a number above 0.');
  return n;
}

/** `--header name:value`, repeatable; collects into a record. */
export function header(v: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = v.indexOf(':');
  const name = i > 0 ? v.slice(0, i).trim() : '';
  if (!TOKEN.test(name)) throw new InvalidArgumentError('must be name:value, with a valid header name.');
  return { ...previous, [name.toLowerCase()]: v.slice(i + 1).trim() };
}
