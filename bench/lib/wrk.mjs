// Runs wrk (Debian package) with a POST of a fixed body and parses its output.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A chat completion body of exactly `bytes` bytes. */
export function chatBody(bytes, model = 'benchmark-model') {
  const base = JSON.stringify({ model, messages: [{ role: 'user', content: '' }] });
  const pad = bytes - Buffer.byteLength(base);
  if (pad < 0) throw new Error(`request body cannot be smaller than ${Buffer.byteLength(base)} bytes`);
  return JSON.stringify({ model, messages: [{ role: 'user', content: 'x'.repeat(pad) }] });
}

function luaScript(body, headers) {
  const lines = ['wrk.method = "POST"', `wrk.body = ${JSON.stringify(body)}`, 'wrk.headers["Content-Type"] = "application/json"'];
  for (const [k, v] of Object.entries(headers)) lines.push(`wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`);
  return lines.join('\n') + '\n';
}

function ms(value, unit) {
  const v = Number(value);
  return unit === 'us' ? v / 1000 : unit === 's' ? v * 1000 : unit === 'm' ? v * 60000 : v;
}

/**
 * wrk -c connections -d seconds against url. Returns { rps, requests, errors, p50, p90, p99 } (ms).
 */
export function wrk({ url, connections = 100, threads = 2, seconds = 10, body = chatBody(1024), headers = {}, timeoutS = 10 }) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-wrk-'));
  const script = join(dir, 'post.lua');
  writeFileSync(script, luaScript(body, headers));
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--timeout', `${timeoutS}s`, '--latency', '-s', script, url];
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { maxBuffer: 1 << 20 }, (err, stdout) => {
      if (err) return reject(new Error(`wrk failed: ${err.message}`));
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
      const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
      const pct = (p) => {
        const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s|m)`).exec(stdout);
        return m ? ms(m[1], m[2]) : NaN;
      };
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
      const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
      const errors = non2xx + (sockErr ? sockErr.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
      resolve({ rps, requests, errors, p50: pct(50), p90: pct(90), p99: pct(99), raw: stdout });
    });
  });
}
