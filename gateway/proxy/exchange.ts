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
import { estimatePromptTokens } from '../../common/tokens.js';
import { BodyTail } from '../usage/body-tail.js';
import { SseScanner } from '../usage/sse-scanner.js';
import { lastUsage, type Usage } from '../usage/usage-json.js';
import type { H1Call, H1Handler, UpstreamError } from './h1-pool.js';

/** Responses up to this size (with a Content-Length) are sent to the client in one write. */
const BUFFER_LIMIT = 64 * 1024;
const EMPTY = Buffer.alloc(0);

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
  /** We asked the upstream for stream_options.include_usage: its usage chunk is ours, not the client's. */
  stripUsage = false;
  usage: Usage | null = null;
  usageEstimated = false;
  /** A streamed 2xx response (text/event-stream): usage and content looked for event by event. */
  private sse: SseScanner | null = null;
  /** An unbuffered 2xx response of another type: its last bytes, for the usage at its end. */
  private tail: BodyTail | null = null;
  /** Bytes of the body as sent to the upstream (what the upstream counts its prompt from). */
  private sentBytes = 0;

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
    // A stream the client cut: what it was sent is billed (the upstream did that work).
    if (this.sse !== null && !this.done) this.billStream();
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
    this.sentBytes = body.length;
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
    const ok = statusCode >= 200 && statusCode < 300;
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
    this.buffered = !eventStream && length >= 0 && length <= BUFFER_LIMIT;
    if (this.buffered) {
      // The parser refuses Content-Length with Transfer-Encoding, so `length`
      // is the body's framing; onComplete still checks what arrived against it.
      this.bodyBuf = length === 0 ? EMPTY : Buffer.allocUnsafe(length);
      return;
    }
    if (ok) {
      if (eventStream && this.streamed) this.sse = new SseScanner(this.stripUsage);
      else if (this.key !== null) this.tail = new BodyTail();
    }
    const res = this.res;
    res.cork(() => this.writeHead());
  }

  private writeHead(): void {
    const res = this.res;
    if (this.status !== 200) res.writeStatus(statusLine(this.status));
    const h = this.responseHeaders;
    for (let i = 0; i < h.length; i += 2) res.writeHeader(h[i]!, h[i + 1]!);
    // A body written in parts must not be ended with closeConnection: this uWS then writes
    // "Connection: close" into the body. The header goes out now, and the client closes.
    if (!this.buffered && this.ctx.closing) res.writeHeader('connection', 'close');
    this.started = true;
  }

  /** `chunk` is only valid during the call (it is a range of the pool's read buffer). */
  onData(chunk: Buffer): boolean {
    if (this.aborted) return false;
    if (this.buffered) {
      const buf = this.bodyBuf!;
      // More than the declared length is a bad response (onComplete sees filled > length).
      if (this.filled + chunk.length > buf.length) this.filled += chunk.length;
      else this.filled += chunk.copy(buf, this.filled);
      return true;
    }
    if (this.sse !== null) {
      chunk = this.sse.push(chunk);
      if (chunk.length === 0) return true;
    } else if (this.tail !== null) this.tail.push(chunk);
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
      if (this.filled !== body.length) {
        // Never send bytes that did not come from the upstream (allocUnsafe memory).
        this.ctx.metrics.upstreamError(this.upstream!.label, 'reset');
        this.fail(E.upstreamFailed, 'The upstream sent a body that does not match its Content-Length.');
        return;
      }
      if (this.key !== null && this.status >= 200 && this.status < 300) this.bill(lastUsage(body, 0, body.length));
      res.cork(() => {
        this.writeHead();
        if (this.status === 204 || this.status === 304) {
          // endWithoutBody(undefined, …) aborts the process in this uWS, and (0, true) adds a
          // Content-Length a 204 must not have: the header is written here, and the client closes.
          if (this.ctx.closing) res.writeHeader('connection', 'close');
          res.endWithoutBody();
        } else res.end(body, this.ctx.closing);
      });
    } else {
      const sse = this.sse;
      const rest = sse === null ? null : sse.end();
      if (sse !== null) this.billStream();
      else if (this.tail !== null) this.bill(this.tail.usage());
      res.cork(() => {
        if (rest !== null) res.write(rest);
        res.end();
      });
    }
    this.finish(this.status);
  }

  /** Usage of a 2xx response: the upstream's own, or else the request with the prompt estimated. */
  private bill(u: Usage | null): void {
    if (u !== null) this.usage = u;
    else this.estimate(0);
  }

  /** Usage of a stream, whole or cut: the upstream's own, or else what was delivered (one token per content event). */
  private billStream(): void {
    const sse = this.sse!;
    if (sse.usage !== null) this.usage = sse.usage;
    else this.estimate(sse.contentEvents);
  }

  private estimate(completion: number): void {
    // A request without a body (GET) has no prompt to estimate.
    this.usage = { prompt: this.sentBytes > 0 ? estimatePromptTokens(this.sentBytes) : 0, completion };
    this.usageEstimated = this.sentBytes > 0 || completion > 0;
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
    if (this.sse !== null) this.billStream();
    this.finish(this.status);
    this.res.close();
  }

  // ---- the client side ----

  /** Answers the client with an OpenAI-shaped error and finishes. */
  fail(kind: ErrorKind, message: string, param: string | null = null, extraHeaders?: Array<[string, string]>): void {
    if (this.aborted || this.done) return;
    // A failure inside the gateway while the upstream still answers: its callbacks must not write to this response.
    if (this.call !== null) {
      this.call.abort();
      this.call = null;
    }
    const res = this.res;
    res.cork(() => {
      res.writeStatus(statusLine(kind.status)).writeHeader('content-type', 'application/json');
      if (extraHeaders) for (const [k, v] of extraHeaders) res.writeHeader(k, v);
      res.end(errorBody(message, kind.type, kind.code, param), this.ctx.closing);
    });
    this.finish(kind.status);
  }

  /** Answers the client with a JSON body and finishes. */
  json(body: string): void {
    if (this.aborted || this.done) return;
    this.res.cork(() => this.res.writeHeader('content-type', 'application/json').end(body, this.ctx.closing));
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
