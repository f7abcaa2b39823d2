// One proxied request: the H1Pool handler for the upstream side and the uWS
// response for the client side. A class with methods rather than
// closures: it is allocated once per request on the hot path.
//
// uWS rules honoured here: every write after the handler returned is corked;
// `res` is never touched after onAborted; a write that returns false pauses
// the upstream body until onWritable.
import { statusLine, type HttpResponse } from '../../common/uws.js';
import { errorBody } from '../../common/openai-error.js';
import { stringifyOrNull } from '../../common/json.js';
import { E, type ErrorKind } from '../errors.js';
import type { GatewayContext } from '../http/context.js';
import type { KeyRecord } from '../auth/types.js';
import type { ModelRoute } from '../routing/router.js';
import type { Upstream } from '../routing/upstream.js';
import { parseUsage } from '../usage/accumulator.js';
import type { H1Call, H1Handler, UpstreamError } from './h1-pool.js';

/** Responses up to this size (with a Content-Length) are sent to the client in one write. */
const BUFFER_LIMIT = 64 * 1024;
const EMPTY = Buffer.alloc(0);

/** An SSE event not finished within this many bytes is passed on without looking for usage in it. */
const CARRY_LIMIT = 64 * 1024;

// An SSE event ends at a blank line; lines end in LF, CRLF or CR.
const EVENT_ENDS = ['\n\n', '\r\n\r\n', '\n\r\n', '\r\r'];

/** The offset just past the last event boundary that ends before `before`, or -1. */
function lastEventEnd(buf: Buffer, before = buf.length): number {
  let best = -1;
  for (const sep of EVENT_ENDS) {
    if (before < sep.length) continue; // a negative offset would count from the end
    const i = buf.lastIndexOf(sep, before - sep.length);
    if (i >= 0 && i + sep.length > best) best = i + sep.length;
  }
  return best;
}

/** The offset just past the first event boundary at or after `from`, or the buffer's end. */
function firstEventEnd(buf: Buffer, from: number): number {
  let best = buf.length;
  for (const sep of EVENT_ENDS) {
    const i = buf.indexOf(sep, from);
    if (i >= 0 && i + sep.length < best) best = i + sep.length;
  }
  return best;
}

// Upstream response headers uWS writes itself, or that are hop-by-hop.
const DROP_RESPONSE_HEADERS = new Set(['date', 'content-length', 'transfer-encoding', 'connection', 'keep-alive']);

export class ProxyExchange implements H1Handler {
  aborted = false;
  done = false;
  key: KeyRecord | null = null;
  model = '';
  requestedModel = '';
  upstream: Upstream | null = null;
  status = 0;
  private tried: Upstream[] | null = null;
  private route: ModelRoute | null = null;
  private body: Buffer | null = null;
  private call: H1Call | null = null;
  /** True once status and headers went to the client. */
  private started = false;
  private buffered = false;
  /** A buffered response body, filled up to `filled`. */
  private bodyBuf: Buffer | null = null;
  private filled = 0;
  private responseHeaders: string[] = [];
  private writableHooked = false;
  streamed = false;
  /** The upstream answered text/event-stream: usage is looked for event by event. */
  private eventStream = false;
  /** We asked the upstream for stream_options.include_usage: its usage chunk is ours, not the client's. */
  stripUsage = false;
  usage: { prompt: number; completion: number } | null = null;
  private sseCarry: Buffer | null = null;

  constructor(
    readonly ctx: GatewayContext,
    readonly res: HttpResponse,
    readonly method: string,
    readonly url: string,
    readonly query: string,
    private readonly forwardHeaders: string[],
    readonly startedAt: number,
  ) {
    ctx.requestStarted();
  }

  onClientAborted = (): void => {
    this.aborted = true;
    if (this.call !== null) this.call.abort();
    this.finish(499);
  };

  /** Sends `body` to an upstream of `route`. */
  forward(route: ModelRoute, model: string, body: Buffer, stream: boolean): void {
    this.route = route;
    this.model = model;
    this.body = body;
    this.streamed = stream;
    this.dispatchNext();
  }

  private dispatchNext(): void {
    const up = this.route!.pick(Date.now(), this.tried);
    if (up === null) {
      this.fail(E.upstreamFailed, 'No upstream could be reached for this model.');
      return;
    }
    if (this.upstream !== null) (this.tried ??= []).push(this.upstream);
    this.upstream = up;
    let body = this.body!;
    if (up.model !== undefined && up.model !== this.model) {
      const rewritten = rewriteModel(body, up.model);
      if (rewritten === null) {
        this.upstream = null;
        this.fail(E.invalidBody, 'The request body is nested too deeply.');
        return;
      }
      body = rewritten;
    }
    up.inFlight++;
    const headers = up.authorization === null ? this.forwardHeaders : [...this.forwardHeaders, 'authorization', up.authorization];
    const path = up.basePath + this.url.slice(3) + (this.query === '' ? '' : '?' + this.query);
    try {
      this.call = up.pool.request({ method: this.method, path, headers, body: body.length > 0 ? body : null }, this);
    } catch (err) {
      // A target or header the pool refuses to write (CR/LF: request smuggling).
      up.inFlight--;
      this.upstream = null;
      this.fail(E.invalidBody, `The request cannot be forwarded: ${(err as Error).message}.`);
    }
  }

  // ---- the upstream side (H1Handler) ----

  onHeaders(statusCode: number, headers: string[]): void {
    if (this.aborted) return;
    this.status = statusCode;
    const up = this.upstream!;
    if (statusCode >= 500) {
      up.failed(Date.now());
      this.ctx.metrics.upstreamError(up.label, 'status_5xx');
    } else up.succeeded();
    let length = -1;
    let eventStream = false;
    const h = this.responseHeaders;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      if (DROP_RESPONSE_HEADERS.has(name)) {
        if (name === 'content-length') length = Number(value);
        continue;
      }
      if (name === 'content-type' && value.startsWith('text/event-stream')) eventStream = true;
      h.push(name, value);
    }
    if (statusCode === 204 || statusCode === 304 || this.method === 'HEAD') length = 0;
    this.eventStream = eventStream;
    this.buffered = !eventStream && length >= 0 && length <= BUFFER_LIMIT;
    if (this.buffered) {
      this.bodyBuf = length === 0 ? EMPTY : Buffer.allocUnsafe(length);
      return;
    }
    const res = this.res;
    res.cork(() => this.writeHead());
  }

  private writeHead(): void {
    const res = this.res;
    if (this.status !== 200) res.writeStatus(statusLine(this.status));
    const h = this.responseHeaders;
    for (let i = 0; i < h.length; i += 2) res.writeHeader(h[i]!, h[i + 1]!);
    this.started = true;
  }

  /** `chunk` is only valid during the call (it is a range of the pool's read buffer). */
  onData(chunk: Buffer): boolean {
    if (this.aborted) return false;
    if (this.buffered) {
      this.filled += chunk.copy(this.bodyBuf!, this.filled);
      return true;
    }
    if (this.eventStream && this.streamed && this.status === 200) {
      chunk = this.stripUsage ? this.filterEvents(chunk) : this.scanUsage(chunk);
      if (chunk.length === 0) return true;
    }
    let ok = true;
    this.res.cork(() => {
      ok = this.res.write(chunk);
    });
    if (ok) return true;
    if (!this.writableHooked) {
      this.writableHooked = true;
      // Bound only when a write was refused: most responses never need it.
      this.res.onWritable(() => this.onWritable());
    }
    return false;
  }

  /** Notes usage from a chunk the client asked for (kept as is). */
  private scanUsage(chunk: Buffer): Buffer {
    if (this.usage === null && chunk.includes('"usage"')) {
      // An event may straddle two reads: look at the previous tail too.
      const text = (this.sseCarry === null ? '' : this.sseCarry.toString('latin1')) + chunk.toString('latin1');
      this.usage = parseUsage(text);
    }
    this.sseCarry = Buffer.from(chunk.length > 512 ? chunk.subarray(chunk.length - 512) : chunk);
    return chunk;
  }

  /** Passes complete SSE events on, minus the usage-only event we asked for. */
  private filterEvents(chunk: Buffer): Buffer {
    const buf = this.sseCarry === null ? chunk : Buffer.concat([this.sseCarry, chunk]);
    const end = lastEventEnd(buf);
    if (end < 0) {
      if (buf.length > CARRY_LIMIT) {
        // No event boundary in this much: not SSE as we know it. Pass it on, and the rest as it comes.
        this.stripUsage = false;
        this.sseCarry = null;
        return this.scanUsage(buf);
      }
      // `chunk` is a view of the pool's read buffer, overwritten by the next read: keep a copy.
      this.sseCarry = buf === chunk ? Buffer.from(chunk) : buf;
      return EMPTY;
    }
    this.sseCarry = end < buf.length ? Buffer.from(buf.subarray(end)) : null;
    const complete = buf.subarray(0, end);
    const at = complete.indexOf('"usage"');
    if (at < 0) return complete;
    // Find the event holding "usage" and drop it if it carries no choices.
    const evStart = Math.max(0, lastEventEnd(complete, at));
    const evEnd = firstEventEnd(complete, at);
    const event = complete.subarray(evStart, evEnd).toString('utf8');
    if (!event.includes('"choices":[]')) return complete;
    this.usage = parseUsage(event);
    return evStart === 0 && evEnd === complete.length
      ? EMPTY
      : Buffer.concat([complete.subarray(0, evStart), complete.subarray(evEnd)]);
  }

  private onWritable(): boolean {
    this.call?.resume();
    return true;
  }

  onComplete(): void {
    if (this.aborted) return;
    const res = this.res;
    this.call = null;
    if (this.buffered) {
      const body = this.bodyBuf!;
      if (this.status === 200 && this.key !== null) {
        // Only the tail from the last "usage" is decoded, not the whole body.
        const at = body.lastIndexOf('"usage"');
        if (at >= 0) this.usage = parseUsage(body.toString('latin1', at));
      }
      res.cork(() => {
        this.writeHead();
        if (this.status === 204 || this.status === 304) res.endWithoutBody();
        else res.end(body);
      });
    } else {
      res.cork(() => {
        if (this.sseCarry !== null && this.stripUsage) res.write(this.sseCarry);
        res.end();
      });
    }
    this.finish(this.status);
  }

  onError(err: UpstreamError): void {
    this.call = null;
    if (this.aborted) return;
    const code = err.code;
    const up = this.upstream!;
    const timeout = code === 'UPSTREAM_HEADERS_TIMEOUT' || code === 'UPSTREAM_CONNECT_TIMEOUT' || code === 'UPSTREAM_BODY_TIMEOUT';
    if (this.status === 0) {
      up.failed(Date.now());
      up.inFlight--;
      const connectFailure = code === 'UPSTREAM_CONNECT_FAILED' || code === 'UPSTREAM_CONNECT_TIMEOUT';
      this.ctx.metrics.upstreamError(up.label, connectFailure ? 'connect' : timeout ? 'timeout' : 'reset');
      if (err.notSent && this.route!.upstreams.length > 1) {
        // Nothing reached this upstream: try another one.
        (this.tried ??= []).push(up);
        this.upstream = null;
        this.dispatchNext();
        return;
      }
      this.upstream = null;
      if (timeout) this.fail(E.upstreamTimeout, 'The upstream did not answer in time.');
      else if (code === 'UPSTREAM_BAD_RESPONSE') this.fail(E.upstreamFailed, 'The upstream sent an invalid HTTP response.');
      else this.fail(E.upstreamFailed, 'The upstream could not be reached or closed the connection.');
      return;
    }
    this.ctx.metrics.upstreamError(up.label, timeout ? 'timeout' : 'reset');
    if (!this.started) {
      // Nothing reached the client yet (a buffered response): it can still get a proper status.
      if (timeout) this.fail(E.upstreamTimeout, 'The upstream stopped sending its response.');
      else this.fail(E.upstreamFailed, 'The upstream failed while sending its response.');
      return;
    }
    // Part of the response is already with the client: all we can do is cut it.
    // finish first: close() runs onAborted synchronously.
    this.finish(this.status);
    this.res.close();
  }

  // ---- the client side ----

  /** Answers the client with an OpenAI-shaped error and finishes. */
  fail(kind: ErrorKind, message: string, param: string | null = null, extraHeaders?: Array<[string, string]>): void {
    if (this.aborted || this.done) return;
    const res = this.res;
    res.cork(() => {
      res.writeStatus(statusLine(kind.status)).writeHeader('content-type', 'application/json');
      if (extraHeaders) for (const [k, v] of extraHeaders) res.writeHeader(k, v);
      res.end(errorBody(message, kind.type, kind.code, param));
    });
    this.finish(kind.status);
  }

  /** Answers the client with a JSON body and finishes. */
  json(body: string): void {
    if (this.aborted || this.done) return;
    this.res.cork(() => this.res.writeHeader('content-type', 'application/json').end(body));
    this.finish(200);
  }

  finish(status: number): void {
    if (this.done) return;
    this.done = true;
    if (this.upstream !== null) this.upstream.inFlight--;
    this.ctx.requestFinished(this, status);
  }
}

/** The body with its model renamed, or null when it nests too deeply to serialise again. */
function rewriteModel(body: Buffer, model: string): Buffer | null {
  const parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  parsed.model = model;
  const json = stringifyOrNull(parsed);
  return json === null ? null : Buffer.from(json);
}
