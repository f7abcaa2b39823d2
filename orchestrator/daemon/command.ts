// `sluice orchestrator serve|runs|show|cancel|compare|gc` (and the hidden `sample`). Only the flags live
// here: every sluice process registers every command, so the daemon and its
// client are loaded when one of these runs.
import { type Command, InvalidArgumentError } from 'commander';
import { integer, port } from '../../common/cli-args.js';

export interface ServeOptions {
  host: string;
  port: number;
  data?: string;
  tokenEnv?: string;
  allowCommands: boolean;
  peersDir?: string;
  allowGcp: boolean;
  gcpProject?: string;
  gcpZone?: string;
  gcpMachineType?: string;
  onGce: boolean;
}

export interface ClientOptions {
  url: string;
  tokenEnv: string;
}

const envName = (v: string): string => {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(v)) throw new InvalidArgumentError('must be the name of an environment variable.');
  return v;
};

export function registerOrchestratorCommand(program: Command): void {
  const o = program.command('orchestrator').description('the benchmarking daemon: queued matrix runs, history, comparisons, schedules, a web page');
  o.command('serve')
    .description('run the daemon: REST API, run queue, SQLite history and the web page')
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0: any free port; the first stdout line is JSON with it)', port, 8095)
    .option('--data <dir>', 'where the history is kept (default $SLUICE_DATA_DIR/orchestrator, or ./data/orchestrator)')
    .option('--token-env <name>', 'environment variable holding a bearer token every API request must carry (required beyond loopback)', envName)
    .option('--allow-commands', 'run the start commands of custom systems in submitted matrices (shell commands: only for a daemon no one else can reach)', false)
    .option('--peers-dir <dir>', 'where peers are installed (default $SLUICE_PEERS_DIR, or ~/.cache/sluice/peers)')
    .option('--allow-gcp', 'run `provider: gcp` runs (three VMs each, which cost money; credentials are checked at start)', false)
    .option('--gcp-project <id>', 'with --allow-gcp: the project of runs whose matrix names none (default $GOOGLE_CLOUD_PROJECT)')
    .option('--gcp-zone <zone>', 'with --allow-gcp: the zone of runs whose matrix names none (default us-central1-a)')
    .option('--gcp-machine-type <type>', 'with --allow-gcp: the machine type of runs whose matrix names none (default e2-medium)')
    .option('--on-gce', 'with --allow-gcp: the daemon runs on GCE (credentials may come from the metadata server)', false)
    .action(async (opts: ServeOptions) => {
      const { serve } = await import('./main.js');
      await serve(opts, (msg) => program.error(`error: ${msg}`, { exitCode: 2 }));
    });
  o.command('gc')
    .description('delete what crashed runs left: with --provider gcp, the VMs labelled sluice=bench')
    .requiredOption('--provider <name>', 'gcp (netns leftovers are removed by the next netns run)', (v) => {
      if (v !== 'gcp') throw new InvalidArgumentError('must be gcp.');
      return v;
    })
    .requiredOption('--project <id>', 'the GCP project')
    .option('--yes', 'delete them (without it, only list them)', false)
    .option('--on-gce', 'sluice runs on GCE: let the client use the metadata server for credentials', false)
    .action(async (opts: { project: string; yes: boolean; onGce: boolean }) => {
      // Credentials first: the Compute SDK takes seconds to load.
      const { GcpUnavailable, prepareCredentials } = await import('../providers/gcp/credentials.js');
      try {
        prepareCredentials({ onGce: opts.onGce });
      } catch (err) {
        if (err instanceof GcpUnavailable) program.error(`error: ${err.message}`, { exitCode: 2 });
        throw err;
      }
      const { gcGcp } = await import('../providers/gcp/gc.js');
      const { GcpError } = await import('../providers/gcp/fleet.js');
      try {
        await gcGcp(opts);
      } catch (err) {
        if (err instanceof GcpError) {
          process.stderr.write(`error: ${err.message}\n`);
          process.exit(1);
        }
        throw err;
      }
    });
  // How a run reads CPU and RSS on a remote system-under-test host (over SSH): the /proc accounting of common/procs.
  o.command('sample', { hidden: true })
    .description('print the CPU time (µs) and resident memory (kB) of process trees, as JSON lines')
    .requiredOption('--pids <list>', 'roots of the process trees, comma-separated', (v) => {
      const pids = v.split(',').map(Number);
      if (pids.length === 0 || pids.some((p) => !Number.isInteger(p) || p <= 0)) throw new InvalidArgumentError('must be process ids, comma-separated.');
      return pids;
    })
    .option('--once', 'one reading, then exit', false)
    .option('--interval-ms <ms>', 'between readings', integer(10, 60_000), 200)
    .action(async (opts: { pids: number[]; once: boolean; intervalMs: number }) => {
      const { cpuMicros, rssKb } = await import('../../common/procs.js');
      const read = (): string => JSON.stringify({ cpuUs: opts.pids.reduce((s, p) => s + cpuMicros(p), 0), rssKb: opts.pids.reduce((s, p) => s + rssKb(p), 0) }) + '\n';
      process.stdout.write(read());
      if (opts.once) return;
      setInterval(() => process.stdout.write(read()), opts.intervalMs);
      await new Promise(() => undefined);
    });
  const client = (cmd: Command): Command =>
    cmd
      .option('--url <url>', 'the daemon', 'http://127.0.0.1:8095')
      .option('--token-env <name>', 'environment variable holding the daemon\'s token', envName, 'SLUICE_ORCHESTRATOR_TOKEN');
  client(o.command('runs').description('list runs, newest first'))
    .option('--status <status>', 'only runs with this status')
    .option('--label <label>', 'only runs with this label')
    .option('--limit <n>', 'how many', integer(1, 100), 20)
    .option('--json', 'print the JSON answer', false)
    .action(async (opts: ClientOptions & { status?: string; label?: string; limit: number; json: boolean }) => {
      const c = await import('./client.js');
      await c.listRuns(opts);
    });
  client(o.command('show').description('a run: status, progress and its tables').argument('<id>'))
    .option('--json', 'print the JSON answer', false)
    .action(async (id: string, opts: ClientOptions & { json: boolean }) => {
      const c = await import('./client.js');
      await c.showRun(id, opts);
    });
  client(o.command('cancel').description('cancel a queued or running run').argument('<id>')).action(async (id: string, opts: ClientOptions) => {
    const c = await import('./client.js');
    await c.cancelRun(id, opts);
  });
  client(o.command('compare').description('compare two runs cell by cell; exit 1 when the head regressed').argument('<base>').argument('<head>'))
    .option('--json', 'print the JSON answer', false)
    .action(async (base: string, head: string, opts: ClientOptions & { json: boolean }) => {
      const c = await import('./client.js');
      await c.compareRuns(base, head, opts);
    });
}
