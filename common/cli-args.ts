// Option parsers for commander: each throws InvalidArgumentError with what the
// value must be, which the CLI prints as one line before exiting with code 2.
import { InvalidArgumentError } from 'commander';

/** Plain decimal notation, as a user means a number (Number() would also take 0x10, 0b1, 0o7). */
const DECIMAL = /^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$/;

export function integer(min: number, max = Number.MAX_SAFE_INTEGER): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!DECIMAL.test(v) || !Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`must be an integer from ${min} to ${max}.`);
    }
    return n;
  };
}

export function number(min: number, max = Number.MAX_VALUE): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!DECIMAL.test(v) || !Number.isFinite(n) || n < min || n > max) {
      throw new InvalidArgumentError(`must be a number from ${min} to ${max}.`);
    }
    return n;
  };
}

export const port = integer(0, 65535);
export const fraction = number(0, 1);

export function list(v: string): string[] {
  const items = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new InvalidArgumentError('must be a comma-separated list of at least one name.');
  return items;
}

/** A usage error raised after parsing (a combination of flags that cannot work). */
export class UsageError extends Error {
  override name = 'UsageError';
}
