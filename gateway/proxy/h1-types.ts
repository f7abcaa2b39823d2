// The contract of the gateway's upstream HTTP/1.1 client (h1-pool.ts).
//
// Why a client of our own: undici's promise and stream glue cost about three
// times nginx's CPU per proxied request on this kind of machine; a keep-alive
// client on node:net that writes each request as one buffer and parses
// responses straight out of a fixed read buffer costs about half of nginx.

export interface H1PoolOptions {
  /** Most sockets open at once; further requests wait in FIFO order. null: no limit. */
  connections: number | null;
  /** From starting a connection until it is established (TCP, and TLS when https). */
  connectTimeoutMs: number;
  /** From the request written (all of it handed to the kernel) until the response head is complete. */
  headersTimeoutMs: number;
  /**
   * Longest silence between two reads of a response body (not counted while
   * the handler paused), and longest stall of the upstream reading a request
   * body we are still writing; 0: none.
   */
  bodyTimeoutMs: number;
  /** An idle keep-alive socket is closed after this long (or earlier when the server's Keep-Alive header says so). */
  idleTimeoutMs: number;
  /** Largest response head (status line and headers) accepted. Default 64 KiB. */
  maxHeaderBytes?: number;
  /** For https origins. */
  tls?: {
    /** Trusted CA certificates in PEM; default: Node's bundled roots. */
    ca?: string | Buffer;
    /** Default true. */
    rejectUnauthorized?: boolean;
  };
}

export interface H1Request {
  method: string;
  /** Origin-form target: "/v1/chat/completions?x=1". */
  path: string;
  /**
   * Flat [name, value, name, value, …]. The pool writes `host` and
   * `content-length` itself; hop-by-hop headers must not be passed.
   */
  headers: readonly string[];
  /** The request body, or null for none. */
  body: Buffer | null;
}

export interface H1Handler {
  /** The final response head (1xx interim responses are skipped). Names are lower-case. */
  onHeaders(status: number, headers: string[]): void;
  /**
   * A piece of the response body (de-chunked). The buffer is only valid during
   * the call: copy what you keep. Return false to pause until `call.resume()`.
   */
  onData(chunk: Buffer): boolean;
  /** The response is complete. */
  onComplete(): void;
  /** The exchange failed; no other callback follows. Never called after `abort()`. */
  onError(err: UpstreamError): void;
}

export interface H1Call {
  /** Stops the exchange at once (the socket is destroyed if the response had begun); no callback follows. */
  abort(): void;
  /** Resumes a body paused by onData returning false. */
  resume(): void;
}

export type UpstreamErrorCode =
  /** The connection could not be established: err.errno holds the system code (ECONNREFUSED …). */
  | 'UPSTREAM_CONNECT_FAILED'
  | 'UPSTREAM_CONNECT_TIMEOUT'
  | 'UPSTREAM_HEADERS_TIMEOUT'
  | 'UPSTREAM_BODY_TIMEOUT'
  /** The connection broke or closed before the response was complete. */
  | 'UPSTREAM_RESET'
  /** The upstream sent something that is not valid HTTP/1.x. */
  | 'UPSTREAM_BAD_RESPONSE'
  /** The pool was closed. */
  | 'UPSTREAM_POOL_CLOSED';

export class UpstreamError extends Error {
  constructor(
    readonly code: UpstreamErrorCode,
    message: string,
    /** True when no byte of the request can have reached the upstream: safe to send elsewhere. */
    readonly notSent: boolean,
    /** The system error code behind it, when there is one (ECONNREFUSED, ECONNRESET …). */
    readonly errno?: string,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

/**
 * CR, LF or NUL in header or request-line text: never written (request
 * smuggling), never accepted from an upstream (RFC 9110 5.5).
 */
export function hasCrLfNul(s: string): boolean {
  return s.indexOf('\r') >= 0 || s.indexOf('\n') >= 0 || s.indexOf('\0') >= 0;
}

export interface H1PoolStats {
  /** Sockets open (connecting, busy or idle). */
  open: number;
  busy: number;
  idle: number;
  /** Requests waiting for a socket. */
  queued: number;
  /** Connections established since the pool was created. */
  connects: number;
}
