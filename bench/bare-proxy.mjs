// The floor for bench:gateway: a bare uWS proxy over the gateway's own
// upstream client (H1Pool), with no auth, routing, logging or metrics. What
// the gateway costs above this is the cost of its features; what this costs
// above nginx is the cost of the transport (uWS, node:net, V8) on this machine.
// Usage: node bench/bare-proxy.mjs <upstream origin> <workers>. Prints {"port":N}.
import { uws, statusLine } from '../dist/common/uws.js';
import { H1Pool } from '../dist/gateway/proxy/h1-pool.js';
import { clusterListen } from './lib/cluster-listen.mjs';

const [origin, workersArg = '1'] = process.argv.slice(2);
const DROP = new Set(['host', 'content-length', 'connection', 'authorization', 'keep-alive', 'transfer-encoding']);

clusterListen(Number(workersArg), () => {
  const pool = new H1Pool(origin, { connections: null, connectTimeoutMs: 5000, headersTimeoutMs: 60000, bodyTimeoutMs: 60000, idleTimeoutMs: 30000 });
  return uws()
    .App()
    .any('/*', (res, req) => {
      const method = req.getMethod().toUpperCase();
      const path = req.getUrl();
      const headers = [];
      req.forEach((k, v) => {
        if (!DROP.has(k)) headers.push(k, v);
      });
      let aborted = false;
      let call = null;
      res.onAborted(() => {
        aborted = true;
        call?.abort();
      });
      const parts = [];
      res.onData((ab, last) => {
        parts.push(Buffer.from(ab.slice(0)));
        if (!last) return;
        const body = parts.length === 1 ? parts[0] : Buffer.concat(parts);
        let status = 200;
        let type = 'application/json';
        let buf = null;
        let off = 0;
        call = pool.request(
          { method, path, headers, body },
          {
            onHeaders(s, h) {
              status = s;
              for (let i = 0; i < h.length; i += 2) {
                if (h[i] === 'content-type') type = h[i + 1];
                else if (h[i] === 'content-length') buf = Buffer.allocUnsafe(Number(h[i + 1]));
              }
            },
            onData(c) {
              off += c.copy(buf, off);
              return true;
            },
            onComplete() {
              if (!aborted) res.cork(() => res.writeStatus(statusLine(status)).writeHeader('content-type', type).end(buf));
            },
            onError() {
              if (!aborted) res.cork(() => res.writeStatus('502 Bad Gateway').end());
            },
          },
        );
      });
    });
});
