// Server-sent events read from a response body, frame by frame (the clients
// of the load generator's and the daemon's event streams).

export interface SseFrame {
  event: string | undefined;
  data: string;
}

/** Each `event:`/`data:` frame of an SSE body, whatever the chunk boundaries; frames without data are skipped. */
export async function* sseFrames(body: AsyncIterable<Buffer | Uint8Array>): AsyncGenerator<SseFrame> {
  let buf = '';
  const decoder = new TextDecoder();
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
      const frame = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = /^data: (.+)$/m.exec(frame)?.[1];
      if (data === undefined) continue;
      yield { event: /^event: (.+)$/m.exec(frame)?.[1], data };
    }
  }
}
