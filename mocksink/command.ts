import type { Command } from 'commander';
import { integer, number, port, fraction, list } from '../common/cli-args.js';
import { MAX_TIMER_MS } from '../common/timer-limit.js';
import { SINK_DEFAULTS, Sink } from './server.js';
import { onStopSignal } from '../common/signals.js';

export function registerSinkCommand(program: Command): void {
  const d = SINK_DEFAULTS;
  program
    .command('sink')
    .description('run the mock OpenAI-compatible upstream (the benchmark sink)')
    .option('--host <addr>', 'address to listen on', d.host)
    .option('--port <n>', 'port to listen on (0 = any free port)', port, d.port)
    .option('--wait-ms <ms>', 'wait before each response starts (0 = no timer); header x-sluice-wait-ms overrides per request', number(0, MAX_TIMER_MS), d.waitMs)
    .option('--ttft-ms <ms>', 'streaming: time from response start to the first token', number(0, MAX_TIMER_MS), d.ttftMs)
    .option('--itl-ms <ms>', 'streaming: time between tokens', number(0, MAX_TIMER_MS), d.itlMs)
    .option('--output-tokens <n>', "completion tokens per response (a request's max_tokens caps it)", integer(0, 1_000_000), d.outputTokens)
    .option('--models <names>', 'comma-separated model names served by /v1/models', list, d.models)
    .option('--error-rate <f>', 'fraction of requests answered with --error-status', fraction, d.errorRate)
    .option('--error-status <code>', 'status of injected errors', integer(400, 599), d.errorStatus)
    .option('--drop-rate <f>', 'fraction of requests whose connection is closed without a response', fraction, d.dropRate)
    .option('--seed <n>', 'seed of the fault-injection random sequence', integer(0, 2 ** 32 - 1), d.seed)
    .option('--max-body-bytes <n>', 'largest accepted request body (larger: 413)', integer(1), d.maxBodyBytes)
    .option('--embedding-dims <n>', 'length of each returned embedding', integer(1, 65536), d.embeddingDims)
    .option('--drain-timeout-ms <ms>', 'on SIGTERM/SIGINT, how long in-flight requests may take', integer(0, MAX_TIMER_MS), d.drainTimeoutMs)
    .action(async (o: Record<string, unknown>) => {
      if ((o.errorRate as number) + (o.dropRate as number) > 1) {
        program.error('error: --error-rate plus --drop-rate must not exceed 1.', { exitCode: 2 });
      }
      const sink = new Sink({
        host: o.host as string,
        port: o.port as number,
        waitMs: o.waitMs as number,
        ttftMs: o.ttftMs as number,
        itlMs: o.itlMs as number,
        outputTokens: o.outputTokens as number,
        models: o.models as string[],
        errorRate: o.errorRate as number,
        errorStatus: o.errorStatus as number,
        dropRate: o.dropRate as number,
        seed: o.seed as number,
        maxBodyBytes: o.maxBodyBytes as number,
        embeddingDims: o.embeddingDims as number,
        drainTimeoutMs: o.drainTimeoutMs as number,
      });
      const boundPort = await sink.listen();
      // One machine-readable line on stdout, so scripts and tests learn the port.
      process.stdout.write(JSON.stringify({ msg: 'sink listening', host: sink.opts.host, port: boundPort, waitMs: sink.opts.waitMs }) + '\n');
      onStopSignal(async () => {
        const { drained } = await sink.close();
        process.stdout.write(JSON.stringify({ msg: 'sink stopped', drained, stats: sink.stats }) + '\n');
        process.exit(drained ? 0 : 1);
      });
    });
}
