// The request body: a chat completion of exactly N bytes, built once per run.

function build(model: string, stream: boolean, content: string): string {
  const body: Record<string, unknown> = { model, messages: [{ role: 'user', content }] };
  if (stream) {
    body.stream = true;
    body.stream_options = { include_usage: true };
  }
  return JSON.stringify(body);
}

/** The size of the body with empty content: the smallest --request-bytes. */
export function chatBodyOverhead(model: string, stream: boolean): number {
  return Buffer.byteLength(build(model, stream, ''));
}

/** A chat completion body of exactly `bytes` bytes (ASCII padding in the user message). */
export function chatBody(bytes: number, model: string, stream: boolean): Buffer {
  const pad = bytes - chatBodyOverhead(model, stream);
  if (pad < 0) throw new RangeError(`a request body for this model cannot be smaller than ${bytes - pad} bytes`);
  const body = Buffer.from(build(model, stream, 'x'.repeat(pad)));
  if (body.length !== bytes) throw new Error(`internal: built ${body.length} bytes, wanted ${bytes}`);
  return body;
}
