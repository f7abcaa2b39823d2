// `sluice loadgen run|serve|merge`.
import { Command, Option } from 'commander';
import { readFile } from 'node:fs/promises';
import { integer, port } from '../common/cli-args.js';
import { onStopSignal } from '../common/signals.js';
import { header, positiveNumber, seconds } from './flags.js';
import { checkSpec, SpecError, SPEC_DEFAULTS, type Arrival, type RunSpec } from './spec.js';
import { runLoad } from './run.js';
import { progressReporter } from './progress.js';
import { formatResult } from './report.js';
import { assertResult, decode, mergeResults } from './result.js';
import { LoadgenServer } from './server.js';

/** The flag a spec field comes from, for error messages. */
const FLAG: Record<string, string> = {
  url: '--url',
  key: '--key',
  headers: '--header',
  model: '--model',
  workers: '--workers',
  rate: '--rate',
  warmupS: '--warmup',
  threads: '--threads',
  timeoutS: '--timeout',
  requests: '--requests',
  durationS: '--duration',
  requestBytes: '--request-bytes',
};

export function registerLoadgenCommand(program: Command): void {
  const loadgen = program.command('loadgen').description('the load generator: run a load test, serve its REST API and web page, merge results');
  const d = SPEC_DEFAULTS;

  const run = loadgen
    .command('run')
    .description('send chat completions to an OpenAI-compatible server and report throughput and latency')
    .requiredOption('--url <url>', 'base URL ending in /v1')
    .option('--key <key>', 'bearer key sent as Authorization')
    .option('--model <name>', 'model in each request', d.model)
    .option('--workers <n>', 'concurrent users (open loop: most requests in flight)', integer(1, 100_000), d.workers)
    .option('--requests <n>', 'total requests, from one queue shared by all workers', integer(1))
    .option('--duration <time>', `run for this long instead (default ${d.durationS}s when --requests is absent)`, seconds(0.001))
    .option('--request-bytes <n>', 'size of each chat completion body, exactly', integer(1, 64 * 1024 * 1024), d.requestBytes)
    .option('--stream', 'stream responses and report time to first token and inter-token latency', false)
    .option('--rate <r>', 'open loop: arrivals per second (latency timed from the intended send time)', positiveNumber)
    .addOption(new Option('--arrival <kind>', 'open loop: arrival process').choices(['constant', 'poisson']).default(d.arrival))
    .addOption(new Option('--warmup <time>', 'closed-loop load before measuring, not counted; its mean latency spreads the workers\' first requests').argParser(seconds(0)).default(d.warmupS, `${d.warmupS}s`))
    .option('--threads <n>', 'worker threads the workers are spread over', integer(1, 256), d.threads)
    .option('--header <name:value>', 'extra request header (repeatable)', header)
    .addOption(new Option('--timeout <time>', 'per-request timeout (connect, headers, between body chunks)').argParser(seconds(0.001)).default(d.timeoutS, `${d.timeoutS}s`))
    .option('--json', 'print the result as one JSON object', false)
    .action(async (o: Record<string, unknown>) => {
      let spec: RunSpec;
      try {
        spec = checkSpec(
          {
            url: o.url as string,
            key: o.key as string | undefined,
            model: o.model as string,
            workers: o.workers as number,
            requests: o.requests as number | undefined,
            durationS: o.duration as number | undefined,
            requestBytes: o.requestBytes as number,
            stream: o.stream as boolean,
            rate: o.rate as number | undefined,
            arrival: o.arrival as Arrival,
            warmupS: o.warmup as number,
            threads: o.threads as number,
            headers: (o.header as Record<string, string> | undefined) ?? {},
            timeoutS: o.timeout as number,
          },
          (f) => FLAG[f] ?? f,
        );
      } catch (err) {
        if (err instanceof SpecError) run.error(`error: ${err.message}.`, { exitCode: 2 });
        throw err;
      }
      const progress = progressReporter();
      const ac = new AbortController();
      onStopSignal(() => ac.abort());
      const result = await runLoad(spec, { onProgress: (p) => progress.update(p), signal: ac.signal });
      progress.stop();
      if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
      else process.stdout.write(formatResult(result));
      process.exit(result.canceled ? 130 : 0);
    });

  loadgen
    .command('serve')
    .description('serve the REST API (/v1/benchmarks) and the web page that start and watch runs')
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0 = any free port)', port, 8090)
    .action(async (o: { host: string; port: number }) => {
      const server = new LoadgenServer();
      const bound = await server.listen(o.port, o.host);
      process.stdout.write(JSON.stringify({ msg: 'loadgen listening', host: o.host, port: bound }) + '\n');
      onStopSignal(async () => {
        await server.close();
        process.exit(0);
      });
    });

  const merge = loadgen
    .command('merge')
    .description('merge result files (from --json) exactly: counts and histograms add')
    .argument('<files...>', 'result JSON files')
    .option('--table', 'print a readable table instead of JSON', false)
    .action(async (files: string[], o: { table: boolean }) => {
      const results = [];
      for (const f of files) {
        // A file that cannot be read or is not a result is bad input: one line naming it, exit 2.
        try {
          const parsed: unknown = JSON.parse(await readFile(f, 'utf8'));
          assertResult(parsed, f);
          for (const field of ['histogram', 'ttftHistogram', 'itlHistogram'] as const) {
            const h: unknown = parsed[field];
            if (h === undefined && field !== 'histogram') continue;
            if (typeof h !== 'string') throw new Error(`${f}: '${field}' must be a base64 string`);
            try {
              decode(h);
            } catch (err) {
              throw new Error(`${f}: '${field}' is not an encoded histogram (${err instanceof Error ? err.message : String(err)})`);
            }
          }
          results.push(parsed);
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          const named = message.startsWith(`${f}: `) ? message : `${f}: ${message}`;
          merge.error(`error: ${named.replace(/\s+/g, ' ')}`, { exitCode: 2 });
        }
      }
      const merged = mergeResults(results);
      process.stdout.write(o.table ? formatResult(merged) : JSON.stringify(merged) + '\n');
    });
}
