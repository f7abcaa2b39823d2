// npm run bench:gateway — what the gateway costs, measured in one run on
// loopback with wrk (100 connections, 1 KB chat bodies):
//   wait 100 ms: throughput gateway/direct, added p50 and p99 (and nginx's);
//   wait 0:      CPU µs per request of the gateway's processes vs nginx's,
//                and the gateway's peak RSS.
// Auth (a static key), routing, request logging and metrics are all on.
// Env: BENCH_SECONDS (default 10), BENCH_STORE (none|sqlite|redis; default none).
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { spawnReady, jsonPort, cpuMicros, watchPeakRss, stop } from './lib/procs.mjs';
import { wrk, chatBody } from './lib/wrk.mjs';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-gw-'));
const storeKind = process.env.BENCH_STORE ?? 'none';
let secret = `sk-bench-${randomBytes(24).toString('hex')}`;
const sha256 = createHash('sha256').update(secret).digest('hex');
let storeLine = 'store: { kind: none }';
let redis = null;
if (storeKind === 'sqlite' || storeKind === 'redis') {
  // The key lives in the store (not the config), so the hot path goes through the key cache.
  let target = join(dir, 'keys.db');
  storeLine = `store: { kind: sqlite, path: "${target}" }`;
  if (storeKind === 'redis') {
    const port = 21000 + Math.floor(Math.random() * 20000);
    redis = spawn('/usr/bin/redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 500));
    target = `redis://127.0.0.1:${port}`;
    storeLine = `store: { kind: redis, url: "${target}" }`;
  }
  const { execFileSync } = await import('node:child_process');
  secret = JSON.parse(execFileSync(process.execPath, [cli, 'keys', 'create', '--store', target, '--name', 'bench']).toString()).secret;
}
const body = chatBody(1024);

const sink = await spawnReady(process.execPath, [cli, 'sink', '--port', '0', '--wait-ms', '0'], jsonPort);
const sinkPort = sink.ready.port;
const sinkUrl = `http://127.0.0.1:${sinkPort}`;

const config = join(dir, 'sluice.yaml');
writeFileSync(
  config,
  [
    'listen: { host: 127.0.0.1, port: 0 }',
    'workers: auto',
    'models:',
    '  benchmark-model:',
    `    upstreams: [{ url: "${sinkUrl}/v1" }]`,
    'keys:',
    `  - { name: bench, sha256: ${sha256}, models: ["*"] }`,
    'log: { level: info, requests: true }',
    storeLine,
  ].join('\n') + '\n',
);
// Request logs go to a file, as in production; the terminal stays readable.
const gateway = await spawnReady(process.execPath, [cli, 'gateway', '--config', config], (l) => {
  const m = jsonPort(l);
  return m && m.msg === 'gateway listening' ? m : null;
}, { stdio: ['ignore', 'pipe', 'inherit'] });
gateway.proc.stdout.on('data', () => {});
const gwUrl = `http://127.0.0.1:${gateway.ready.port}`;

let nginx = null;
let nginxUrl = null;
if (existsSync('/usr/sbin/nginx')) {
  const nginxPort = 20000 + Math.floor(Math.random() * 20000);
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes auto;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  upstream sink { server 127.0.0.1:${sinkPort}; keepalive 256; }
  server {
    listen 127.0.0.1:${nginxPort};
    location / {
      proxy_pass http://sink;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`,
  );
  nginx = spawn('/usr/sbin/nginx', ['-c', conf, '-g', 'daemon off;'], { stdio: 'inherit' });
  await new Promise((r) => setTimeout(r, 500));
  nginxUrl = `http://127.0.0.1:${nginxPort}`;
}

const path = '/v1/chat/completions';
const headersFor = (wait) => ({ authorization: `Bearer ${secret}`, 'x-sluice-wait-ms': String(wait) });

async function run(name, url, pid, wait) {
  await wrk({ url: url + path, seconds: 2, body, headers: headersFor(wait) }); // warm-up
  const cpu0 = pid ? cpuMicros(pid) : 0;
  const peak = pid ? watchPeakRss(pid) : null;
  const r = await wrk({ url: url + path, seconds, body, headers: headersFor(wait) });
  const cpu = pid ? cpuMicros(pid) - cpu0 : NaN;
  return { name, wait, ...r, cpuUsPerReq: cpu / r.requests, peakRssMb: peak ? peak() / 1024 : NaN };
}

const results = [];
// wait 0 first: it also warms up the JIT, which otherwise shows in the first p99.
for (const wait of [0, 100]) {
  results.push(await run('direct', sinkUrl, null, wait));
  results.push(await run('sluice', gwUrl, gateway.proc.pid, wait));
  if (nginx) results.push(await run('nginx', nginxUrl, nginx.pid, wait));
}

await stop(gateway.proc);
if (nginx) await stop(nginx);
await stop(sink.proc);
if (redis) await stop(redis);

const f = (n, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '-');
console.log(`\ngateway benchmark: wrk -c100 -t2, POST 1 KB chat completions, ${seconds}s per cell, key store: ${storeKind}, all on this machine\n`);
console.log('| path   | wait ms |    req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MB | errors |');
console.log('|--------|---------|----------|--------|--------|------------|-------------|--------|');
for (const r of results) {
  console.log(
    `| ${r.name.padEnd(6)} | ${String(r.wait).padStart(7)} | ${f(r.rps, 0).padStart(8)} | ${f(r.p50).padStart(6)} | ${f(r.p99).padStart(6)} | ${f(r.cpuUsPerReq, 1).padStart(10)} | ${f(r.peakRssMb, 0).padStart(11)} | ${String(r.errors).padStart(6)} |`,
  );
}
const get = (name, wait) => results.find((r) => r.name === name && r.wait === wait);
const d100 = get('direct', 100);
const g100 = get('sluice', 100);
const g0 = get('sluice', 0);
console.log('');
console.log(`wait 100: sluice throughput / direct = ${f((g100.rps / d100.rps) * 100, 1)}% (goal >= 98%)`);
console.log(`wait 100: sluice adds p50 ${f(g100.p50 - d100.p50)} ms (goal <= 2), p99 ${f(g100.p99 - d100.p99)} ms (goal <= 5)`);
if (nginx) {
  const n100 = get('nginx', 100);
  const n0 = get('nginx', 0);
  console.log(`wait 100: nginx throughput / direct = ${f((n100.rps / d100.rps) * 100, 1)}%, adds p50 ${f(n100.p50 - d100.p50)} ms, p99 ${f(n100.p99 - d100.p99)} ms`);
  console.log(`wait 0:   CPU per request sluice ${f(g0.cpuUsPerReq, 1)} µs, nginx ${f(n0.cpuUsPerReq, 1)} µs: ratio ${f(g0.cpuUsPerReq / n0.cpuUsPerReq)}x (goal <= 1.5x)`);
} else {
  console.log('nginx is not installed: no nginx baseline in this run');
}
console.log(`wait 0:   sluice ${f(g0.rps, 0)} req/s, peak RSS ${f(g0.peakRssMb, 0)} MB`);
