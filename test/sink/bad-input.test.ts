import t from 'tap';
import { startSink } from '../helpers/sink.js';

t.test('bad input gets an OpenAI-style 400 or 413 and the sink keeps serving', async (t) => {
  const sink = await startSink(t, ['--max-body-bytes', '1000']);
  const cases: Array<[string, string, number, string | null]> = [
    ['malformed JSON', '{"model":', 400, null],
    ['not an object', '[1,2]', 400, null],
    ['missing model', '{"messages":[]}', 400, 'model'],
    ['model not a string', '{"model":42}', 400, 'model'],
    ['oversize body', JSON.stringify({ model: 'm', pad: 'x'.repeat(5000) }), 413, null],
  ];
  for (const [name, body, status, param] of cases) {
    const res = await fetch(`${sink.url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    t.equal(res.status, status, `${name}: status ${status}`);
    const err = (await res.json()).error;
    t.equal(typeof err.message, 'string', `${name}: message`);
    t.equal(err.type, 'invalid_request_error', `${name}: type`);
    t.equal(err.param, param, `${name}: param`);
  }
  const emb = await fetch(`${sink.url}/embeddings`, { method: 'POST', body: '{"model":"m"}' });
  t.equal(emb.status, 400, 'embeddings without input');
  t.equal((await emb.json()).error.param, 'input');
  const ok = await fetch(`${sink.url}/chat/completions`, { method: 'POST', body: '{"model":"m"}' });
  t.equal(ok.status, 200, 'still serving after bad input');
  t.equal(sink.proc.exitCode, null, 'the sink did not crash');
});

t.test('requests that could exhaust the sink, or corrupt its wait: 400, and it keeps serving with stats intact', async (t) => {
  const sink = await startSink(t);
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${sink.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  // 2,049 inputs is over OpenAI's limit; 2e6 of them used to crash the process (the response is too big for a string).
  const many = await post('/embeddings', { model: 'm', input: Array(2_000_000).fill('') });
  t.equal(many.status, 400, '2,000,000 embedding inputs: 400');
  t.equal((await many.json()).error.param, 'input');
  t.equal((await post('/embeddings', { model: 'm', input: Array(2049).fill('a') })).status, 400, '2,049 inputs: 400');
  const most = await post('/embeddings', { model: 'm', input: Array(2048).fill('a') });
  t.equal(most.status, 200, '2,048 inputs: served');
  t.equal((await most.json()).data.length, 2048);

  for (const field of ['max_tokens', 'max_completion_tokens']) {
    const frac = await post('/chat/completions', { model: 'm', [field]: 2.5 });
    t.equal(frac.status, 400, `fractional ${field}: 400`);
    t.equal((await frac.json()).error.param, field);
  }

  const before = (await (await fetch(`${sink.origin}/sink/stats`)).json()) as { wait: Record<string, number> };
  const started = Date.now();
  const huge = await post('/chat/completions', { model: 'm' }, { 'x-sluice-wait-ms': '1e10' });
  t.equal(huge.status, 400, 'a wait past what a timer can take: 400 (it used to answer at once)');
  t.match((await huge.json()).error.message, /x-sluice-wait-ms/);
  t.ok(Date.now() - started < 5000);
  const waited = await post('/chat/completions', { model: 'm' }, { 'x-sluice-wait-ms': '20' });
  t.equal(waited.status, 200);
  const after = (await (await fetch(`${sink.origin}/sink/stats`)).json()) as { wait: Record<string, number> };
  for (const [k, v] of Object.entries(after.wait)) t.ok(Number.isFinite(v) && Math.abs(v) < 1e9, `stats.wait.${k} stays sane (${v})`);
  t.ok(Object.keys(before.wait).length > 0);
  t.equal(sink.proc.exitCode, null, 'the sink did not crash');
});
