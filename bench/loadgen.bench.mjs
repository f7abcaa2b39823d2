// npm run bench:loadgen — the load generator against the sink:
//  1. 100 workers, sink wait 100 ms: the rate against the theoretical 1000 req/s
//     (goal >= 0.99) and p99 (goal <= 103 ms);
//  2. sink wait 0, 100 connections: the request rate against autocannon's on the
//     same sink in the same run (goal >= 0.9), rounds alternating the order.
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { spawnReady, jsonPort, cpuMicros, stop, track } from './lib/procs.mjs';
import { chatBody, wrk } from './lib/wrk.mjs';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const autocannonBin = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
// The sink, this load generator and autocannon share the host's cores: other
// load on the host moves the ratios, so each figure is printed with it.
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
console.log(`load average at start: ${load()}`);

/** Runs a child to completion; resolves with stdout and the CPU time it used (µs, sampled just before exit). */
function runChild(cmd, args) {
  return new Promise((resolve, reject) => {
    const proc = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    let cpu = 0;
    const sampler = setInterval(() => (cpu = Math.max(cpu, cpuMicros(proc.pid))), 100);
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (err += d));
    proc.on('close', (code) => {
      clearInterval(sampler);
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`));
      else resolve({ out, cpu });
    });
  });
}

async function sluiceLoadgen(url, workers, s) {
  const args = [cli, 'loadgen', 'run', '--url', url, '--workers', String(workers), '--duration', `${s}s`, '--warmup', '1s', '--request-bytes', '1024', '--json'];
  const { out, cpu } = await runChild(process.execPath, args);
  const r = JSON.parse(out);
  return { name: 'sluice loadgen', rps: r.rps, p50: r.latencyMs.p50, p99: r.latencyMs.p99, errors: r.errors, cpuUsPerReq: cpu / r.requests };
}

async function autocannon(url, connections, s) {
  const args = [
    autocannonBin, '-j', '-c', String(connections), '-d', String(s), '-m', 'POST',
    '-H', 'content-type=application/json', '-b', chatBody(1024).toString(),
    '--warmup', '[', '-c', String(connections), '-d', '1', ']',
    `${url}/chat/completions`,
  ];
  const { out, cpu } = await runChild(process.execPath, args);
  const r = JSON.parse(out.trim().split('\n').pop());
  const total = r.requests.total;
  return { name: 'autocannon', rps: total / r.duration, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx, cpuUsPerReq: cpu / total };
}

async function withSink(waitMs, fn) {
  const { proc, ready } = await spawnReady(process.execPath, [cli, 'sink', '--port', '0', '--wait-ms', String(waitMs)], jsonPort);
  try {
    return await fn(`http://127.0.0.1:${ready.port}/v1`);
  } finally {
    await stop(proc);
  }
}

const row = (r) =>
  `| ${r.name.padEnd(15)} | ${r.rps.toFixed(0).padStart(8)} | ${r.p50.toFixed(2).padStart(7)} | ${r.p99.toFixed(2).padStart(7)} | ${(Number.isNaN(r.cpuUsPerReq) ? 'n/a' : r.cpuUsPerReq.toFixed(1)).padStart(10)} | ${String(r.errors).padStart(6)} |`;
// CPU per request covers the whole process: start-up and warm-up included.
const header = ['| generator       |    req/s | p50 ms  | p99 ms  | CPU µs/req | errors |', '|-----------------|----------|---------|---------|------------|--------|'];

// 1. The reference scenario: 100 users, 1 KB, sink wait 0.1 s. wrk on the same
// sink shows what the sink and the host allow (the sink answers at arrival +
// wait on average, mocksink/deadline.ts). wrk's connections start together and
// stay in waves, and its rate counts whole waves in the duration: at most 99
// waves of 100 in 10 s, so it reads <= 990 req/s.
const [ref, wrkRef] = await withSink(100, async (url) => {
  const w = await wrk({ url: `${url}/chat/completions`, connections: 100, threads: 1, seconds, body: chatBody(1024) });
  const l = await sluiceLoadgen(url, 100, seconds);
  return [l, { name: 'wrk (reference)', rps: w.rps, p50: w.p50, p99: w.p99, errors: w.errors, cpuUsPerReq: NaN }];
});
console.log(`\nloadgen benchmark 1: 100 workers, 1 KB bodies, sink wait 100 ms, ${seconds}s (after a 1 s warm-up)\n`);
console.log(header.join('\n'));
console.log(row(wrkRef));
console.log(row(ref));
const refRatio = ref.rps / 1000;
console.log(`\nrate / theoretical 1000 req/s: ${refRatio.toFixed(4)} (goal >= 0.99) ${refRatio >= 0.99 ? 'PASS' : 'MISS'}`);
console.log(`p99: ${ref.p99.toFixed(2)} ms (goal <= 103) ${ref.p99 <= 103 ? 'PASS' : 'MISS'}`);
console.log(`rate / wrk's on the same sink: ${(ref.rps / wrkRef.rps).toFixed(4)}`);

// 2. Raw rate at wait 0 against autocannon, alternating the order each round.
const results = { sluice: [], autocannon: [] };
await withSink(0, async (url) => {
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 === 0 ? ['sluice', 'autocannon'] : ['autocannon', 'sluice'];
    for (const which of order) {
      results[which].push(which === 'sluice' ? await sluiceLoadgen(url, 100, seconds) : await autocannon(url, 100, seconds));
    }
  }
});
const best = (rs) => rs.reduce((a, b) => (b.rps > a.rps ? b : a));
const s = best(results.sluice);
const a = best(results.autocannon);
console.log(`\nloadgen benchmark 2: 100 connections, 1 KB bodies, sink wait 0, ${seconds}s x ${rounds} rounds (best round shown)\n`);
console.log(header.join('\n'));
console.log(row(a));
console.log(row(s));
console.log(`rounds (req/s): sluice ${results.sluice.map((r) => r.rps.toFixed(0)).join(', ')}; autocannon ${results.autocannon.map((r) => r.rps.toFixed(0)).join(', ')}`);
const ratio = s.rps / a.rps;
console.log(`\nthroughput ratio sluice loadgen / autocannon: ${ratio.toFixed(3)} (goal >= 0.9) ${ratio >= 0.9 ? 'PASS' : 'MISS'}`);
console.log(`CPU per request ratio sluice loadgen / autocannon: ${(s.cpuUsPerReq / a.cpuUsPerReq).toFixed(2)}`);
console.log(`\nload average at end: ${load()}`);
