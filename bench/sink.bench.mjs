// npm run bench:sink — the sink's request rate and CPU per request at wait 0,
// 100 connections, against a trivial uWS server measured in the same run.
// Goal: the sink reaches >= 0.8 of the trivial server's rate.
import { fileURLToPath } from 'node:url';
import { spawnReady, jsonPort, cpuMicros, stop } from './lib/procs.mjs';
import { wrk, chatBody } from './lib/wrk.mjs';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const trivialJs = fileURLToPath(new URL('./trivial-uws.mjs', import.meta.url));

async function measure(name, cmd, args) {
  const { proc, ready } = await spawnReady(cmd, args, jsonPort);
  const url = `http://127.0.0.1:${ready.port}/v1/chat/completions`;
  await wrk({ url, seconds: 2, body: chatBody(1024) }); // warm-up
  const cpu0 = cpuMicros(proc.pid);
  const r = await wrk({ url, seconds, body: chatBody(1024) });
  const cpu = cpuMicros(proc.pid) - cpu0;
  await stop(proc);
  return { name, rps: r.rps, errors: r.errors, p50: r.p50, p99: r.p99, cpuUsPerReq: cpu / r.requests };
}

const results = { trivial: [], sink: [] };
for (let i = 0; i < rounds; i++) {
  // Alternate the order so drift on this shared machine hits both alike.
  const order = i % 2 === 0 ? ['trivial', 'sink'] : ['sink', 'trivial'];
  for (const which of order) {
    const r =
      which === 'trivial'
        ? await measure('trivial uWS', process.execPath, [trivialJs])
        : await measure('sluice sink', process.execPath, [cli, 'sink', '--port', '0', '--wait-ms', '0']);
    results[which].push(r);
  }
}
const best = (rs) => rs.reduce((a, b) => (b.rps > a.rps ? b : a));
const t = best(results.trivial);
const s = best(results.sink);
const row = (r) =>
  `| ${r.name.padEnd(12)} | ${r.rps.toFixed(0).padStart(8)} | ${r.p50.toFixed(2).padStart(7)} | ${r.p99.toFixed(2).padStart(7)} | ${r.cpuUsPerReq.toFixed(1).padStart(8)} | ${String(r.errors).padStart(6)} |`;
console.log(`\nsink benchmark: wrk -c100 -t2, POST 1 KB chat completion, wait 0, ${seconds}s x ${rounds} rounds (best round shown)\n`);
console.log('| server       |    req/s | p50 ms  | p99 ms  | CPU µs/req | errors |');
console.log('|--------------|----------|---------|---------|----------|--------|');
console.log(row(t));
console.log(row(s));
const ratio = s.rps / t.rps;
console.log(`\nthroughput ratio sink/trivial: ${ratio.toFixed(3)} (goal >= 0.8) ${ratio >= 0.8 ? 'PASS' : 'MISS'}`);
console.log(`CPU per request ratio sink/trivial: ${(s.cpuUsPerReq / t.cpuUsPerReq).toFixed(2)}`);
