// Usage is billed exactly as the upstream served it: a scripted raw upstream
// writes the way OpenAI, vLLM and Python servers do (usage null in every
// chunk, several events in one write, spaces, CRLF, events split across
// writes, bodies over 64 KiB, chunked JSON), and the store's totals after a
// graceful stop equal the upstream's own counts. A stream the client cuts is
// billed for what it was sent, marked estimated.
import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import OpenAI from 'openai';
import { SqliteKeyStore } from '../../gateway/store/sqlite.js';
import { estimatePromptTokens } from '../../common/tokens.js';
import { auth, newKey, startGateway, waitFor } from '../helpers/gateway.js';
import { sleep, startRawServer, type ServerConn } from '../helpers/h1-server.js';

type Style = 'openai' | 'vllm' | 'python';

function sseEvents(style: Style, tokens: number, prompt: number): string[] {
  const sp = style === 'python' ? ' ' : '';
  const nul = style === 'openai' ? `,"usage":null` : '';
  const chunk = (delta: string, finish: string | null) =>
    `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":${delta},"finish_reason":${finish === null ? 'null' : `"${finish}"`}}]${nul}}`;
  const events = [chunk(`{"role":"assistant","content":""}`, null)];
  for (let i = 0; i < tokens; i++) events.push(chunk(`{"content":${sp}"w${i} "}`, null));
  events.push(chunk('{}', 'stop'));
  if (style === 'vllm') events.push(`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":${prompt},"total_tokens":${prompt + tokens},"completion_tokens":${tokens}}}`);
  else
    events.push(
      `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":${sp}[],"usage":${sp}{"prompt_tokens":${sp}${prompt},${sp}"completion_tokens":${sp}${tokens},${sp}"total_tokens":${sp}${prompt + tokens}}}`,
    );
  events.push('data: [DONE]');
  return events;
}

const chunked = (s: string | Buffer): Buffer => {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s);
  return Buffer.concat([Buffer.from(b.length.toString(16) + '\r\n'), b, Buffer.from('\r\n')]);
};
const SSE_HEAD = 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n';

interface Scenario {
  /** What the upstream counts for it (what a billing system would charge). */
  prompt: number;
  completion: number;
  write(conn: ServerConn): Promise<void>;
}

/** The raw upstream's scripts, chosen by the request body's "scenario". */
const scenarios: Record<string, Scenario> = {
  // Every event, the usage chunk among them, in one write: a fast upstream.
  'openai-burst': {
    prompt: 7,
    completion: 3,
    write: (c) => c.write(SSE_HEAD + chunked(sseEvents('openai', 3, 7).map((e) => e + '\n\n').join('')) + '0\r\n\r\n'),
  },
  // Spaces after colons, CRLF line ends, every event split in two writes.
  'python-split': {
    prompt: 9,
    completion: 4,
    write: async (c) => {
      await c.write(SSE_HEAD);
      for (const e of sseEvents('python', 4, 9)) {
        const ev = e + '\r\n\r\n';
        const half = Math.floor(ev.length / 2);
        await c.write(chunked(ev.slice(0, half)));
        await sleep(3);
        await c.write(chunked(ev.slice(half)));
        await sleep(3);
      }
      await c.write('0\r\n\r\n');
    },
  },
  // vLLM's field order, one event per write.
  vllm: {
    prompt: 5,
    completion: 2,
    write: async (c) => {
      await c.write(SSE_HEAD);
      for (const e of sseEvents('vllm', 2, 5)) await c.write(chunked(e + '\n\n'));
      await c.write('0\r\n\r\n');
    },
  },
  // A non-streamed completion over 64 KiB with a Content-Length: usage at its end.
  'big-json': {
    prompt: 100,
    completion: 20_000,
    write: (c) => {
      const body = JSON.stringify({
        id: 'x',
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: 'z'.repeat(100_000) }, finish_reason: 'length' }],
        usage: { prompt_tokens: 100, completion_tokens: 20_000, total_tokens: 20_100 },
        system_fingerprint: 'fp_1',
      });
      return c.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    },
  },
  // Embeddings of a long input, chunked, as a Python server streams a large JSON body.
  'chunked-json': {
    prompt: 3000,
    completion: 0,
    write: async (c) => {
      const body = JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: Array(4000).fill(0.125) }], model: 'm', usage: { prompt_tokens: 3000, total_tokens: 3000 } });
      await c.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
      for (let i = 0; i < body.length; i += 7000) await c.write(chunked(body.slice(i, i + 7000)));
      await c.write('0\r\n\r\n');
    },
  },
};

async function startUpstream(t: Parameters<typeof startRawServer>[0]) {
  const sent: Record<string, number> = {};
  const srv = await startRawServer(t, async (req, conn) => {
    const body = JSON.parse(req.body.toString()) as { scenario: string };
    sent[body.scenario] = req.body.length;
    if (body.scenario === 'cut') {
      // Four content events, then nothing until the client goes away.
      await conn.write(SSE_HEAD);
      for (const e of sseEvents('openai', 4, 1).slice(0, 5)) await conn.write(chunked(e + '\n\n'));
      return;
    }
    if (body.scenario === 'both-lengths') {
      await conn.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40000\r\nTransfer-Encoding: chunked\r\n\r\n');
      await conn.write(chunked('{"usage":{"prompt_tokens":1,"completion_tokens":1}}') + '0\r\n\r\n');
      return;
    }
    await scenarios[body.scenario]!.write(conn);
  });
  return { srv, sent, url: `${srv.origin}/v1` };
}

t.test('the store bills exactly what OpenAI-, vLLM- and Python-style upstreams report; a cut stream is billed as delivered', async (t) => {
  const up = await startUpstream(t);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bill-'));
  const dbPath = join(dir, 'keys.db');
  const key = newKey();
  const gw = await startGateway(t, {
    workers: 1,
    models: { m: { upstreams: [{ url: up.url }] } },
    keys: [{ name: 'k', sha256: key.sha256 }],
    store: { kind: 'sqlite', path: dbPath },
  });
  const client = new OpenAI({ baseURL: gw.url, apiKey: key.secret, maxRetries: 0 });
  let prompt = 0;
  let completion = 0;
  let requests = 0;

  for (const name of ['openai-burst', 'python-split', 'vllm']) {
    for (const includeUsage of [false, true]) {
      const res = await request(`${gw.url}/chat/completions`, {
        method: 'POST',
        headers: auth(key.secret),
        body: JSON.stringify({ model: 'm', scenario: name, stream: true, ...(includeUsage ? { stream_options: { include_usage: true } } : {}) }),
      });
      t.equal(res.statusCode, 200, `${name}: 200`);
      const text = await res.body.text();
      t.match(text, /data: \[DONE\]/, `${name}: the stream reached its end`);
      const usageEvents = (text.match(/"choices": ?\[\]/g) ?? []).length;
      t.equal(usageEvents, includeUsage ? 1 : 0, `${name}, include_usage ${includeUsage}: the client gets the usage chunk only when it asked`);
      prompt += scenarios[name]!.prompt;
      completion += scenarios[name]!.completion;
      requests++;
    }
  }

  // The official client over the same streams: it sees content and, asked, usage.
  const stream = await client.chat.completions.create({ model: 'm', messages: [], stream: true, stream_options: { include_usage: true }, ...({ scenario: 'openai-burst' } as object) });
  let content = '';
  let seenUsage: OpenAI.CompletionUsage | null | undefined = null;
  for await (const c of stream) {
    content += c.choices[0]?.delta?.content ?? '';
    if (c.usage) seenUsage = c.usage;
  }
  t.equal(content, 'w0 w1 w2 ');
  t.equal(seenUsage?.prompt_tokens, 7);
  prompt += 7;
  completion += 3;
  requests++;

  for (const name of ['big-json', 'chunked-json']) {
    const res = await request(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(key.secret), body: JSON.stringify({ model: 'm', scenario: name }) });
    t.equal(res.statusCode, 200, `${name}: 200`);
    const body = (await res.body.json()) as { usage: { prompt_tokens: number } };
    t.equal(body.usage.prompt_tokens, scenarios[name]!.prompt, `${name}: the body reached the client whole`);
    prompt += scenarios[name]!.prompt;
    completion += scenarios[name]!.completion;
    requests++;
  }

  // A stream the client cuts after four content events: billed for those, prompt estimated.
  const ac = new AbortController();
  const cut = await request(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(key.secret), body: JSON.stringify({ model: 'm', scenario: 'cut', stream: true }), signal: ac.signal });
  let got = '';
  await t.rejects(
    (async () => {
      for await (const piece of cut.body) {
        got += piece.toString();
        if ((got.match(/"content":"w/g) ?? []).length === 4) ac.abort();
      }
    })(),
  );
  t.ok(await waitFor(() => up.srv.conns.every((c) => c.closed || c.requests.every((r) => JSON.parse(r.body.toString()).scenario !== 'cut'))), 'the upstream request was cancelled');
  prompt += estimatePromptTokens(up.sent['cut']!);
  completion += 4;
  requests++;

  gw.proc.kill('SIGTERM');
  t.equal(await gw.exited, 0);
  const store = new SqliteKeyStore(dbPath);
  t.teardown(() => store.close());
  const rows = await store.usage();
  t.equal(rows.length, 1, 'one row: the key and model');
  const row = rows[0]!;
  t.equal(row.keyId, 'config:k');
  t.equal(row.requests, requests, 'every 2xx request counted once');
  t.equal(row.promptTokens, prompt, 'prompt tokens as the upstream reported them (and the cut stream estimated)');
  t.equal(row.completionTokens, completion, 'completion tokens as the upstream reported them (and the cut stream as delivered)');
  t.equal(row.estimatedRequests, 1, 'only the cut stream is estimated');
});

t.test('an upstream response with both Transfer-Encoding and Content-Length is a 502, never bytes of another framing', async (t) => {
  const up = await startUpstream(t);
  const key = newKey();
  const gw = await startGateway(t, { workers: 1, models: { m: { upstreams: [{ url: up.url }] } }, keys: [{ name: 'k', sha256: key.sha256 }] });
  for (let i = 0; i < 5; i++) {
    const both = await request(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(key.secret), body: JSON.stringify({ model: 'm', scenario: 'both-lengths' }) });
    t.equal(both.statusCode, 502);
    const text = await both.body.text();
    t.equal((JSON.parse(text) as { error: { code: string } }).error.code, 'upstream_error', 'an OpenAI-shaped error, not a 40,000-byte buffer');
  }
});

t.test("a large or chunked JSON response counts against the key's tokens per minute", async (t) => {
  const up = await startUpstream(t);
  const dbPath = join(mkdtempSync(join(tmpdir(), 'sluice-tpm-')), 'keys.db');
  for (const name of ['big-json', 'chunked-json']) {
    // A key whose minute holds less than one such response: the first is served, the next is over the limit.
    const store = new SqliteKeyStore(dbPath);
    const created = await store.createKey({ name: `tpm-${name}`, models: ['*'], tpm: 2000 });
    await store.close();
    const gw = await startGateway(t, { workers: 1, store: { kind: 'sqlite', path: dbPath }, models: { m: { upstreams: [{ url: up.url }] } } });
    const send = () => request(`${gw.url}/chat/completions`, { method: 'POST', headers: auth(created.secret), body: JSON.stringify({ model: 'm', scenario: name }) });
    const first = await send();
    t.equal(first.statusCode, 200, `${name}: the first response is served`);
    await first.body.text();
    let limited = 0;
    // The usage is charged when the response ends: the next request in this minute is refused.
    for (let i = 0; i < 3 && limited === 0; i++) {
      const next = await send();
      await next.body.text();
      if (next.statusCode === 429) limited++;
    }
    t.equal(limited, 1, `${name}: its ${scenarios[name]!.prompt + scenarios[name]!.completion} tokens count against a tpm of 2000: 429`);
    gw.proc.kill('SIGTERM');
    await gw.exited;
  }
});
