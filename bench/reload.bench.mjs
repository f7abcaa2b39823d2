// npm run bench:reload — how many requests a config reload (SIGHUP) fails.
// wrk drives the gateway (2 threads, 100 connections, 1 KB chat bodies, sink
// wait 5 ms) while the gateway is reloaded every 2 s, twice over:
//   keep-alive:       the connections stay open; the old workers answer their
//                     last request with Connection: close and clients reconnect;
//   new connections:  every request on a new connection (Connection: close),
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
import { wrk } from './lib/wrk.mjs';

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

const original = readSysctl();
const settings = original === null ? [null] : writeSysctl(original) ? [0, 1] : [original];

const sink = await spawnReady(process.execPath, [cli, 'sink', '--port', '0', '--wait-ms', '5'], jsonPort);
const sinkUrl = `http://127.0.0.1:${sink.ready.port}`;
const secret = `sk-bench-${randomBytes(24).toString('hex')}`;
const config = join(dir, 'sluice.yaml');
const writeConfig = (weight) =>
  writeFileSync(
    config,
    [
      'listen: { host: 127.0.0.1, port: 0 }',
      'workers: auto',
      'models:',
      '  benchmark-model:',
      `    upstreams: [{ url: "${sinkUrl}/v1", weight: ${weight} }]`,
      'keys:',
      `  - { name: bench, sha256: ${createHash('sha256').update(secret).digest('hex')}, models: ["*"] }`,
      'store: { kind: none }',
      'log: { level: info, requests: false }',
      'shutdown: { grace_ms: 0 }',
    ].join('\n') + '\n',
  );

const results = [];
try {
  for (const migrate of settings) {
    if (migrate !== null) writeSysctl(migrate);
    for (const mode of ['keep-alive', 'new connections']) {
      writeConfig(1);
      const gw = await spawnReady(process.execPath, [cli, 'gateway', '--config', config], (l) => {
        const m = jsonPort(l);
        return m && m.msg === 'gateway listening' ? m : null;
      });
      let reloaded = 0;
      gw.proc.stdout.on('data', (d) => (reloaded += d.toString().split('"config reloaded"').length - 1));
      const headers = { Authorization: `Bearer ${secret}`, ...(mode === 'new connections' ? { Connection: 'close' } : {}) };
      const load = wrk({ url: `http://127.0.0.1:${gw.ready.port}/v1/chat/completions`, connections: 100, threads: 2, seconds, headers });
      const every = (seconds * 1000) / (reloads + 1);
      for (let i = 1; i <= reloads; i++) {
        await new Promise((r) => setTimeout(r, every));
        writeConfig(i + 1);
        gw.proc.kill('SIGHUP');
      }
      const r = await load;
      await stop(gw.proc);
      const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(r.raw);
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(r.raw)?.[1] ?? 0);
      results.push({ migrate, mode, requests: r.requests, rps: r.rps, reloaded, errors: r.errors, detail: sock ? `connect ${sock[1]}, read ${sock[2]}, write ${sock[3]}, timeout ${sock[4]}` : 'no socket errors', non2xx });
    }
  }
} finally {
  if (original !== null) writeSysctl(original);
  await stop(sink.proc);
}

console.log(`\nreload benchmark: wrk -c100 -t2 for ${seconds}s, a SIGHUP every ${((seconds / (reloads + 1))).toFixed(1)} s (${reloads}), sink wait 5 ms, all on this machine\n`);
console.log('| tcp_migrate_req | connections      | requests | req/s | reloads done | failed | non-2xx | socket errors |');
console.log('|-----------------|------------------|---------:|------:|-------------:|-------:|--------:|---------------|');
for (const r of results) {
  console.log(
    `| ${String(r.migrate ?? '?').padEnd(15)} | ${r.mode.padEnd(16)} | ${String(r.requests).padStart(8)} | ${r.rps.toFixed(0).padStart(5)} | ${String(r.reloaded).padStart(12)} | ${String(r.errors).padStart(6)} | ${String(r.non2xx).padStart(7)} | ${r.detail} |`,
  );
}
if (settings.length === 1) console.log(`\n(${SYSCTL} could not be changed here: run as root to measure both settings)`);
