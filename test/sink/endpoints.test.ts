import t from 'tap';
import { startSink } from '../helpers/sink.js';
import { estimatePromptTokens } from '../../common/tokens.js';

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

t.test('every endpoint answers a valid OpenAI body', async (t) => {
  const sink = await startSink(t, ['--models', 'benchmark-model,other-model', '--output-tokens', '5']);

  const models = await (await fetch(`${sink.url}/models`)).json();
  t.same(models.object, 'list');
  t.same(models.data.map((m: { id: string }) => m.id), ['benchmark-model', 'other-model']);
  t.equal(models.data[0].object, 'model');

  const chatBody = JSON.stringify({ model: 'benchmark-model', messages: [{ role: 'user', content: 'hello' }] });
  const chatRes = await post(`${sink.url}/chat/completions`, chatBody);
  t.equal(chatRes.status, 200);
  t.match(chatRes.headers.get('content-type'), /application\/json/);
  const chat = await chatRes.json();
  t.equal(chat.object, 'chat.completion');
  t.match(chat.id, /^chatcmpl-/);
  t.equal(chat.model, 'benchmark-model');
  t.equal(chat.choices[0].message.role, 'assistant');
  t.equal(typeof chat.choices[0].message.content, 'string');
  t.equal(chat.choices[0].finish_reason, 'stop');
  t.same(chat.usage, {
    prompt_tokens: estimatePromptTokens(Buffer.byteLength(chatBody)),
    completion_tokens: 5,
    total_tokens: estimatePromptTokens(Buffer.byteLength(chatBody)) + 5,
  });

  const capped = await (await post(`${sink.url}/chat/completions`, { model: 'x', max_tokens: 2 })).json();
  t.equal(capped.usage.completion_tokens, 2, 'max_tokens caps the output');
  t.equal(capped.choices[0].finish_reason, 'length');

  const cmpl = await (await post(`${sink.url}/completions`, { model: 'benchmark-model', prompt: 'hi' })).json();
  t.equal(cmpl.object, 'text_completion');
  t.equal(typeof cmpl.choices[0].text, 'string');
  t.equal(cmpl.usage.completion_tokens, 5);

  const emb = await (await post(`${sink.url}/embeddings`, { model: 'benchmark-model', input: ['a', 'b', 'c'] })).json();
  t.equal(emb.object, 'list');
  t.equal(emb.data.length, 3);
  t.equal(emb.data[2].index, 2);
  t.equal(emb.data[0].embedding.length, 16);
  t.equal(emb.usage.completion_tokens, undefined);
  t.ok(emb.usage.prompt_tokens > 0);

  const b64 = await (await post(`${sink.url}/embeddings`, { model: 'benchmark-model', input: 'a', encoding_format: 'base64' })).json();
  const bytes = Buffer.from(b64.data[0].embedding, 'base64');
  const floats = new Float32Array(new Uint8Array(bytes).buffer);
  t.equal(floats.length, 16, 'base64 embeddings decode to float32 vectors');
  t.ok(Math.abs(floats[0]! - emb.data[0].embedding[0]) < 1e-6);

  const health = await fetch(`${sink.origin}/healthz`);
  t.equal(health.status, 200);

  const missing = await fetch(`${sink.url}/nope`);
  t.equal(missing.status, 404);
  t.equal((await missing.json()).error.type, 'invalid_request_error');

  const stats = await sink.stats();
  t.equal(stats.byPath['/v1/chat/completions'], 2);
  t.equal(stats.byPath['/v1/embeddings'], 2);
  t.equal(stats.completionTokens, 5 + 2 + 5);
});

t.test('the wait applies, and x-sluice-wait-ms overrides it per request', async (t) => {
  const sink = await startSink(t, ['--wait-ms', '300']);
  let start = performance.now();
  await (await post(`${sink.url}/chat/completions`, { model: 'm' })).json();
  t.ok(performance.now() - start >= 290, 'the configured wait is applied');

  start = performance.now();
  const r = await post(`${sink.url}/chat/completions`, { model: 'm' }, { 'x-sluice-wait-ms': '0' });
  await r.json();
  const quick = performance.now() - start;
  start = performance.now();
  await (await post(`${sink.url}/chat/completions`, { model: 'm' }, { 'x-sluice-wait-ms': '600' })).json();
  const slow = performance.now() - start;
  t.ok(slow >= 590, `header wait 600 took ${slow.toFixed(0)} ms`);
  t.ok(quick < slow, 'header wait 0 answers sooner than header wait 600');
});
