import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { startSink } from '../helpers/sink.js';
import { auth, newKey, startEchoUpstream, startGateway, waitFor } from '../helpers/gateway.js';

t.test('every endpoint is proxied; /v1/models lists what the key may use', async (t) => {
  const sink = await startSink(t, ['--output-tokens', '4']);
  const all = newKey();
  const narrow = newKey();
  const gw = await startGateway(t, {
    models: {
      'benchmark-model': { upstreams: [{ url: sink.url }] },
      'other-model': { upstreams: [{ url: sink.url }] },
    },
    keys: [
      { name: 'all', sha256: all.sha256, models: ['*'] },
      { name: 'narrow', sha256: narrow.sha256, models: ['other-model'] },
    ],
  });
  const post = (path: string, body: unknown, secret = all.secret) =>
    fetch(`${gw.url}${path}`, { method: 'POST', headers: auth(secret), body: JSON.stringify(body) });

  const chat = await post('/chat/completions', { model: 'benchmark-model', messages: [{ role: 'user', content: 'hi' }] });
  t.equal(chat.status, 200);
  t.equal((await chat.json()).object, 'chat.completion');
  const cmpl = await post('/completions', { model: 'benchmark-model', prompt: 'hi' });
  t.equal((await cmpl.json()).object, 'text_completion');
  const emb = await post('/embeddings', { model: 'benchmark-model', input: ['a', 'b'] });
  t.equal((await emb.json()).data.length, 2);

  const models = await (await fetch(`${gw.url}/models`, { headers: auth(all.secret) })).json();
  t.same(models.data.map((m: { id: string }) => m.id).sort(), ['benchmark-model', 'other-model']);
  const narrowModels = await (await fetch(`${gw.url}/models`, { headers: auth(narrow.secret) })).json();
  t.same(narrowModels.data.map((m: { id: string }) => m.id), ['other-model']);
  const one = await fetch(`${gw.url}/models/other-model`, { headers: auth(narrow.secret) });
  t.equal((await one.json()).id, 'other-model');
  const hidden = await fetch(`${gw.url}/models/benchmark-model`, { headers: auth(narrow.secret) });
  t.equal(hidden.status, 404);

  const stats = await sink.stats();
  t.equal(stats.byPath['/v1/chat/completions'], 1);
  t.equal(stats.byPath['/v1/completions'], 1);
  t.equal(stats.byPath['/v1/embeddings'], 1);

  const health = await fetch(`${gw.origin}/healthz`);
  t.equal(health.status, 200);
  t.equal((await fetch(`${gw.origin}/readyz`)).status, 200);
  const metrics = await (await fetch(`${gw.origin}/metrics`)).text();
  t.match(metrics, /sluice_requests_total\{model="benchmark-model",status="200"\} 3/, 'metrics aggregated over the workers');
  const series = (name: string): Map<string, number> => {
    const out = new Map<string, number>();
    for (const line of metrics.split('\n')) {
      const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
      if (m && m[1] === name) out.set(m[2]!, Number(m[3]));
    }
    return out;
  };
  const label = 'model="benchmark-model",status="200"';
  t.equal(series('sluice_request_duration_seconds_count').get(label), 3, 'latency histogram: 3 observations');
  const buckets = [...series('sluice_request_duration_seconds_bucket')].filter(([k]) => k.includes(label));
  t.equal(buckets.length, 18, '17 bounds and +Inf');
  t.ok(buckets.every(([, v], i) => i === 0 || v >= buckets[i - 1]![1]), 'buckets are cumulative');
  t.equal(buckets.find(([k]) => k.includes('le="+Inf"'))?.[1], 3);
  const sum = series('sluice_request_duration_seconds_sum').get(label)!;
  t.ok(sum > 0 && sum < 30, `latency sum is plausible (${sum} s)`);
  // Usage is counted from responses; the sink counts the same tokens.
  const tokens = series('sluice_tokens_total');
  t.equal(tokens.get('model="benchmark-model",kind="prompt"'), stats.promptTokens, 'prompt tokens match the sink');
  t.equal(tokens.get('model="benchmark-model",kind="completion"'), stats.completionTokens, 'completion tokens match the sink');
  t.match(metrics, /sluice_in_flight_requests/);
});

t.test('bodies arrive intact; the client key is not forwarded, the upstream key is injected; the model is rewritten', async (t) => {
  const echo = await startEchoUpstream(t);
  const key = newKey();
  const gw = await startGateway(
    t,
    {
      models: {
        plain: { upstreams: [{ url: echo.url, api_key_env: 'UPSTREAM_KEY' }] },
        alias: { upstreams: [{ url: echo.url, model: 'real-name' }] },
      },
      keys: [{ name: 'k', sha256: key.sha256 }],
    },
    { UPSTREAM_KEY: 'sk-upstream-secret' },
  );
  for (const size of [1024 * 1024, 10 * 1024 * 1024]) {
    const body = Buffer.from(JSON.stringify({ model: 'plain', input: randomBytes(size / 2).toString('hex') }));
    const res = await fetch(`${gw.url}/embeddings?x=1`, { method: 'POST', headers: { ...auth(key.secret), 'x-custom': 'kept' }, body });
    t.equal(res.status, 200, `${size} bytes`);
    t.equal(res.headers.get('x-echo'), 'yes', 'upstream headers are passed back');
    const got = await res.json();
    t.equal(got.bytes, body.length, `${size}: every byte arrived`);
    t.equal(got.sha256, createHash('sha256').update(body).digest('hex'), `${size}: the bytes are unchanged`);
    t.equal(got.url, '/v1/embeddings?x=1', 'path and query kept');
  }
  const last = echo.requests.at(-1)!;
  t.equal(last.headers.authorization, 'Bearer sk-upstream-secret', 'the upstream key is injected');
  t.equal(last.headers['x-custom'], 'kept', 'other client headers are forwarded');

  const res = await fetch(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(key.secret), body: JSON.stringify({ model: 'alias' }) });
  t.equal((await res.json()).model, 'real-name', 'the upstream sees its own model name');
  t.equal(echo.requests.at(-1)!.headers.authorization, undefined, 'no key when the upstream has none: the client key never goes upstream');
  for (const r of echo.requests) t.not(r.headers.authorization, `Bearer ${key.secret}`);
  t.ok(await waitFor(() => (gw.output().match(/"msg":"request"/g) ?? []).length >= 3), 'one log line per request');
  t.notMatch(gw.output(), key.secret, 'the client key is never logged');
  t.notMatch(gw.output(), 'sk-upstream-secret', 'the upstream key is never logged');
  t.match(gw.output(), /"key":"config:k"/, 'the log names the key id');
});

t.test('the official openai client works through the gateway, streaming and not', async (t) => {
  const sink = await startSink(t, ['--output-tokens', '5']);
  const key = newKey();
  const gw = await startGateway(t, { models: { 'benchmark-model': { upstreams: [{ url: sink.url }] } }, keys: [{ name: 'k', sha256: key.sha256 }] });
  const client = new OpenAI({ baseURL: gw.url, apiKey: key.secret, maxRetries: 0 });
  const chat = await client.chat.completions.create({ model: 'benchmark-model', messages: [{ role: 'user', content: 'hello' }] });
  t.equal(chat.usage?.completion_tokens, 5);
  const stream = await client.chat.completions.create({ model: 'benchmark-model', messages: [{ role: 'user', content: 'hello' }], stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
  t.equal(text, chat.choices[0]?.message.content);
  const emb = await client.embeddings.create({ model: 'benchmark-model', input: 'x' });
  t.equal(emb.data[0]?.embedding.length, 16);
  const denied = await new OpenAI({ baseURL: gw.url, apiKey: 'sk-wrong', maxRetries: 0 }).models.list().then(
    () => null,
    (err: unknown) => err,
  );
  t.ok(denied instanceof OpenAI.AuthenticationError, 'a wrong key is an AuthenticationError to the client');
  t.equal((denied as InstanceType<typeof OpenAI.APIError>).status, 401);
});
