// Scripted raw HTTP/1.1 servers on loopback port 0 for the h1-pool tests, and a
// handler that records every callback the pool makes and flags protocol
// violations (a callback after the end, two ends, data before headers …).
//
// The servers parse requests themselves and let each test write the response
// bytes by hand, so a test controls the framing byte for byte.
import net from 'node:net';
import type { Test } from 'tap';
import { H1Pool } from '../../gateway/proxy/h1-pool.js';
import type { H1Call, H1PoolOptions, H1Request, UpstreamError } from '../../gateway/proxy/h1-types.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 10 ms until it is true or `ms` pass; returns whether it became true. */
export async function waitFor(check: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await sleep(10);
  }
  return check();
}

export interface ReceivedRequest {
  /** Order of arrival over the whole server, from 0. */
  index: number;
  method: string;
  path: string;
  version: string;
  /** Header lines as received: [name, value] with the name's case kept. */
  rawHeaders: Array<[string, string]>;
  body: Buffer;
  conn: ServerConn;
  /** All values of a header, by case-insensitive name. */
  header(name: string): string[];
}

export interface ServerConn {
  /** Order of acceptance, from 0. */
  id: number;
  socket: net.Socket;
  requests: ReceivedRequest[];
  /** Set once the socket closed (either side). */
  closed: boolean;
  whenClosed: Promise<void>;
  /** Bytes received that do not parse as a request (should stay empty). */
  garbage: string;
  /** Writes and resolves once the data was handed to the kernel. */
  write(data: string | Buffer): Promise<void>;
}

export type RequestHandler = (req: ReceivedRequest, conn: ServerConn) => void | Promise<void>;

export interface RawServer {
  port: number;
  origin: string;
  conns: ServerConn[];
  requests: ReceivedRequest[];
  /** Replaceable at any time. */
  onRequest: RequestHandler;
  openConns(): number;
  close(): Promise<void>;
}

const HEAD_END = Buffer.from('\r\n\r\n');

function parseRequests(conn: ServerConn, server: RawServer, state: { buf: Buffer }): void {
  for (;;) {
    const buf = state.buf;
    const at = buf.indexOf(HEAD_END);
    if (at < 0) return;
    const head = buf.toString('latin1', 0, at);
    const lines = head.split('\r\n');
    const m = /^([A-Z]+) (\S+) (HTTP\/1\.[01])$/.exec(lines[0]!);
    if (!m) {
      conn.garbage += buf.toString('latin1');
      state.buf = Buffer.alloc(0);
      return;
    }
    const rawHeaders: Array<[string, string]> = [];
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      rawHeaders.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
    }
    const header = (name: string): string[] =>
      rawHeaders.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
    const cl = header('content-length');
    const length = cl.length > 0 ? Number(cl[0]) : 0;
    if (buf.length < at + 4 + length) return;
    const body = Buffer.from(buf.subarray(at + 4, at + 4 + length));
    state.buf = buf.subarray(at + 4 + length);
    const req: ReceivedRequest = {
      index: server.requests.length,
      method: m[1]!,
      path: m[2]!,
      version: m[3]!,
      rawHeaders,
      body,
      conn,
      header,
    };
    server.requests.push(req);
    conn.requests.push(req);
    void Promise.resolve(server.onRequest(req, conn)).catch((err: unknown) => {
      conn.garbage += `handler threw: ${String(err)}`;
      conn.socket.destroy();
    });
  }
}

/** A plain TCP server on 127.0.0.1 (port 0 unless given) that parses requests (Content-Length bodies) and hands each to `onRequest`. */
export async function startRawServer(t: Test, onRequest: RequestHandler = () => {}, listenPort = 0): Promise<RawServer> {
  const sockets = new Set<net.Socket>();
  let server!: RawServer;
  const srv = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    let markClosed!: () => void;
    const conn: ServerConn = {
      id: server.conns.length,
      socket,
      requests: [],
      closed: false,
      whenClosed: new Promise<void>((r) => (markClosed = r)),
      garbage: '',
      write: (data) =>
        new Promise<void>((resolve) => {
          if (socket.destroyed || !socket.writable) return resolve();
          socket.write(data, () => resolve());
        }),
    };
    server.conns.push(conn);
    const state: { buf: Buffer } = { buf: Buffer.alloc(0) };
    socket.on('data', (d: Buffer) => {
      state.buf = state.buf.length === 0 ? d : Buffer.concat([state.buf, d]);
      parseRequests(conn, server, state);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      sockets.delete(socket);
      conn.closed = true;
      markClosed();
    });
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(listenPort, '127.0.0.1', () => {
      srv.off('error', reject);
      resolve();
    });
  });
  const port = (srv.address() as net.AddressInfo).port;
  let closing: Promise<void> | null = null;
  server = {
    port,
    origin: `http://127.0.0.1:${port}`,
    conns: [],
    requests: [],
    onRequest,
    openConns: () => server.conns.filter((c) => !c.closed).length,
    close: () =>
      (closing ??= new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      })),
  };
  t.teardown(() => server.close());
  return server;
}

/** Writes `data` in the given pieces, `gapMs` apart (so the client sees separate reads). */
export async function writeInPieces(conn: ServerConn, pieces: Buffer[], gapMs: number): Promise<void> {
  for (let i = 0; i < pieces.length; i++) {
    if (i > 0) await sleep(gapMs);
    await conn.write(pieces[i]!);
  }
}

export const DEFAULTS: H1PoolOptions = {
  connections: 8,
  connectTimeoutMs: 5000,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
};

/** A pool with test defaults, destroyed in teardown. */
export function newPool(t: Test, origin: string, opts: Partial<H1PoolOptions> = {}): H1Pool {
  const pool = new H1Pool(origin, { ...DEFAULTS, ...opts });
  t.teardown(() => pool.destroy());
  return pool;
}

export function get(path: string, headers: string[] = []): H1Request {
  return { method: 'GET', path, headers, body: null };
}

export interface Outcome {
  status: number | null;
  headers: string[] | null;
  /** The body (concatenated onData chunks), set when the exchange ends. */
  body: Buffer;
  /** Body bytes so far. */
  received: number;
  dataCalls: number;
  completed: boolean;
  error: UpstreamError | null;
  /** The callbacks in order: 'headers', 'data', 'complete', 'error'. */
  events: string[];
  /** Breaches of the handler contract; must stay empty. */
  violations: string[];
  /** Time of the terminal callback (performance.now()). */
  endedAt: number;
}

export interface Hooks {
  onHeaders?(call: H1Call, status: number, headers: string[]): void;
  /** Return false to pause (the default returns true). */
  onData?(call: H1Call, chunk: Buffer, o: Outcome): boolean | void;
  onComplete?(call: H1Call): void;
  onError?(call: H1Call, err: UpstreamError): void;
}

export interface Exchange {
  call: H1Call;
  outcome: Outcome;
  /** Resolves on onComplete or onError (never, after an abort). */
  done: Promise<Outcome>;
  /** Calls call.abort() and remembers it (any later callback is a violation). */
  abort(): void;
}

/** Sends one request and records the handler's view of the exchange. */
export function exchange(pool: H1Pool, req: H1Request, hooks: Hooks = {}): Exchange {
  const o: Outcome = {
    status: null,
    headers: null,
    body: Buffer.alloc(0),
    received: 0,
    dataCalls: 0,
    completed: false,
    error: null,
    events: [],
    violations: [],
    endedAt: 0,
  };
  const parts: Buffer[] = [];
  let ended = false;
  let aborted = false;
  let resolveDone!: (o: Outcome) => void;
  const done = new Promise<Outcome>((r) => (resolveDone = r));
  // Callbacks may come synchronously from inside request(), before `call` is assigned.
  let call: H1Call | null = null;
  const deferred: Array<() => void> = [];
  const withCall = (fn: (c: H1Call) => void): void => {
    if (call) fn(call);
    else deferred.push(() => fn(call!));
  };
  const check = (name: string): void => {
    o.events.push(name);
    if (aborted) o.violations.push(`${name} after abort()`);
    if (ended) o.violations.push(`${name} after the exchange ended`);
  };
  const finish = (): void => {
    o.body = Buffer.concat(parts);
    o.endedAt = performance.now();
    resolveDone(o);
  };
  call = pool.request(req, {
    onHeaders(status, headers) {
      check('headers');
      if (o.status !== null) o.violations.push('onHeaders twice');
      o.status = status;
      o.headers = [...headers];
      if (hooks.onHeaders) withCall((c) => hooks.onHeaders!(c, status, headers));
    },
    onData(chunk) {
      check('data');
      if (o.status === null) o.violations.push('onData before onHeaders');
      if (chunk.length === 0) o.violations.push('empty onData chunk');
      o.dataCalls++;
      parts.push(Buffer.from(chunk));
      o.received += chunk.length;
      if (hooks.onData && call) return hooks.onData(call, chunk, o) !== false;
      return true;
    },
    onComplete() {
      check('complete');
      if (o.status === null) o.violations.push('onComplete before onHeaders');
      ended = true;
      o.completed = true;
      if (hooks.onComplete) withCall((c) => hooks.onComplete!(c));
      finish();
    },
    onError(err) {
      check('error');
      ended = true;
      o.error = err;
      if (hooks.onError) withCall((c) => hooks.onError!(c, err));
      finish();
    },
  });
  for (const fn of deferred) fn();
  const c = call;
  return {
    call: c,
    outcome: o,
    done,
    abort() {
      aborted = true;
      c.abort();
    },
  };
}

/** Sends a request and waits for its end. */
export function send(pool: H1Pool, req: H1Request, hooks?: Hooks): Promise<Outcome> {
  return exchange(pool, req, hooks).done;
}

/** Flat header list → lookup of all values by name. */
export function headerValues(headers: string[] | null, name: string): string[] {
  const out: string[] = [];
  if (!headers) return out;
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) out.push(headers[i + 1]!);
  return out;
}

/** A Content-Length response. */
export function okResponse(body: string | Buffer, extra = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  return Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${b.length}\r\n${extra}\r\n`), b]);
}

/** A loopback port with nothing listening on it (just closed). */
export async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
