// OpenAI response bodies, built by hand as strings: the sink answers tens of
// thousands of requests a second and JSON.stringify of a nested object per
// request is most of its CPU.

const WORDS = ['The', ' quick', ' brown', ' fox', ' jumps', ' over', ' the', ' lazy', ' dog', '.'];

/** The n-th generated token (each is one word). */
export function token(i: number): string {
  return WORDS[i % WORDS.length]!;
}

const textCache: string[] = [];

/** The JSON-quoted text of the first `tokens` (an integer) tokens (memoised: it is the same for every request). */
export function quotedText(tokens: number): string {
  let q = textCache[tokens];
  if (q === undefined) {
    let s = '';
    for (let i = 0; i < tokens; i++) s += token(i);
    q = JSON.stringify(s);
    if (tokens < 65536) textCache[tokens] = q;
  }
  return q;
}

const quotedModels = new Map<string, string>();

/** JSON.stringify(model), cached: a sink sees a handful of model names. */
export function quoted(model: string): string {
  let q = quotedModels.get(model);
  if (q === undefined) {
    q = JSON.stringify(model);
    // Only names of a sane length: a client's 20 MB name must not stay in memory.
    if (quotedModels.size < 1024 && model.length <= 256) quotedModels.set(model, q);
  }
  return q;
}

export interface Usage {
  prompt: number;
  completion: number;
}

function usageJson(u: Usage): string {
  return `{"prompt_tokens":${u.prompt},"completion_tokens":${u.completion},"total_tokens":${u.prompt + u.completion}}`;
}

export function chatCompletion(id: string, created: number, model: string, tokens: number, finish: string, u: Usage): string {
  return (
    `{"id":"${id}","object":"chat.completion","created":${created},"model":${quoted(model)},` +
    `"system_fingerprint":null,"choices":[{"index":0,"message":{"role":"assistant","content":${quotedText(tokens)},"refusal":null},` +
    `"logprobs":null,"finish_reason":"${finish}"}],"usage":${usageJson(u)}}`
  );
}

export function completion(id: string, created: number, model: string, tokens: number, finish: string, u: Usage): string {
  return (
    `{"id":"${id}","object":"text_completion","created":${created},"model":${quoted(model)},` +
    `"system_fingerprint":null,"choices":[{"index":0,"text":${quotedText(tokens)},"logprobs":null,"finish_reason":"${finish}"}],` +
    `"usage":${usageJson(u)}}`
  );
}

export function embeddings(model: string, inputs: number, dims: number, base64: boolean, promptTokens: number): string {
  const data: string[] = [];
  for (let i = 0; i < inputs; i++) {
    const v = new Float32Array(dims);
    for (let d = 0; d < dims; d++) v[d] = Math.sin(i + d + 1) / Math.sqrt(dims);
    const embedding = base64 ? `"${Buffer.from(v.buffer).toString('base64')}"` : `[${Array.from(v).join(',')}]`;
    data.push(`{"object":"embedding","index":${i},"embedding":${embedding}}`);
  }
  return (
    `{"object":"list","data":[${data.join(',')}],"model":${quoted(model)},` +
    `"usage":{"prompt_tokens":${promptTokens},"total_tokens":${promptTokens}}}`
  );
}

/** One SSE event of a streamed chat completion. `content` null = the role chunk. */
export function chatChunk(id: string, created: number, model: string, delta: string, finish: string | null): string {
  return (
    `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${quoted(model)},` +
    `"system_fingerprint":null,"choices":[{"index":0,"delta":${delta},"logprobs":null,"finish_reason":${finish === null ? 'null' : `"${finish}"`}}]}\n\n`
  );
}

export function chatUsageChunk(id: string, created: number, model: string, u: Usage): string {
  return (
    `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${quoted(model)},` +
    `"system_fingerprint":null,"choices":[],"usage":${usageJson(u)}}\n\n`
  );
}

export function completionChunk(id: string, created: number, model: string, textPart: string, finish: string | null): string {
  return (
    `data: {"id":"${id}","object":"text_completion","created":${created},"model":${quoted(model)},` +
    `"system_fingerprint":null,"choices":[{"index":0,"text":${JSON.stringify(textPart)},"logprobs":null,"finish_reason":${finish === null ? 'null' : `"${finish}"`}}]}\n\n`
  );
}

export function completionUsageChunk(id: string, created: number, model: string, u: Usage): string {
  return (
    `data: {"id":"${id}","object":"text_completion","created":${created},"model":${quoted(model)},` +
    `"system_fingerprint":null,"choices":[],"usage":${usageJson(u)}}\n\n`
  );
}

export function modelList(models: string[], created: number): string {
  return JSON.stringify({
    object: 'list',
    data: models.map((id) => ({ id, object: 'model', created, owned_by: 'sluice-sink' })),
  });
}
