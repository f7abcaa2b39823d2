// npm run bench:gateway — what the gateway costs, measured in one run on
// loopback with wrk (100 connections, 1 KB chat bodies):
//   wait 100 ms: throughput gateway/direct, added p50 and p99 (and nginx's);
//   wait 0:      CPU µs per request of the gateway's processes vs nginx's,
//                and the gateway's peak RSS; and two references with the
//                gateway's worker count: the transport floor (a bare uWS proxy
//                over the gateway's upstream client, bench/bare-proxy.mjs) and
//                the least any uWS + node:net proxy costs (bench/minimal-proxy.mjs).
// The gateway is measured once per key store (none: the key is a static key
// in the config; sqlite, redis: the key lives in the store, so the hot path goes
// through the key cache with the store attached). The gateways run one after
// the other against the same sink, never two at once, and each store's CPU/req
// and req/s are printed relative to store none's.
// Auth, routing, request logging and metrics are all on.
// Env: BENCH_SECONDS (default 10), BENCH_STORE (comma-separated subset of
// none,sqlite,redis; default all three).
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir, availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, execFileSync } from 'node:child_process';
import { spawnReady, jsonPort, cpuMicros, watchPeakRss, stop, track } from './lib/procs.mjs';
import { wrk, chatBody } from './lib/wrk.mjs';
import { startGatewayProcess, writeGatewayConfig } from './lib/gateway.mjs';

const STORES = ['none', 'sqlite', 'redis'];
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const stores = (process.env.BENCH_STORE ?? STORES.join(','))
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
for (const s of stores) {
  if (!STORES.includes(s)) {
    console.error(`BENCH_STORE: unknown store "${s}"; use a comma-separated subset of ${STORES.join(',')}`);
    process.exit(2);
  }
}
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-gw-'));
const body = chatBody(1024);
const path = '/v1/chat/completions';

const sink = await spawnReady(process.execPath, [cli, 'sink', '--port', '0', '--wait-ms', '0'], jsonPort);
const sinkPort = sink.ready.port;
const sinkUrl = `http://127.0.0.1:${sinkPort}`;
const nginx = existsSync('/usr/sbin/nginx') ? await startNginx() : null;
const redis = stores.includes('redis') ? await startRedis() : null;

/** wrk against url (after a 2 s warm-up), with the CPU and peak RSS of pid's process tree. */
async function run(name, url, pid, wait, secret) {
  const headers = { authorization: `Bearer ${secret}`, 'x-sluice-wait-ms': String(wait) };
  await wrk({ url: url + path, seconds: 2, body, headers });
  const cpu0 = pid ? cpuMicros(pid) : 0;
  const peak = pid ? watchPeakRss(pid) : null;
  const r = await wrk({ url: url + path, seconds, body, headers });
  const cpu = pid ? cpuMicros(pid) - cpu0 : NaN;
  return { name, wait, ...r, cpuUsPerReq: cpu / r.requests, peakRssMb: peak ? peak() / 1024 : NaN };
}

const results = [];
const waits = [0, 100]; // wait 0 first: it also warms up the JIT, which otherwise shows in the first p99.
const noKey = 'sk-none'; // direct and nginx do not check keys
for (const wait of waits) results.push(await run('direct', sinkUrl, null, wait, noKey));
if (nginx) for (const wait of waits) results.push(await run('nginx', nginx.url, nginx.proc.pid, wait, noKey));
// The references, with as many workers as the gateway: the transport floor (uWS + the gateway's
// upstream client and nothing else), and the least a uWS proxy over node:net can do.
for (const [name, script] of [['floor', './bare-proxy.mjs'], ['minimal', './minimal-proxy.mjs']]) {
  const ref = await spawnReady(process.execPath, [fileURLToPath(new URL(script, import.meta.url)), sinkUrl, String(availableParallelism())], jsonPort);
  results.push(await run(name, `http://127.0.0.1:${ref.ready.port}`, ref.proc.pid, 0, noKey));
  await stop(ref.proc);
}
for (const store of stores) {
  const gw = await startGateway(store);
  for (const wait of waits) results.push(await run(`sluice/${store}`, gw.url, gw.proc.pid, wait, gw.secret));
  await stop(gw.proc);
}

if (nginx) await stop(nginx.proc);
await stop(sink.proc);
if (redis) await stop(redis.proc);

report();

/** A gateway whose one key lives where `store` says. */
async function startGateway(storeKind) {
  let secret = `sk-bench-${randomBytes(24).toString('hex')}`;
  let store = { kind: 'none' };
  const keys = [];
  if (storeKind === 'none') {
    keys.push({ name: 'bench', sha256: createHash('sha256').update(secret).digest('hex') });
  } else {
    const target = storeKind === 'sqlite' ? join(dir, 'keys.db') : redis.url;
    store = storeKind === 'sqlite' ? { kind: 'sqlite', path: target } : { kind: 'redis', url: target };
    secret = JSON.parse(execFileSync(process.execPath, [cli, 'keys', 'create', '--store', target, '--name', 'bench']).toString()).secret;
  }
  const config = join(dir, `sluice-${storeKind}.yaml`);
  writeGatewayConfig(config, { sinkUrl, keys, store });
  const gw = await startGatewayProcess(config);
  // Request logs are read and dropped, as a log shipper would; the terminal stays readable.
  gw.proc.stdout.on('data', () => {});
  return { proc: gw.proc, url: `http://127.0.0.1:${gw.ready.port}`, secret };
}

async function startRedis() {
  const port = 21000 + Math.floor(Math.random() * 20000);
  const proc = track(spawn('/usr/bin/redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' }));
  await new Promise((r) => setTimeout(r, 500));
  return { proc, url: `redis://127.0.0.1:${port}` };
}

async function startNginx() {
  const port = 20000 + Math.floor(Math.random() * 20000);
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
    listen 127.0.0.1:${port};
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
  // Its own process group: at exit the master and its workers are stopped together.
  const proc = track(spawn('/usr/sbin/nginx', ['-c', conf, '-g', 'daemon off;'], { stdio: 'inherit', detached: true }), true);
  await new Promise((r) => setTimeout(r, 500));
  return { proc, url: `http://127.0.0.1:${port}` };
}

function report() {
  const f = (n, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '-');
  const get = (name, wait) => results.find((r) => r.name === name && r.wait === wait);
  console.log(`\ngateway benchmark: wrk -c100 -t2, POST 1 KB chat completions, ${seconds}s per cell, key stores: ${stores.join(', ')}, all on this machine\n`);
  console.log('| path          | wait ms |    req/s |  p50 ms |  p99 ms | CPU µs/req | peak RSS MB | errors |');
  console.log('|---------------|---------|----------|---------|---------|------------|-------------|--------|');
  for (const r of results) {
    console.log(
      `| ${r.name.padEnd(13)} | ${String(r.wait).padStart(7)} | ${f(r.rps, 0).padStart(8)} | ${f(r.p50).padStart(7)} | ${f(r.p99).padStart(7)} | ${f(r.cpuUsPerReq, 1).padStart(10)} | ${f(r.peakRssMb, 0).padStart(11)} | ${String(r.errors).padStart(6)} |`,
    );
  }
  const d100 = get('direct', 100);
  const n100 = get('nginx', 100);
  const n0 = get('nginx', 0);
  console.log('');
  if (nginx) {
    console.log(`nginx: wait 100: throughput / direct = ${f((n100.rps / d100.rps) * 100, 1)}%, adds p50 ${f(n100.p50 - d100.p50)} ms, p99 ${f(n100.p99 - d100.p99)} ms`);
  } else {
    console.log('nginx is not installed: no nginx baseline in this run');
  }
  for (const store of stores) {
    const g100 = get(`sluice/${store}`, 100);
    const g0 = get(`sluice/${store}`, 0);
    console.log(`\nstore ${store}:`);
    console.log(`  wait 100: sluice throughput / direct = ${f((g100.rps / d100.rps) * 100, 1)}% (goal >= 98%)`);
    console.log(`  wait 100: sluice adds p50 ${f(g100.p50 - d100.p50)} ms (goal <= 2), p99 ${f(g100.p99 - d100.p99)} ms (goal <= 5)`);
    if (nginx) console.log(`  wait 0:   CPU per request sluice ${f(g0.cpuUsPerReq, 1)} µs, nginx ${f(n0.cpuUsPerReq, 1)} µs: ratio ${f(g0.cpuUsPerReq / n0.cpuUsPerReq)}x (goal <= 1.5x)`);
    const floor = get('floor', 0);
    console.log(`  wait 0:   CPU per request above the transport floor (bare uWS + upstream client, ${f(floor.cpuUsPerReq, 1)} µs${nginx ? `, ${f(floor.cpuUsPerReq / n0.cpuUsPerReq)}x nginx` : ''}): ${f(g0.cpuUsPerReq - floor.cpuUsPerReq, 1)} µs for auth, routing, logging, metrics`);
    console.log(`  wait 0:   sluice ${f(g0.rps, 0)} req/s, peak RSS ${f(g0.peakRssMb, 0)} MB`);
  }
  const minimal = get('minimal', 0);
  if (nginx) {
    const room = 1.5 * n0.cpuUsPerReq - minimal.cpuUsPerReq;
    console.log(
      `\nthe least a uWS + node:net proxy costs (bench/minimal-proxy.mjs: path, body and 2 headers forwarded, Content-Length only, no timeouts): ${f(minimal.cpuUsPerReq, 1)} µs, ${f(minimal.cpuUsPerReq / n0.cpuUsPerReq)}x nginx; 1.5x nginx leaves ${f(room, 1)} µs per request for everything else`,
    );
  }
  const none0 = get('sluice/none', 0);
  const none100 = get('sluice/none', 100);
  const others = stores.filter((s) => s !== 'none');
  if (others.length > 0) {
    console.log('\nthe store\'s cost with the key cached, relative to store none (1.00x and +0 ms: no loss):');
    if (!none0) console.log('  store none was not measured in this run (BENCH_STORE): no baseline');
    else
      for (const store of others) {
        const g0 = get(`sluice/${store}`, 0);
        const g100 = get(`sluice/${store}`, 100);
        const ms = (n) => `${n >= 0 ? '+' : ''}${f(n)} ms`;
        console.log(
          `  store ${store}: CPU/req ${f(g0.cpuUsPerReq / none0.cpuUsPerReq)}x of none, req/s ${f(g0.rps / none0.rps)}x (wait 0); p50 ${ms(g100.p50 - none100.p50)}, p99 ${ms(g100.p99 - none100.p99)} (wait 100)`,
        );
      }
  }
}
