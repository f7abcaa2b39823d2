// npm run bench:daemon — whether the orchestrator daemon stays responsive
// while a run drives load: it runs a matrix (100 users through sluice, sink
// wait 20 ms, 15 s) and meanwhile asks its API every 50 ms (the history, the
// run with its results, /metrics), timing each answer from this process.
// Prints p50/p99/max per endpoint, and the same with no run for reference.
// Env: BENCH_SECONDS (default 15).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { spawnReady, jsonPort, stop } from './lib/procs.mjs';

const seconds = Number(process.env.BENCH_SECONDS ?? 15);
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const data = mkdtempSync(join(tmpdir(), 'sluice-bench-daemon-'));
const daemon = await spawnReady(process.execPath, [cli, 'orchestrator', 'serve', '--port', '0', '--data', data], (l) => {
  const m = jsonPort(l);
  return m && m.msg === 'orchestrator listening' ? m : null;
});
daemon.proc.stdout.on('data', () => {});
const origin = `http://127.0.0.1:${daemon.ready.port}`;

async function timed(path) {
  const t0 = performance.now();
  const res = await request(origin + path);
  await res.body.arrayBuffer();
  return performance.now() - t0;
}

async function probe(paths, until) {
  const times = Object.fromEntries(paths.map((p) => [p, []]));
  while (until()) {
    for (const p of paths) times[p].push(await timed(p));
    await new Promise((r) => setTimeout(r, 50));
  }
  return times;
}

const q = (a, p) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};

try {
  // A finished run first, so the history and a results file are not empty.
  const matrix = { scenarios: [{ name: 'load', workers: 100, wait_ms: 20, duration_s: seconds }], systems: ['baseline', 'sluice'], warmup_s: 1 };
  const post = async () => (await (await request(origin + '/v1/runs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ matrix }) })).body.json()).id;
  const status = async (id) => (await (await request(`${origin}/v1/runs/${id}`)).body.json()).status;
  const idle = await probe(['/v1/runs', '/metrics'], (() => {
    const end = Date.now() + 3000;
    return () => Date.now() < end;
  })());
  const id = await post();
  let running = true;
  const watcher = (async () => {
    while (['queued', 'running'].includes(await status(id))) await new Promise((r) => setTimeout(r, 500));
    running = false;
  })();
  const busy = await probe(['/v1/runs', `/v1/runs/${id}`, '/metrics'], () => running);
  await watcher;
  console.log(`\ndaemon responsiveness: API answer times (ms) from a client on this machine, one request every 50 ms\n`);
  console.log('| while             | endpoint             | requests |  p50 |  p99 |  max |');
  console.log('|-------------------|----------------------|---------:|-----:|-----:|-----:|');
  const row = (when, path, a) => console.log(`| ${when.padEnd(17)} | ${path.replace(id, ':id').padEnd(20)} | ${String(a.length).padStart(8)} | ${q(a, 0.5).toFixed(1).padStart(4)} | ${q(a, 0.99).toFixed(1).padStart(4)} | ${Math.max(...a).toFixed(1).padStart(4)} |`);
  for (const [p, a] of Object.entries(idle)) row('idle', p, a);
  for (const [p, a] of Object.entries(busy)) row(`a run (${seconds} s x 2)`, p, a);
  const all = Object.values(busy).flat();
  console.log(`\nduring the run: p99 ${q(all, 0.99).toFixed(1)} ms over ${all.length} answers (goal < 50 ms)`);
} finally {
  await stop(daemon.proc);
}
