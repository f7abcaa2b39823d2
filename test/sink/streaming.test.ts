import t, { type Test } from 'tap';
import { startSink } from '../helpers/sink.js';

interface Arrival {
  at: number;
  data: string;
}

/** Reads an SSE response, recording when each event arrived. */
async function readEvents(t: Test, res: Response): Promise<Arrival[]> {
  const events: Arrival[] = [];
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      t.match(ev, /^data: /, 'every event is a data line');
      events.push({ at: performance.now(), data: ev.slice(6) });
    }
  }
  t.equal(buf, '', 'no partial event left over');
  return events;
}

const streamReq = (url: string, body: unknown) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

t.test('chat streaming: OpenAI chunk format, usage chunk, [DONE], spread over time', async (t) => {
  const sink = await startSink(t, ['--ttft-ms', '200', '--itl-ms', '60', '--output-tokens', '6']);
  const start = performance.now();
  const res = await streamReq(`${sink.url}/chat/completions`, {
    model: 'benchmark-model',
    stream: true,
    stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'hi' }],
  });
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /text\/event-stream/);
  const events = await readEvents(t, res);
  t.equal(events.at(-1)!.data, '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
  // role chunk, 6 content chunks, finish chunk, usage chunk
  t.equal(chunks.length, 9);
  for (const c of chunks) {
    t.equal(c.object, 'chat.completion.chunk');
    t.equal(c.id, chunks[0].id, 'one id across the stream');
  }
  t.same(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
  const content = chunks.slice(1, 7).map((c) => c.choices[0].delta.content);
  t.equal(content.length, 6);
  t.ok(content.every((s: unknown) => typeof s === 'string' && s.length > 0));
  t.equal(chunks[7].choices[0].finish_reason, 'stop');
  t.same(chunks[7].choices[0].delta, {});
  t.same(chunks[8].choices, []);
  t.equal(chunks[8].usage.completion_tokens, 6);

  // Arrival times: the first token after ~ttft, the last ~5 itl later. Generous bounds.
  const firstToken = events[1]!.at - start;
  const spread = events[6]!.at - events[1]!.at;
  t.ok(firstToken >= 180, `first token after ${firstToken.toFixed(0)} ms (ttft 200)`);
  t.ok(spread >= 200, `tokens spread over ${spread.toFixed(0)} ms (5 × itl 60)`);
});

t.test('no usage chunk unless asked; max_tokens caps the stream', async (t) => {
  const sink = await startSink(t, ['--output-tokens', '10']);
  const events = await readEvents(t, await streamReq(`${sink.url}/chat/completions`, { model: 'm', stream: true, max_tokens: 3 }));
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
  t.equal(chunks.length, 1 + 3 + 1);
  t.notOk(chunks.some((c) => 'usage' in c), 'no usage chunk');
  t.equal(chunks.at(-1).choices[0].finish_reason, 'length');
});

t.test('completions streaming uses text_completion chunks', async (t) => {
  const sink = await startSink(t, ['--output-tokens', '4']);
  const events = await readEvents(
    t,
    await streamReq(`${sink.url}/completions`, { model: 'm', prompt: 'x', stream: true, stream_options: { include_usage: true } }),
  );
  t.equal(events.at(-1)!.data, '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
  t.ok(chunks.every((c) => c.object === 'text_completion'));
  t.equal(chunks.filter((c) => c.choices.length === 1 && c.choices[0].text !== '').length, 4);
  t.equal(chunks.at(-1).usage.completion_tokens, 4);
});

t.test('tokens go out on a schedule from the stream start, counted in /sink/stats tokens; a stream far behind it is written in a loop, not by recursion', async (t) => {
  const sink = await startSink(t, ['--ttft-ms', '5', '--itl-ms', '2', '--output-tokens', '20']);
  const res = await fetch(`${sink.url}/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', stream: true }) });
  const text = await res.text();
  t.equal((text.match(/"content":"/g) ?? []).length, 1 + 20, 'the role chunk and every token');
  const stats = await sink.stats();
  t.equal(stats.tokens.responses, 20, 'the first token after ttft, then 19 at their times: 20 on the token clock');
  t.equal(stats.wait.responses, 0, 'no response wait (wait 0): tokens are not counted as waits');

  // 200,000 tokens 1 µs apart: nearly all are due by the time the first is written.
  const many = await startSink(t, ['--itl-ms', '0.001', '--output-tokens', '200000']);
  const big = await fetch(`${many.url}/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', stream: true }) });
  const all = await big.text();
  t.match(all, /data: \[DONE\]\n\n$/, 'the stream ended');
  t.equal((all.match(/"content":"/g) ?? []).length, 1 + 200_000, 'every token, no stack overflow');
});
