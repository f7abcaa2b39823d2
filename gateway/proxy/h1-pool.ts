// A keep-alive HTTP/1.1 client pool for one upstream origin, on node:net.
//
// Measured on this kind of machine, undici's promise and stream glue made up
// most of the gateway's CPU per proxied request. This client does the least a
// proxy needs: one request in flight per socket, the request written as one
// buffer, responses parsed out of a fixed read buffer (net's `onread`) and
// handed on as ranges of it. Pipelining is left out on purpose: it did not
// help, and a uWS upstream closes a connection that pipelines.
//
// Timeouts are deadlines checked by one ticker per pool, so the hot path only
// stores a number instead of arming a timer per request.
import net from 'node:net';
import tls from 'node:tls';
import { ResponseParser, type ParserOwner } from './h1-parser.js';
import { UpstreamError, hasCrLfNul, type H1Call, type H1Handler, type H1PoolOptions, type H1PoolStats, type H1Request, type UpstreamErrorCode } from './h1-types.js';

export { UpstreamError } from './h1-types.js';
export type { H1Call, H1Handler, H1PoolOptions, H1PoolStats, H1Request } from './h1-types.js';

/**
 * One read buffer for every plain-TCP socket of the process: `onread`
 * callbacks run one at a time and consume (or copy) what they were given
 * before returning.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
/** Bodies up to this size are copied into the request buffer; larger ones are written after the head. */
const INLINE_BODY = 64 * 1024;
/** Requests that may be sent twice (RFC 9110 9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** A server's Keep-Alive timeout is shortened by this much, so we never reuse a socket it is closing. */
const KEEP_ALIVE_MARGIN_MS = 1000;

const enum Phase {
  Connecting,
  Busy,
  Idle,
  Closed,
}

const enum Deadline {
  None,
  Connect,
  Send,
  Headers,
  Body,
  Idle,
}

class Call implements H1Call {
  conn: Conn | null = null;
  done = false;
  /** A response byte arrived: the request cannot be sent again. */
  responded = false;
  /** Sent again once already after a kept-alive socket turned out closed. */
  retried = false;
  /** Must get a new connection (the retry after a stale one). */
  fresh = false;

  constructor(
    readonly pool: H1Pool,
    readonly req: H1Request,
    readonly handler: H1Handler,
  ) {}

  abort(): void {
    if (this.done) return;
    this.done = true;
    const conn = this.conn;
    this.conn = null;
    // A socket with a request on it cannot be reused: what it reads next belongs to us.
    if (conn !== null) conn.destroy();
    else this.pool.unqueue(this);
  }

  resume(): void {
    if (!this.done && this.conn !== null) this.conn.resume();
  }
}

class Conn implements ParserOwner {
  readonly socket: net.Socket;
  phase = Phase.Connecting;
  deadline = Infinity;
  deadlineKind = Deadline.Connect;
  call: Call | null = null;
  /** Responses completed on this socket. */
  served = 0;
  private readonly parser: ResponseParser;
  private paused = false;
  /** Bytes read but not parsed while paused (copied out of the shared read buffer). */
  private pending: Buffer | null = null;
  private keepAliveMs = 0;
  /** Request bytes not yet handed to the kernel at the last check (Deadline.Send), and when that last went down. */
  private unsent = 0;
  private sendProgressAt = 0;
  private resumeQueued = false;

  constructor(
    readonly pool: H1Pool,
    call: Call,
  ) {
    const o = pool.opts;
    this.parser = new ResponseParser(this, o.maxHeaderBytes ?? 64 * 1024);
    this.call = call;
    call.conn = this;
    this.deadline = Date.now() + o.connectTimeoutMs;
    if (pool.secure) {
      const s = tls.connect({
        host: pool.host,
        port: pool.port,
        servername: net.isIP(pool.host) === 0 ? pool.host : undefined,
        ca: o.tls?.ca,
        rejectUnauthorized: o.tls?.rejectUnauthorized ?? true,
        ALPNProtocols: ['http/1.1'],
      });
      s.on('secureConnect', this.onConnected);
      s.on('data', this.onChunk);
      this.socket = s;
    } else {
      this.socket = net.connect({ host: pool.host, port: pool.port, onread: { buffer: READ_BUFFER, callback: this.onRead } });
      this.socket.on('connect', this.onConnected);
    }
    this.socket.setNoDelay(true);
    this.socket.on('error', this.onSocketError);
    this.socket.on('end', this.onEnd);
    this.socket.on('close', this.onClose);
  }

  private onConnected = (): void => {
    if (this.phase !== Phase.Connecting) return;
    this.pool.connects++;
    this.socket.setKeepAlive(true, 60_000);
    const call = this.call;
    if (call === null) {
      this.release();
      return;
    }
    this.send(call);
  };

  /** Writes the request of `call` on this (connected) socket. */
  send(call: Call): void {
    this.phase = Phase.Busy;
    this.call = call;
    call.conn = this;
    const req = call.req;
    this.parser.reset(req.method);
    const body = req.body;
    const pool = this.pool;
    let head = req.method + ' ' + req.path + ' HTTP/1.1\r\nhost: ' + pool.hostHeader + '\r\n';
    const h = req.headers;
    for (let i = 0; i < h.length; i += 2) head += h[i] + ': ' + h[i + 1] + '\r\n';
    if (body !== null) head += 'content-length: ' + body.length + '\r\n\r\n';
    else if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') head += 'content-length: 0\r\n\r\n';
    else head += '\r\n';
    const socket = this.socket;
    if (body === null || body.length === 0) {
      socket.write(head, 'utf8');
    } else if (body.length <= INLINE_BODY) {
      // One buffer, one write: head (at most 3 bytes per UTF-16 unit) then body.
      const out = Buffer.allocUnsafe(head.length * 3 + body.length);
      const n = out.write(head, 0, 'utf8');
      body.copy(out, n);
      socket.write(out.subarray(0, n + body.length));
    } else {
      socket.cork();
      socket.write(head, 'utf8');
      socket.write(body);
      socket.uncork();
    }
    // No write callback (it cost ~0.6 µs a request): a request the kernel took
    // at once, the usual case, starts the headers timeout now; one still
    // queued is watched by the ticker until it is written (Deadline.Send).
    const now = Date.now();
    this.unsent = socket.writableLength;
    if (this.unsent === 0) {
      this.deadlineKind = Deadline.Headers;
      this.deadline = now + pool.opts.headersTimeoutMs;
    } else {
      this.deadlineKind = Deadline.Send;
      this.sendProgressAt = now;
      this.deadline = now + pool.tickMs;
    }
  }

  // ---- reading ----

  private onRead = (n: number, buf: Buffer): boolean => this.feed(buf, 0, n, true);

  private onChunk = (chunk: Buffer): void => {
    if (!this.feed(chunk, 0, chunk.length, false)) this.socket.pause();
  };

  /** Parses buf[start, end). Returns false when reading must pause. */
  private feed(buf: Buffer, start: number, end: number, shared: boolean): boolean {
    const call = this.call;
    if (call === null || this.phase !== Phase.Busy) {
      // Bytes on a socket with no request on it: the server is confused, or this is a late reply.
      this.destroy();
      return false;
    }
    call.responded = true;
    if (this.deadlineKind === Deadline.Body) this.deadline = this.pool.bodyDeadline();
    const parser = this.parser;
    const at = parser.execute(buf, start, end);
    if (this.call !== call) return false; // aborted from a handler callback
    if (parser.failed) {
      this.fail(call, 'UPSTREAM_BAD_RESPONSE', `The upstream sent an invalid HTTP response: ${parser.error}.`, false);
      return false;
    }
    if (parser.done) {
      this.complete(call, at === end);
      return true;
    }
    if (at < end) {
      // The handler asked to pause with bytes left in this read.
      this.pending = shared ? Buffer.from(buf.subarray(at, end)) : buf.subarray(at, end);
    }
    if (this.paused || at < end) {
      this.paused = true;
      this.deadline = Infinity;
      return false;
    }
    return true;
  }

  // ParserOwner
  onHead(status: number, headers: string[]): void {
    this.deadlineKind = Deadline.Body;
    this.deadline = this.pool.bodyDeadline();
    this.keepAliveMs = this.parser.keepAliveMs;
    this.call!.handler.onHeaders(status, headers);
    if (this.call === null) this.parser.halt();
  }

  onBody(buf: Buffer, start: number, end: number): boolean {
    const call = this.call!;
    const ok = call.handler.onData(buf.subarray(start, end));
    if (this.call !== call) {
      this.parser.halt();
      return false;
    }
    if (!ok) this.paused = true;
    return ok;
  }

  resume(): void {
    if (!this.paused || this.phase !== Phase.Busy || this.resumeQueued) return;
    // Bytes kept while paused go first, and the socket reads again only after
    // them; run on the next turn, not inside the caller's callback.
    this.resumeQueued = true;
    setImmediate(this.resumeNow);
  }

  private resumeNow = (): void => {
    this.resumeQueued = false;
    if (!this.paused || this.phase !== Phase.Busy) return;
    this.paused = false;
    this.deadline = this.pool.bodyDeadline();
    const pending = this.pending;
    if (pending !== null) {
      this.pending = null;
      if (!this.feed(pending, 0, pending.length, false)) return;
    }
    // The response may have completed from the held bytes: the socket, now
    // idle or carrying the next request, must read again all the same.
    if ((this.phase as Phase) !== Phase.Closed) this.socket.resume();
  };

  private complete(call: Call, clean: boolean): void {
    this.call = null;
    call.conn = null;
    call.done = true;
    this.served++;
    this.paused = false;
    this.pending = null;
    // Extra bytes after a complete response (we never pipeline) leave the socket in an unknown state.
    if (clean && this.parser.keepAlive && !this.pool.closing) this.release();
    else this.destroy();
    call.handler.onComplete();
  }

  /** Back to the pool: next queued request, or idle. */
  release(): void {
    const next = this.pool.dequeue();
    if (next !== null) {
      this.send(next);
      return;
    }
    const idle = this.pool.opts.idleTimeoutMs;
    const ms = this.keepAliveMs > 0 ? Math.min(idle, this.keepAliveMs - KEEP_ALIVE_MARGIN_MS) : idle;
    if (ms <= 0) {
      this.destroy();
      return;
    }
    this.phase = Phase.Idle;
    this.deadlineKind = Deadline.Idle;
    this.deadline = Date.now() + ms;
    this.pool.idle.push(this);
  }

  // ---- failures ----

  private onSocketError = (err: NodeJS.ErrnoException): void => {
    this.gone(err);
  };

  private onEnd = (): void => {
    // A close-delimited body ends here.
    if (this.phase === Phase.Busy && this.call !== null && this.parser.untilClose) {
      this.parser.eof();
      const call = this.call;
      this.complete(call, false);
      return;
    }
    this.gone(null);
  };

  private onClose = (): void => {
    this.gone(null);
  };

  /** The socket failed or closed under us. */
  private gone(err: NodeJS.ErrnoException | null): void {
    if (this.phase === Phase.Closed) return;
    const wasConnecting = this.phase === Phase.Connecting;
    const call = this.call;
    this.call = null;
    if (call === null || call.done) {
      this.close();
      return;
    }
    call.conn = null;
    const errno = err?.code;
    if (wasConnecting) {
      this.close();
      const what = err ? err.message : 'the connection closed while connecting';
      this.fail(call, 'UPSTREAM_CONNECT_FAILED', `Could not connect to the upstream: ${what}.`, true, errno);
    } else if (!call.responded && this.served > 0 && !call.retried && IDEMPOTENT.has(call.req.method)) {
      // The kept-alive socket was closed by the upstream as we reused it. An
      // idempotent request is sent once more on a new connection (first, so a
      // closing pool still counts it in flight); others are not, as nginx and
      // undici do not: the upstream may have acted on it (a POST is a paid
      // completion). Idle sockets are retired before upstreams close them
      // (idle_ms, Keep-Alive: timeout) to keep this race rare.
      call.retried = true;
      call.fresh = true;
      this.pool.dispatch(call);
      this.close();
    } else {
      this.close();
      const what = err ? err.message : 'the connection closed';
      this.fail(call, 'UPSTREAM_RESET', `The upstream connection broke before the response was complete: ${what}.`, false, errno);
    }
  }

  fail(call: Call, code: UpstreamErrorCode, message: string, notSent: boolean, errno?: string): void {
    if (this.call === call) this.call = null;
    call.conn = null;
    if (call.done) return;
    call.done = true;
    if (this.phase !== Phase.Closed) this.destroy();
    call.handler.onError(new UpstreamError(code, message, notSent, errno));
  }

  /** Deadline passed (called by the pool's ticker). */
  expire(): void {
    const call = this.call;
    switch (this.deadlineKind) {
      case Deadline.Connect:
        if (call !== null) this.fail(call, 'UPSTREAM_CONNECT_TIMEOUT', `Connecting to the upstream took longer than ${this.pool.opts.connectTimeoutMs} ms.`, true);
        else this.destroy();
        break;
      case Deadline.Send: {
        // Still writing the request. Written: the headers timeout starts. Not
        // yet: fine while the upstream keeps reading it, as the body timeout
        // does for responses (a slow reader of a big upload is not a slow
        // responder).
        const now = Date.now();
        const unsent = this.socket.writableLength;
        const o = this.pool.opts;
        if (unsent === 0) {
          this.deadlineKind = Deadline.Headers;
          this.deadline = now + o.headersTimeoutMs;
        } else if (unsent < this.unsent || o.bodyTimeoutMs === 0 || now - this.sendProgressAt < o.bodyTimeoutMs) {
          if (unsent < this.unsent) this.sendProgressAt = now;
          this.unsent = unsent;
          this.deadline = now + this.pool.tickMs;
        } else if (call !== null) {
          this.fail(call, 'UPSTREAM_BODY_TIMEOUT', `The upstream read none of the request body for more than ${o.bodyTimeoutMs} ms.`, false);
        } else this.destroy();
        break;
      }
      case Deadline.Headers:
        if (call !== null) this.fail(call, 'UPSTREAM_HEADERS_TIMEOUT', `The upstream sent no response head within ${this.pool.opts.headersTimeoutMs} ms.`, false);
        else this.destroy();
        break;
      case Deadline.Body:
        if (call !== null) this.fail(call, 'UPSTREAM_BODY_TIMEOUT', `The upstream response body stalled for more than ${this.pool.opts.bodyTimeoutMs} ms.`, false);
        else this.destroy();
        break;
      default:
        this.destroy();
    }
  }

  destroy(): void {
    if (this.phase === Phase.Closed) return;
    const call = this.call;
    this.call = null;
    if (call !== null) call.conn = null;
    this.close();
    this.socket.destroy();
  }

  /** Leaves the pool (once); the pool then opens a socket for a queued request if one waits. */
  private close(): void {
    if (this.phase === Phase.Idle) this.pool.removeIdle(this);
    this.phase = Phase.Closed;
    this.deadline = Infinity;
    this.pending = null;
    this.pool.removeConn(this);
  }
}

export class H1Pool {
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  readonly hostHeader: string;
  readonly idle: Conn[] = [];
  connects = 0;
  closing = false;
  private readonly conns = new Set<Conn>();
  private queue: Call[] = [];
  private queueHead = 0;
  private ticker: NodeJS.Timeout | null = null;
  /** The ticker's period: deadlines are honoured to within it. */
  readonly tickMs: number;
  private closed: (() => void) | null = null;

  constructor(
    origin: string,
    readonly opts: H1PoolOptions,
  ) {
    const u = new URL(origin);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`upstream origin must be http: or https:, got ${u.protocol}`);
    for (const k of ['connectTimeoutMs', 'headersTimeoutMs', 'bodyTimeoutMs', 'idleTimeoutMs'] as const) {
      const min = k === 'bodyTimeoutMs' ? 0 : 1;
      if (!(Number.isInteger(opts[k]) && opts[k] >= min)) throw new TypeError(`${k} must be an integer >= ${min}, got ${opts[k]}`);
    }
    if (opts.connections !== null && !(Number.isInteger(opts.connections) && opts.connections > 0)) {
      throw new TypeError(`connections must be a positive integer or null, got ${opts.connections}`);
    }
    this.secure = u.protocol === 'https:';
    this.host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    this.port = u.port === '' ? (this.secure ? 443 : 80) : Number(u.port);
    this.hostHeader = u.host;
    const shortest = Math.min(opts.connectTimeoutMs, opts.headersTimeoutMs, opts.bodyTimeoutMs || Infinity, opts.idleTimeoutMs);
    // Deadlines are honoured to within a tenth of the shortest timeout (10 ms to 1 s).
    this.tickMs = Math.max(10, Math.min(1000, Math.floor(shortest / 10)));
  }

  /** Throws a TypeError for a request that cannot be written safely (CR, LF or NUL in the target or a header: request smuggling). */
  request(req: H1Request, handler: H1Handler): H1Call {
    checkRequest(req);
    const call = new Call(this, req, handler);
    if (this.closing) {
      call.done = true;
      process.nextTick(() => handler.onError(new UpstreamError('UPSTREAM_POOL_CLOSED', 'The upstream pool is closed.', true)));
      return call;
    }
    this.dispatch(call);
    return call;
  }

  /** Puts `call` on an idle socket, a new one, or the queue. */
  dispatch(call: Call): void {
    if (!call.fresh) {
      const conn = this.idle.pop();
      if (conn !== undefined) {
        conn.send(call);
        return;
      }
    }
    const max = this.opts.connections;
    if (max === null || this.conns.size < max) {
      this.addConn(new Conn(this, call));
      return;
    }
    this.queue.push(call);
  }

  dequeue(): Call | null {
    while (this.queueHead < this.queue.length) {
      const call = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = undefined as unknown as Call;
      if (this.queueHead === this.queue.length) {
        this.queue = [];
        this.queueHead = 0;
      }
      if (!call.done) return call;
    }
    return null;
  }

  unqueue(call: Call): void {
    const i = this.queue.indexOf(call, this.queueHead);
    if (i >= 0) this.queue.splice(i, 1);
  }

  removeIdle(conn: Conn): void {
    const i = this.idle.lastIndexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
  }

  private addConn(conn: Conn): void {
    this.conns.add(conn);
    if (this.ticker === null) {
      this.ticker = setInterval(this.tick, this.tickMs);
      this.ticker.unref();
    }
  }

  removeConn(conn: Conn): void {
    if (!this.conns.delete(conn)) return;
    if (this.conns.size === 0 && this.ticker !== null) {
      clearInterval(this.ticker);
      this.ticker = null;
    }
    // A slot freed up: a queued request may open a connection now. (While
    // closing, the queue only holds requests resent after a stale socket.)
    const max = this.opts.connections;
    if (max !== null && this.conns.size < max) {
      const next = this.dequeue();
      if (next !== null) this.addConn(new Conn(this, next));
    }
    if (this.closing && this.conns.size === 0 && this.closed !== null) {
      this.closed();
      this.closed = null;
    }
  }

  bodyDeadline(): number {
    const ms = this.opts.bodyTimeoutMs;
    return ms > 0 ? Date.now() + ms : Infinity;
  }

  private tick = (): void => {
    const now = Date.now();
    for (const conn of this.conns) if (conn.deadline <= now) conn.expire();
  };

  stats(): H1PoolStats {
    let busy = 0;
    for (const c of this.conns) if (c.phase === Phase.Busy) busy++;
    return { open: this.conns.size, busy, idle: this.idle.length, queued: this.queue.length - this.queueHead, connects: this.connects };
  }

  /** Stops taking requests, fails queued ones, closes idle sockets and resolves once in-flight ones finished. */
  close(): Promise<void> {
    this.closing = true;
    for (let call = this.dequeue(); call !== null; call = this.dequeue()) {
      call.done = true;
      call.handler.onError(new UpstreamError('UPSTREAM_POOL_CLOSED', 'The upstream pool is closed.', true));
    }
    for (const conn of [...this.idle]) conn.destroy();
    if (this.conns.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const prev = this.closed;
      this.closed = () => {
        prev?.();
        resolve();
      };
    });
  }

  /** Closes every socket now; in-flight requests fail with UPSTREAM_POOL_CLOSED. */
  destroy(): void {
    this.closing = true;
    for (let call = this.dequeue(); call !== null; call = this.dequeue()) {
      call.done = true;
      call.handler.onError(new UpstreamError('UPSTREAM_POOL_CLOSED', 'The upstream pool is closed.', true));
    }
    for (const conn of [...this.conns]) {
      const call = conn.call;
      if (call !== null) conn.fail(call, 'UPSTREAM_POOL_CLOSED', 'The upstream pool was destroyed.', false);
      else conn.destroy();
    }
  }
}

function checkRequest(req: H1Request): void {
  if (hasCrLfNul(req.path) || req.path.indexOf(' ') >= 0) throw new TypeError('request path must not contain spaces, CR, LF or NUL');
  if (hasCrLfNul(req.method) || req.method.indexOf(' ') >= 0 || req.method === '') throw new TypeError('request method must be a token');
  const h = req.headers;
  for (let i = 0; i < h.length; i++) {
    if (hasCrLfNul(h[i]!)) throw new TypeError(`request header ${i % 2 === 0 ? 'name' : 'value'} must not contain CR, LF or NUL`);
  }
}
