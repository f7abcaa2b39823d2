// The rules every local HTTP API of sluice (the load generator's, the
// orchestrator daemon's) applies before it acts: no cross-site use from a
// browser, no DNS rebinding, JSON bodies only, and a bound on their size.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { errorBody, typeForStatus } from './openai-error.js';

export interface Refusal {
  status: number;
  message: string;
  code: string;
  param?: string;
}

/**
 * Whether a Host header names this server: an IP literal, localhost, or the
 * address it listens on. Any other name may be an attacker's, re-pointed at
 * this address (DNS rebinding).
 */
export function hostAllowed(host: string, listenHost: string): boolean {
  if (!/^[A-Za-z0-9.:[\]_-]+$/.test(host)) return false;
  let hostname: string;
  try {
    hostname = new URL(`http://${host}`).hostname;
  } catch {
    return false;
  }
  return isIP(hostname.replace(/^\[(.*)\]$/, '$1')) !== 0 || hostname === 'localhost' || hostname === listenHost.toLowerCase();
}

/**
 * A browser page from another site must not drive this API. DNS rebinding
 * (a name the attacker controls, re-pointed at 127.0.0.1) makes its
 * requests same-origin to the browser but leaves the attacker's name in
 * Host: only an IP literal, localhost or the address we listen on is ours.
 * A cross-site request carries an Origin that is not ours. (A cross-site
 * form or no-cors fetch cannot send Content-Type: application/json, which
 * POST requires, without a CORS preflight, which these servers never grant.)
 */
export function refuseCrossSite(req: IncomingMessage, listenHost: string, flag = '--host'): Refusal | null {
  const host = req.headers.host;
  if (host !== undefined && !hostAllowed(host, listenHost)) {
    return { status: 403, message: `The Host header does not name this server: it answers only to an IP address, localhost or the address it listens on (${flag}).`, code: 'forbidden_host' };
  }
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let ours = false;
    try {
      ours = host !== undefined && new URL(origin).origin === new URL(`http://${host}`).origin;
    } catch {
      ours = false;
    }
    if (!ours) return { status: 403, message: 'Cross-origin requests are not allowed: the Origin header is not this server.', code: 'forbidden_origin' };
  }
  return null;
}

/** A POST body must be declared JSON (415 otherwise). */
export function refuseNonJson(req: IncomingMessage): Refusal | null {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') return null;
  return { status: 415, message: 'The request body must be JSON, sent with Content-Type: application/json.', code: 'unsupported_media_type', param: 'Content-Type' };
}

/** The body, or null when it is larger than `max` bytes (the rest is read and dropped). */
export function readBodyLimited(req: IncomingMessage, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > max) {
      req.resume();
      resolve(null);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      if (size > max) return;
      size += c.length;
      if (size > max) {
        chunks.length = 0;
        resolve(null);
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** An OpenAI-shaped error answer. */
export function sendError(res: ServerResponse, status: number, message: string, code: string, param: string | null = null): void {
  const text = errorBody(message, typeForStatus(status), code, param);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A JSON answer. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Listens and resolves with the port bound (port 0: any free one); rejects with the listen error. */
export function listenOn(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as { port: number }).port);
    });
  });
}
