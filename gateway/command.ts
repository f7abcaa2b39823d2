import type { Command } from 'commander';
import { integer, port } from '../common/cli-args.js';
import { ConfigError, loadConfigFile } from './config/load.js';
import { PortInUseError, runPrimary } from './primary.js';

export function registerGatewayCommand(program: Command): void {
  program
    .command('gateway')
    .description('run the AI gateway (an OpenAI-compatible proxy)')
    .option('--config <file>', 'YAML config file (see sluice.example.yaml)')
    .option('--host <addr>', 'address to listen on (overrides listen.host)')
    .option('--port <n>', 'port to listen on, 0 = any free port (overrides listen.port)', port)
    .option('--workers <n|auto>', 'worker processes (overrides workers)', (v) => (v === 'auto' ? 'auto' : integer(1, 256)(v)))
    .option('--upstream <url>', 'send every model to this upstream base URL (overrides the upstreams)')
    .action(async (o: { config?: string; host?: string; port?: number; workers?: 'auto' | number; upstream?: string }) => {
      let cfg;
      const overrides = { host: o.host, port: o.port, workers: o.workers, upstream: o.upstream };
      try {
        cfg = loadConfigFile(o.config, overrides);
      } catch (err) {
        if (err instanceof ConfigError) program.error(`error: ${err.message}`, { exitCode: 2 });
        throw err;
      }
      try {
        // SIGHUP reads the same file with the same flags again.
        await runPrimary(cfg, () => loadConfigFile(o.config, overrides));
      } catch (err) {
        if (err instanceof ConfigError) program.error(`error: ${err.message}`, { exitCode: 2 });
        if (err instanceof PortInUseError) {
          process.stderr.write(`error: ${err.message}\n`);
          process.exit(1);
        }
        throw err;
      }
    });
}
