// npm run bench:reload — how many requests a config reload (SIGHUP) fails.
// 100 connections drive the gateway (1 KB chat bodies, sink wait 5 ms) while
// it is reloaded every 2 s, twice over:
//   keep-alive:       wrk; the connections stay open; the old workers answer
//                     their last request with Connection: close and clients
//                     reconnect;
//   new connections:  a Node client sending every request on a new connection,
//                     so connections sit in the accept queues when the old
//                     workers close their listeners.
// With SO_REUSEPORT, Linux resets the connections queued on a listener that
// closes unless net.ipv4.tcp_migrate_req=1 (kernel >= 5.14) moves them to a
// live listener of the port. As root the run is made with the sysctl at 0 and
// at 1 (restored afterwards); otherwise with its current value.
// Env: BENCH_SECONDS (default 12), BENCH_RELOADS (default 5).
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash, randomBytes } from 'node:crypto';
import { spawnReady, jsonPort, stop } from './lib/procs.mjs';
import { request } from 'node:http';
import { wrk, chatBody } from './lib/wrk.mjs';
import { startGatewayProcess, writeGatewayConfig } from './lib/gateway.mjs';

const SYSCTL = '/proc/sys/net/ipv4/tcp_migrate_req';
const seconds = Number(process.env.BENCH_SECONDS ?? 12);
const reloads = Number(process.env.BENCH_RELOADS ?? 5);
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-reload-'));

function readSysctl() {
  try {
    return Number(readFileSync(SYSCTL, 'utf8').trim());
  } catch {
    return null;
  }
}
function writeSysctl(v) {
  try {
    writeFileSync(SYSCTL, String(v));
    return readSysctl() === v;
  } catch {
    return false;
  }
}

/**
 * `concurrency` loops, each sending one request per new connection (wrk counts every connection
 * the server closes after its response as a read error, so it cannot tell a reset from a close).
 */
async function newConnectionLoad(url, secret, seconds, concurrency = 100) {
  const body = Buffer.from(chatBody(1024));
  const headers = { authorization: `Bearer ${secret}`, 'content-type': 'application/json', 'content-length': body.length, connection: 'close' };
  const end = Date.now() + seconds * 1000;
  const errors = {};
  let ok = 0;
  let non2xx = 0;
  const one = () =>
    new Promise((resolve) => {
      const req = request(url, { method: 'POST', agent: false, headers }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode >= 200 && res.statusCode < 300) ok++;
          else non2xx++;
          resolve();
        });
        res.on('error', (e) => {
          errors[e.code ?? 'other'] = (errors[e.code ?? 'other'] ?? 0) + 1;
          resolve();
        });
      });
      req.on('error', (e) => {
        errors[e.code ?? 'other'] = (errors[e.code ?? 'other'] ?? 0) + 1;
        resolve();
      });
      req.end(body);
    });
  const started = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  const failed = Object.values(errors).reduce((a, b) => a + b, 0);
  const requests = ok + non2xx + failed;
  const detail = failed === 0 ? 'none' : Object.entries(errors).map(([k, v]) => `${k} ${v}`).join(', ');
  return { requests, rps: requests / ((Date.now() - started) / 1000), errors: failed + non2xx, non2xx, detail };
}

const original = readSysctl();
const settings = original === null ? [null] : writeSysctl(original) ? [0, 1] : [original];

const sink = await spawnReady(process.execPath, [cli, 'sink', '--port', '0', '--wait-ms', '5'], jsonPort);
const sinkUrl = `http://127.0.0.1:${sink.ready.port}`;
const secret = `sk-bench-${randomBytes(24).toString('hex')}`;
const config = join(dir, 'sluice.yaml');
const writeConfig = (weight) =>
  writeGatewayConfig(config, { sinkUrl, weight, requests: false, keys: [{ name: 'bench', sha256: createHash('sha256').update(secret).digest('hex') }] });

const results = [];
try {
  for (const migrate of settings) {
    if (migrate !== null) writeSysctl(migrate);
    for (const mode of ['keep-alive', 'new connections']) {
      writeConfig(1);
      const gw = await startGatewayProcess(config);
      let reloaded = 0;
      gw.proc.stdout.on('data', (d) => (reloaded += d.toString().split('"config reloaded"').length - 1));
      const url = `http://127.0.0.1:${gw.ready.port}/v1/chat/completions`;
      const load =
        mode === 'keep-alive'
          ? wrk({ url, connections: 100, threads: 2, seconds, headers: { Authorization: `Bearer ${secret}` } }).then((r) => {
              const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(r.raw);
              const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(r.raw)?.[1] ?? 0);
              return { ...r, non2xx, detail: sock ? `connect ${sock[1]}, read ${sock[2]}, write ${sock[3]}, timeout ${sock[4]}` : 'none' };
            })
          : newConnectionLoad(url, secret, seconds);
      const every = (seconds * 1000) / (reloads + 1);
      for (let i = 1; i <= reloads; i++) {
        await new Promise((r) => setTimeout(r, every));
        writeConfig(i + 1);
        gw.proc.kill('SIGHUP');
      }
      const r = await load;
      await stop(gw.proc);
      results.push({ migrate, mode, requests: r.requests, rps: r.rps, reloaded, errors: r.errors, detail: r.detail, non2xx: r.non2xx });
    }
  }
} finally {
  if (original !== null) writeSysctl(original);
  await stop(sink.proc);
}

console.log(`\nreload benchmark: 100 connections (keep-alive: wrk -t2; new connections: a Node client, one request per connection) for ${seconds}s, a SIGHUP every ${((seconds / (reloads + 1))).toFixed(1)} s (${reloads}), sink wait 5 ms, all on this machine\n`);
console.log('| tcp_migrate_req | connections      | requests | req/s | reloads done | failed | non-2xx | errors by kind |');
console.log('|-----------------|------------------|---------:|------:|-------------:|-------:|--------:|---------------|');
for (const r of results) {
  console.log(
    `| ${String(r.migrate ?? '?').padEnd(15)} | ${r.mode.padEnd(16)} | ${String(r.requests).padStart(8)} | ${r.rps.toFixed(0).padStart(5)} | ${String(r.reloaded).padStart(12)} | ${String(r.errors).padStart(6)} | ${String(r.non2xx).padStart(7)} | ${r.detail} |`,
  );
}
if (settings.length === 1) console.log(`\n(${SYSCTL} could not be changed here: run as root to measure both settings)`);
