// JSON helpers for bodies a client sent.

/**
 * JSON.stringify, or null where it throws. V8 parses any depth, but
 * serialises recursively: a body of a few kilobytes nested 5,000 deep parses,
 * then overflows the stack when written out again.
 */
export function stringifyOrNull(value: unknown): string | null {
  try {
    return JSON.stringify(value);
  } catch {
    return null;
  }
}
