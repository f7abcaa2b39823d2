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

/**
 * A chat completion body of exactly `bytes` bytes (ASCII padding in the user
 * message), written straight into one buffer: building the padded string and
 * its JSON first held three copies of a body that may be tens of MiB.
 */
export function chatBody(bytes: number, model: string, stream: boolean): Buffer {
  const empty = build(model, stream, '');
  const pad = bytes - Buffer.byteLength(empty);
  if (pad < 0) throw new RangeError(`a request body for this model cannot be smaller than ${bytes - pad} bytes`);
  // The content is the last string in the body; the padding goes between its quotes.
  const at = empty.lastIndexOf('"content":""') + '"content":"'.length;
  const head = Buffer.from(empty.slice(0, at));
  const tail = Buffer.from(empty.slice(at));
  const body = Buffer.allocUnsafe(bytes);
  head.copy(body, 0);
  body.fill(0x78, head.length, head.length + pad);
  tail.copy(body, head.length + pad);
  return body;
}
