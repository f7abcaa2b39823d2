// An https upstream through the gateway: trusted through `tls.ca_file`, refused
// (502) when its certificate is not trusted, accepted with
// `reject_unauthorized: false`; an unreadable ca_file is a config error.
import { mkdtempSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { auth, newKey, startGateway, writeConfig } from '../helpers/gateway.js';
import { runCli } from '../helpers/sink.js';
import { makeCert } from '../helpers/tls-cert.js';

const pair = makeCert('IP:127.0.0.1,DNS:localhost');
const caFile = join(mkdtempSync(join(tmpdir(), 'sluice-ca-')), 'ca.pem');
writeFileSync(caFile, pair.cert);

async function startHttpsUpstream(t: Test): Promise<{ url: string; seen: () => number }> {
  let seen = 0;
  const server = https.createServer({ key: pair.key, cert: pair.cert }, (req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      seen++;
      const body = JSON.parse(Buffer.concat(parts).toString()) as { model: string };
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ id: 'x', object: 'chat.completion', model: body.model, via: 'tls', usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  server.keepAliveTimeout = 5000;
  const port = (server.address() as { port: number }).port;
  return { url: `https://127.0.0.1:${port}/v1`, seen: () => seen };
}

const chat = (url: string, secret: string) =>
  fetch(`${url}/chat/completions`, { method: 'POST', headers: auth(secret), body: JSON.stringify({ model: 'm', messages: [] }) });

t.test('an https upstream is trusted through tls.ca_file and its connections are kept alive', async (t) => {
  const up = await startHttpsUpstream(t);
  const key = newKey();
  const gw = await startGateway(t, {
    workers: 1,
    models: { m: { upstreams: [{ url: up.url, tls: { ca_file: caFile } }] } },
    keys: [{ name: 'k', sha256: key.sha256 }],
  });
  for (let i = 0; i < 3; i++) {
    const res = await chat(gw.url, key.secret);
    t.equal(res.status, 200, `request ${i + 1}: 200`);
    t.equal((await res.json()).via, 'tls');
  }
  t.equal(up.seen(), 3, 'the upstream answered every request');
});

t.test('an untrusted certificate is a 502; reject_unauthorized: false accepts it', async (t) => {
  const up = await startHttpsUpstream(t);
  const key = newKey();
  const strict = await startGateway(t, {
    workers: 1,
    models: { m: { upstreams: [{ url: up.url }] } },
    keys: [{ name: 'k', sha256: key.sha256 }],
  });
  const refused = await chat(strict.url, key.secret);
  t.equal(refused.status, 502, 'self-signed certificate not trusted: 502');
  t.equal((await refused.json()).error.code, 'upstream_error');
  t.equal(up.seen(), 0, 'nothing reached the upstream');

  const lax = await startGateway(t, {
    workers: 1,
    models: { m: { upstreams: [{ url: up.url, tls: { reject_unauthorized: false } }] } },
    keys: [{ name: 'k', sha256: key.sha256 }],
  });
  const ok = await chat(lax.url, key.secret);
  t.equal(ok.status, 200);
  t.equal(up.seen(), 1);
});

t.test('an unreadable tls.ca_file is a config error naming the field, exit 2', async (t) => {
  const cfg = writeConfig({ models: { m: { upstreams: [{ url: 'https://127.0.0.1:9/v1', tls: { ca_file: '/nonexistent/ca.pem' } }] } } });
  const r = await runCli(['gateway', '--config', cfg]);
  t.equal(r.code, 2);
  t.match(r.stderr, /models\.m\.upstreams\.0\.tls\.ca_file: cannot read \/nonexistent\/ca\.pem \(ENOENT\)/);
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
});
