// The human-readable form of a result.
import { ERROR_KINDS, type LatencySummary, type LoadgenResult } from './result.js';

function row(name: string, s: LatencySummary): string {
  const c = (v: number): string => v.toFixed(2).padStart(9);
  return `| ${name.padEnd(14)} |${c(s.avg)} |${c(s.p50)} |${c(s.p90)} |${c(s.p99)} |${c(s.p999)} |${c(s.max)} |`;
}

export function formatResult(r: LoadgenResult & { canceled?: boolean }): string {
  const lines = [
    `${r.canceled ? '(canceled) ' : ''}requests ${r.requests}  ok ${r.ok}  errors ${r.errors}  in ${r.durationS.toFixed(2)} s  =>  ${r.rps.toFixed(2)} req/s`,
    '',
    '| latency (ms)   |      avg |      p50 |      p90 |      p99 |    p99.9 |      max |',
    '|----------------|----------|----------|----------|----------|----------|----------|',
    row('end to end', r.latencyMs),
  ];
  if (r.ttftMs) lines.push(row('first token', r.ttftMs));
  if (r.itlMs) lines.push(row('inter-token', r.itlMs));
  if (r.errors > 0) {
    lines.push('', 'errors by kind:');
    for (const k of ERROR_KINDS) if (r.errorsByKind[k]) lines.push(`  ${k.padEnd(8)} ${r.errorsByKind[k]}`);
    for (const [s, n] of Object.entries(r.errorsByStatus ?? {})) lines.push(`  HTTP ${s} ${n}`);
  }
  return lines.join('\n') + '\n';
}
