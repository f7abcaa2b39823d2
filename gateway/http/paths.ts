// Request paths as the gateway reads them: segments decoded without throwing,
// dot segments refused, and client-chosen text clipped before it is echoed
// into an error message or a log line.

/** decodeURIComponent, or null for a malformed %-escape (it throws URIError). */
export function decodePathSegment(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/**
 * True when a path has a `.` or `..` segment, written plainly or %-encoded.
 * Forwarded as is, `/v1/../admin` would reach an upstream that normalises
 * paths outside the base path it was configured with, carrying our key.
 */
export function hasDotSegment(path: string): boolean {
  if (!path.includes('.') && !path.includes('%')) return false;
  for (const seg of path.split('/')) {
    if (seg.length > 6) continue; // the longest dot segment is %2e%2e
    const s = seg.toLowerCase().replaceAll('%2e', '.');
    if (s === '.' || s === '..') return true;
  }
  return false;
}

/** At most `max` characters of a client-chosen string, for messages and logs. */
export function clip(s: string, max = 256): string {
  return s.length <= max ? s : `${s.slice(0, max)}…`;
}
