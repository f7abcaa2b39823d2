// The SSE scanner and the usage reader on their own, over streams written the
// way OpenAI, vLLM and Python (FastAPI / sse-starlette) servers write them,
// cut into reads at every offset.
import t from 'tap';
import { SseScanner, EVENT_LIMIT } from '../../gateway/usage/sse-scanner.js';
import { lastUsage } from '../../gateway/usage/usage-json.js';
import { BodyTail, TAIL_BYTES } from '../../gateway/usage/body-tail.js';

type Style = 'openai' | 'vllm' | 'python';

/** The events of one stream (without their terminators) and which one is the usage chunk. */
function streamEvents(style: Style, tokens: number, usage = { prompt: 11, completion: tokens }): { events: string[]; usageIndex: number } {
  const sp = style === 'python' ? ' ' : '';
  const nul = style === 'openai' ? `,"usage":${sp}null` : '';
  const chunk = (delta: string, finish: string | null) =>
    `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":${delta},"finish_reason":${finish === null ? 'null' : `"${finish}"`}}]${nul}}`;
  const events = [chunk(`{"role":"assistant","content":""}`, null)];
  for (let i = 0; i < tokens; i++) events.push(chunk(`{"content":${sp}"tok${i} "}`, null));
  events.push(chunk('{}', 'stop'));
  const u =
    style === 'vllm'
      ? `{"prompt_tokens":${usage.prompt},"total_tokens":${usage.prompt + usage.completion},"completion_tokens":${usage.completion}}`
      : `{"prompt_tokens":${sp}${usage.prompt},${sp}"completion_tokens":${sp}${usage.completion},${sp}"total_tokens":${sp}${usage.prompt + usage.completion},${sp}"prompt_tokens_details":${sp}{"cached_tokens":${sp}0}}`;
  const usageEvent =
    style === 'vllm'
      ? `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":${u}}`
      : `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":${sp}[],"usage":${sp}${u}}`;
  events.push(usageEvent);
  events.push('data: [DONE]');
  return { events, usageIndex: events.length - 2 };
}

const EOLS = { LF: '\n', CRLF: '\r\n', CR: '\r' } as const;

function run(scanner: SseScanner, whole: Buffer, cuts: number[]): Buffer {
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...cuts, whole.length]) {
    // Each read is a view of a buffer that is overwritten afterwards, as the pool's is.
    const view = Buffer.from(whole.subarray(from, c));
    out.push(Buffer.from(scanner.push(view)));
    view.fill(0x23);
    from = c;
  }
  const rest = scanner.end();
  if (rest !== null) out.push(rest);
  return Buffer.concat(out);
}

for (const style of ['openai', 'vllm', 'python'] as const) {
  for (const [eolName, eol] of Object.entries(EOLS)) {
    t.test(`${style} stream, ${eolName}: usage found and stripped at every read boundary`, async (t) => {
      const { events, usageIndex } = streamEvents(style, 3);
      const whole = Buffer.from(events.map((e) => e + eol + eol).join(''));
      const expected = Buffer.from(events.filter((_, i) => i !== usageIndex).map((e) => e + eol + eol).join(''));
      let bad = 0;
      for (let cut = 0; cut <= whole.length; cut++) {
        for (const strip of [true, false]) {
          const s = new SseScanner(strip);
          const out = run(s, whole, cut === 0 || cut === whole.length ? [] : [cut]);
          const want = strip ? expected : whole;
          if (!out.equals(want) || s.usage?.prompt !== 11 || s.usage?.completion !== 3 || s.contentEvents !== 3) {
            if (bad++ < 3) t.fail(`cut at ${cut}, strip ${strip}: usage ${JSON.stringify(s.usage)}, content ${s.contentEvents}, output ok ${out.equals(want)}`);
          }
        }
      }
      t.equal(bad, 0, `every cut of ${whole.length} bytes, both modes`);
      // Every read of one byte.
      const s = new SseScanner(true);
      const out = run(s, whole, Array.from({ length: whole.length - 1 }, (_, i) => i + 1));
      t.ok(out.equals(expected), 'one byte per read');
      t.same(s.usage, { prompt: 11, completion: 3 });
    });
  }
}

t.test('several events in one read, the usage chunk among them, as a fast upstream writes', async (t) => {
  const { events, usageIndex } = streamEvents('openai', 5);
  const whole = Buffer.from(events.map((e) => e + '\n\n').join(''));
  const s = new SseScanner(true);
  const out = run(s, whole, []);
  t.equal(out.toString(), events.filter((_, i) => i !== usageIndex).map((e) => e + '\n\n').join(''));
  t.same(s.usage, { prompt: 11, completion: 5 });
  t.equal(s.contentEvents, 5, 'the role and finish chunks carry no content');
});

t.test('the usage chunk with choices is kept; usage is read from it', async (t) => {
  const ev = 'data: {"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":2,"completion_tokens":9}}\n\n';
  const s = new SseScanner(true);
  t.equal(run(s, Buffer.from(ev + 'data: [DONE]\n\n'), [10]).toString(), ev + 'data: [DONE]\n\n');
  t.same(s.usage, { prompt: 2, completion: 9 });
});

t.test('an event over the limit goes on unexamined; later events are still examined and stripped', async (t) => {
  const big = 'data: ' + 'x'.repeat(EVENT_LIMIT + 100) + '\n\n';
  const usage = 'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":1}}\n\n';
  const whole = Buffer.from(big + usage + 'data: [DONE]\n\n');
  const cuts = [];
  for (let c = 4096; c < whole.length; c += 4096) cuts.push(c);
  const s = new SseScanner(true);
  const out = run(s, whole, cuts);
  t.equal(out.toString(), big + 'data: [DONE]\n\n');
  t.same(s.usage, { prompt: 4, completion: 1 });
});

t.test('a stream with no event end is passed on whole', async (t) => {
  const text = 'not an event stream '.repeat(5000);
  const s = new SseScanner(true);
  t.equal(run(s, Buffer.from(text), [100, 70_000]).toString(), text);
});

t.test('lastUsage: spacing, order, null, nesting, strings', async (t) => {
  const u = (s: string) => lastUsage(Buffer.from(s), 0, Buffer.byteLength(s));
  t.same(u('{"usage":{"prompt_tokens":3,"completion_tokens":4}}'), { prompt: 3, completion: 4 });
  t.same(u('{"usage" :\n {"completion_tokens" : 4 , "prompt_tokens": 3}}'), { prompt: 3, completion: 4 });
  t.same(u('{"object":"list","data":[],"usage":{"prompt_tokens":8,"total_tokens":8}}'), { prompt: 8, completion: 0 }, 'embeddings');
  t.equal(u('{"usage":null}'), null);
  t.equal(u('{"choices":[{"message":{"content":"the \\"usage\\": {\\"prompt_tokens\\": 5}"}}]}'), null, 'quoted in content');
  t.same(u('{"choices":[{"message":{"content":"}{\\"usage\\":"}}],"usage":{"prompt_tokens":1,"completion_tokens":2,"completion_tokens_details":{"reasoning_tokens":0}}}'), { prompt: 1, completion: 2 });
  t.equal(u('{"usage":{"prompt_tokens":1.5,"completion_tokens":2}}'), null, 'not an integer');
  t.equal(u('{"usage":{"prompt_tokens":1'), null, 'cut off');
});

t.test('BodyTail keeps the last bytes across pushes of any size', async (t) => {
  const body = Buffer.from(JSON.stringify({ data: 'y'.repeat(200_000), usage: { prompt_tokens: 12, completion_tokens: 34 }, system_fingerprint: 'fp' }));
  for (const size of [1, 100, 5000, TAIL_BYTES, 70_000]) {
    const tail = new BodyTail();
    for (let i = 0; i < body.length; i += size) tail.push(body.subarray(i, i + size));
    t.same(tail.usage(), { prompt: 12, completion: 34 }, `pushes of ${size} bytes`);
  }
});
