import t from 'tap';
import OpenAI from 'openai';
import { startSink } from '../helpers/sink.js';

t.test('the official openai client talks to the sink', async (t) => {
  const sink = await startSink(t, ['--output-tokens', '7']);
  const client = new OpenAI({ baseURL: sink.url, apiKey: 'sk-test', maxRetries: 0 });

  const chat = await client.chat.completions.create({ model: 'benchmark-model', messages: [{ role: 'user', content: 'hello' }] });
  t.equal(chat.object, 'chat.completion');
  t.equal(chat.usage?.completion_tokens, 7);
  t.equal(typeof chat.choices[0]?.message.content, 'string');

  const stream = await client.chat.completions.create({
    model: 'benchmark-model',
    messages: [{ role: 'user', content: 'hello' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let usage: OpenAI.CompletionUsage | null | undefined;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  t.equal(text, chat.choices[0]?.message.content, 'streamed text equals the non-streamed text');
  t.equal(usage?.completion_tokens, 7);

  const emb = await client.embeddings.create({ model: 'benchmark-model', input: ['one', 'two'] });
  t.equal(emb.data.length, 2);
  t.equal(emb.data[0]?.embedding.length, 16, 'the client decodes base64 embeddings');

  const models = await client.models.list();
  t.same(models.data.map((m) => m.id), ['benchmark-model']);
});
