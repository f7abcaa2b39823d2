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
