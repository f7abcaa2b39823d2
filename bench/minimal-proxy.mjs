// The least a uWS proxy over node:net can do, as a lower bound for
// bench:gateway: the issue's "bare uWS proxy with a minimal keep-alive
// HTTP/1.1 client" anchor. One request in flight per upstream socket, the
// request written as one buffer, responses read with `onread` into one fixed
// buffer. It forwards only what the bench's sink needs (the path, the body,
// content-type and x-sluice-wait-ms), understands only Content-Length
// responses, and has no timeouts: not a proxy anyone should run, but what
// any proxy on this transport costs at least.
// Usage: node bench/minimal-proxy.mjs <upstream origin> <workers>. Prints {"port":N}.
import net from 'node:net';
import { uws, statusLine } from '../dist/common/uws.js';
import { clusterListen } from './lib/cluster-listen.mjs';

const [origin, workersArg = '1'] = process.argv.slice(2);
const upstream = new URL(origin);
const READ = Buffer.allocUnsafe(64 * 1024);

clusterListen(Number(workersArg), () => {
  const idle = [];
  const connect = () => {
    const c = new Upstream();
    c.sock = net.connect({ host: upstream.hostname, port: Number(upstream.port), noDelay: true, onread: { buffer: READ, callback: (n, b) => c.read(b, n) } });
    c.sock.on('error', () => c.fail());
    c.sock.on('close', () => c.fail());
    return c;
  };
  class Upstream {
    sock = null;
    res = null;
    aborted = false;
    head = null; // bytes of a response head split across reads
    status = 0;
    body = null;
    got = -1; // -1: reading the head
    send(res, buf) {
      this.res = res;
      this.aborted = false;
      this.sock.write(buf);
    }
    read(b, n) {
      if (this.got >= 0) {
        this.got += b.copy(this.body, this.got, 0, n);
      } else {
        const bytes = this.head === null ? b.subarray(0, n) : Buffer.concat([this.head, b.subarray(0, n)]);
        const end = bytes.indexOf('\r\n\r\n');
        if (end < 0) {
          this.head = Buffer.from(bytes); // b is overwritten by the next read
          return;
        }
        const text = bytes.latin1Slice(0, end);
        this.status = Number(text.slice(9, 12));
        this.body = Buffer.allocUnsafe(Number(/\r\ncontent-length: *(\d+)/i.exec(text)?.[1] ?? 0));
        this.got = bytes.copy(this.body, 0, end + 4);
        this.head = null;
      }
      if (this.got < this.body.length) return;
      const { res, body, status } = this;
      this.res = null;
      this.got = -1;
      idle.push(this);
      if (!this.aborted) res.cork(() => res.writeStatus(statusLine(status)).writeHeader('content-type', 'application/json').end(body));
    }
    fail() {
      const i = idle.indexOf(this);
      if (i >= 0) idle.splice(i, 1);
      const res = this.res;
      this.res = null;
      if (res !== null && !this.aborted) res.cork(() => res.writeStatus('502 Bad Gateway').end());
    }
  }
  return uws()
    .App()
    .any('/*', (res, req) => {
      const method = req.getMethod().toUpperCase();
      const path = req.getUrl();
      const type = req.getHeader('content-type');
      const wait = req.getHeader('x-sluice-wait-ms');
      let up = null;
      res.onAborted(() => {
        if (up === null) return;
        up.aborted = true;
        up.res = null;
        up.sock.destroy(); // what it reads next would belong to this request
      });
      const parts = [];
      res.onData((ab, last) => {
        parts.push(Buffer.from(ab.slice(0)));
        if (!last) return;
        const body = parts.length === 1 ? parts[0] : Buffer.concat(parts);
        const head = `${method} ${path} HTTP/1.1\r\nhost: ${upstream.host}\r\ncontent-type: ${type}\r\nx-sluice-wait-ms: ${wait}\r\ncontent-length: ${body.length}\r\n\r\n`;
        const buf = Buffer.allocUnsafe(head.length + body.length);
        buf.latin1Write(head, 0);
        body.copy(buf, head.length);
        up = idle.pop() ?? connect();
        up.send(res, buf);
      });
    });
});
