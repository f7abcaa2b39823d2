// Drives the load through the load generator's REST API (`sluice loadgen
// serve`), as on remote hosts: POST a run, follow its progress over SSE,
// DELETE it when the bench is cancelled.
import { request } from 'undici';
import { sseFrames } from '../common/sse-frames.js';
import type { Benchmark } from '../loadgen/server.js';
import type { Progress } from '../loadgen/run.js';
import type { RunSpec } from '../loadgen/spec.js';

export type LoadSpec = Partial<RunSpec> & { url: string };

export class LoadgenError extends Error {
  override name = 'LoadgenError';
}

export class LoadgenClient {
  constructor(readonly origin: string) {}

  /** Runs one benchmark to its end; `onProgress` gets each progress event. */
  async run(spec: LoadSpec, onProgress: (p: Progress) => void, signal?: AbortSignal): Promise<Benchmark> {
    const res = await request(`${this.origin}/v1/benchmarks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(spec),
    });
    const created = (await res.body.json()) as Benchmark & { error?: { message: string } };
    if (res.statusCode !== 201) throw new LoadgenError(`the load generator refused the run: ${created.error?.message ?? res.statusCode}`);
    const id = created.id;
    const cancel = (): void => {
      void request(`${this.origin}/v1/benchmarks/${id}`, { method: 'DELETE' }).then((r) => r.body.dump(), () => undefined);
    };
    if (signal?.aborted) cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      const ev = await request(`${this.origin}/v1/benchmarks/${id}/events`, { headers: { accept: 'text/event-stream' }, bodyTimeout: 0 });
      let done: Benchmark | null = null;
      for await (const { event, data } of sseFrames(ev.body)) {
        if (event === 'progress') onProgress(JSON.parse(data) as Progress);
        else if (event === 'done') {
          done = JSON.parse(data) as Benchmark;
          break;
        }
      }
      if (done === null) {
        // The stream ended without its last event: ask for the run itself.
        const r = await request(`${this.origin}/v1/benchmarks/${id}`);
        done = (await r.body.json()) as Benchmark;
      }
      return done;
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
  }
}
