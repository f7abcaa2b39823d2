// The one place that loads uWebSockets.js. The upstream project is not on the
// npm registry; two republished builds cover Node 20 between them. We try the
// newer build first, then require the older build's native binary directly:
// its package entry silently falls back to a slow JS implementation, which
// would make every latency figure we publish a lie, so we refuse to run on it.
import { STATUS_CODES } from 'node:http';
import { createRequire } from 'node:module';
import type * as UwsTypes from '@trufflesuite/uws-js-unofficial';

export type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from '@trufflesuite/uws-js-unofficial';
export type Uws = typeof UwsTypes;

const require = createRequire(import.meta.url);

function glibcVersion(): string {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return report?.header?.glibcVersionRuntime ?? 'unknown';
}

function load(): { uws: Uws; build: string } {
  const failures: string[] = [];
  try {
    return { uws: require('@btc-vision/uwebsockets.js') as Uws, build: '@btc-vision/uwebsockets.js' };
  } catch (err) {
    failures.push(`@btc-vision/uwebsockets.js: ${firstLine(err)}`);
  }
  const binary = `@trufflesuite/uws-js-unofficial/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  try {
    return { uws: require(binary) as Uws, build: '@trufflesuite/uws-js-unofficial' };
  } catch (err) {
    failures.push(`${binary}: ${firstLine(err)}`);
  }
  throw new Error(
    `no native uWebSockets.js binary loads on Node ${process.version} (${process.platform}-${process.arch}, ` +
      `glibc ${glibcVersion()}); refusing the slow JS fallback. Tried: ${failures.join('; ')}`,
  );
}

function firstLine(err: unknown): string {
  return String(err instanceof Error ? err.message : err).split('\n').find((l) => l.trim() !== '') ?? 'failed';
}

let loaded: { uws: Uws; build: string } | undefined;

/** The native uWS module; throws (naming Node and glibc) when no native build loads. */
export function uws(): Uws {
  loaded ??= load();
  return loaded.uws;
}

export function uwsBuild(): string {
  loaded ??= load();
  return loaded.build;
}

/** Status lines ("201 Created"): uWS's writeStatus wants the reason phrase too. */
const STATUS_LINE: Record<number, string> = Object.fromEntries(Object.entries(STATUS_CODES).map(([code, reason]) => [code, `${code} ${reason}`]));

export function statusLine(status: number): string {
  return STATUS_LINE[status] ?? `${status} Unknown`;
}
