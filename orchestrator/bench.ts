// The `sluice bench` run behind the flags of ./command.ts: load and check the
// matrix, run it, print the tables, write the results folder.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_MATRIX_YAML, defaultMatrix, fullMatrix } from './matrix/default.js';
import { MatrixError, parseMatrix, validateMatrix } from './matrix/schema.js';
import type { Matrix } from './matrix/types.js';
import { defaultPeersDir, installPeers } from './peers.js';
import { benchProgress } from './progress.js';
import { LocalHost } from './providers/local.js';
import { NetnsHost, NetnsUnavailable } from './providers/netns.js';
import type { Host } from './providers/types.js';
import { compareResults, formatComparison, loadResults, ResultsFileError } from './report/compare.js';
import { reportHtml } from './report/html.js';
import { formatTables } from './report/tables.js';
import type { Results } from './results.js';
import { plan, runMatrix } from './runner.js';
import type { BenchOptions } from './command.js';

/** results/<UTC timestamp>, e.g. results/2026-12-01T19-45-07Z. */
function resultsDir(base: string, at: Date): string {
  return join(base, at.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-'));
}

export function loadMatrix(o: Pick<BenchOptions, 'matrix' | 'full' | 'systems' | 'repeat'>): Matrix {
  let m: Matrix;
  if (o.matrix !== undefined) {
    let text: string;
    try {
      text = readFileSync(o.matrix, 'utf8');
    } catch (err) {
      throw new MatrixError(`--matrix: cannot read ${o.matrix}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    m = parseMatrix(text);
  } else m = defaultMatrix();
  if (o.systems !== undefined) {
    // --systems replaces the matrix's list; it goes through the same checks.
    m = validateMatrix({ ...m, systems: o.systems, scenarios: m.scenarios });
  }
  if (o.repeat !== undefined) m.repetitions = o.repeat;
  return o.full ? fullMatrix(m) : m;
}

/** The flags of --provider gcp. */
const GCP_FLAGS = ['project', 'zone', 'machineType', 'image', 'network', 'yes', 'keep', 'onGce'] as const;

/** The first of these flags the user gave, as typed (--machine-type); undefined when none. */
function givenFlag(o: BenchOptions, keys: ReadonlyArray<(typeof GCP_FLAGS)[number]>): string | undefined {
  const k = keys.find((k) => o[k] !== undefined && o[k] !== false);
  return k === undefined ? undefined : `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** The action of `sluice bench`. */
export async function bench(o: BenchOptions): Promise<void> {
  const peersDir = resolve(o.peersDir ?? defaultPeersDir());
  o.peersDir = peersDir;
  if (o.installPeers) {
    installPeers(peersDir, (l) => process.stderr.write(l + '\n'));
    process.stderr.write('peers installed\n');
    return;
  }
  let matrix: Matrix;
  try {
    matrix = loadMatrix(o);
  } catch (err) {
    if (err instanceof MatrixError) {
      process.stderr.write(`error: ${o.systems !== undefined ? err.message.replace(/^matrix: systems(\.\d+)?/, '--systems') : err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (o.printMatrix) {
    process.stdout.write(o.matrix === undefined && o.systems === undefined && o.repeat === undefined && !o.full ? DEFAULT_MATRIX_YAML : (await import('yaml')).stringify(matrix));
    return;
  }
  if (o.daemon === undefined && (o.detach || o.label !== undefined)) {
    process.stderr.write(`error: ${o.detach ? '--detach' : '--label'} needs --daemon URL\n`);
    process.exit(2);
  }
  if (o.daemon !== undefined) {
    if (o.compare !== undefined) {
      process.stderr.write('error: --compare: not with --daemon; compare daemon runs with sluice orchestrator compare BASE HEAD\n');
      process.exit(2);
    }
    const { benchOnDaemon } = await import('./daemon/client.js');
    if (o.linkDelayMs !== undefined || o.linkRate !== undefined) {
      process.stderr.write('error: --link-delay-ms/--link-rate: not with --daemon\n');
      process.exit(2);
    }
    const placement = givenFlag(o, GCP_FLAGS.filter((k) => k !== 'yes'));
    if (placement !== undefined) {
      process.stderr.write(`error: ${placement}: not with --daemon; put the VMs' placement in the matrix's gcp: section (the daemon's operator set the rest)\n`);
      process.exit(2);
    }
    process.exit(await benchOnDaemon(matrix, { url: o.daemon, tokenEnv: 'SLUICE_ORCHESTRATOR_TOKEN', detach: o.detach, label: o.label, provider: o.provider }));
  }
  if (o.failOnRegression && o.compare === undefined) {
    process.stderr.write('error: --fail-on-regression needs --compare BASE\n');
    process.exit(2);
  }
  let base: Results | undefined;
  if (o.compare !== undefined) {
    // Read before the run: a wrong path should not cost a whole matrix.
    try {
      base = loadResults(o.compare);
    } catch (err) {
      if (err instanceof ResultsFileError) {
        process.stderr.write(`error: --compare: ${err.message}\n`);
        process.exit(2);
      }
      throw err;
    }
  }
  if (o.provider !== 'netns' && (o.linkDelayMs !== undefined || o.linkRate !== undefined)) {
    process.stderr.write(`error: ${o.linkDelayMs !== undefined ? '--link-delay-ms' : '--link-rate'} needs --provider netns\n`);
    process.exit(2);
  }
  const gcpFlag = givenFlag(o, GCP_FLAGS);
  if (o.provider !== 'gcp' && gcpFlag !== undefined) {
    process.stderr.write(`error: ${gcpFlag} needs --provider gcp\n`);
    process.exit(2);
  }
  let host: Host;
  try {
    host = o.provider === 'gcp' ? await createGcpHost(o, matrix) : createHost(o);
  } catch (err) {
    const { GcpUnavailable } = await import('./providers/gcp/credentials.js');
    if (err instanceof NetnsUnavailable || err instanceof GcpUnavailable) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(2);
    }
    const { GcpError } = await import('./providers/gcp/fleet.js');
    const { SshError } = await import('./providers/ssh.js');
    if (err instanceof GcpError || err instanceof SshError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(err.message === 'cancelled' ? 130 : 1);
    }
    throw err;
  }
  const code = await runBench(matrix, o, host, base);
  process.exit(code);
}

/** The gcp options of a run: flags over the matrix's `gcp:` over the defaults (exit 2 without a project). */
export async function gcpOptions(o: BenchOptions, matrix: Matrix, log: (l: string) => void): Promise<import('./providers/gcp/host.js').GcpOptions> {
  const { DEFAULTS } = await import('./providers/gcp/host.js');
  const g = matrix.gcp ?? {};
  const project = o.project ?? g.project ?? process.env.GOOGLE_CLOUD_PROJECT;
  if (project === undefined || project === '') {
    process.stderr.write('error: --project: --provider gcp needs the GCP project (--project, the matrix\'s gcp.project, or $GOOGLE_CLOUD_PROJECT)\n');
    process.exit(2);
  }
  return {
    project,
    zone: o.zone ?? g.zone ?? DEFAULTS.zone,
    machineType: o.machineType ?? g.machine_type ?? DEFAULTS.machineType,
    image: o.image ?? g.image ?? DEFAULTS.image,
    network: o.network ?? g.network ?? DEFAULTS.network,
    yes: o.yes,
    keep: o.keep,
    onGce: o.onGce,
    log,
  };
}

/** Creates, provisions and connects the three VMs; Ctrl-C on the way deletes what was created. */
async function createGcpHost(o: BenchOptions, matrix: Matrix): Promise<Host> {
  const { GcpHost, terminalConfirm } = await import('./providers/gcp/host.js');
  const log = (l: string): void => void process.stderr.write(l + '\n');
  const opts = await gcpOptions(o, matrix, log);
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`\n${sig}: stopping; the VMs created so far are deleted`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const confirm = terminalConfirm();
    return await GcpHost.create({ ...opts, signal: abort.signal, ...(confirm ? { confirm } : {}) }, matrix, plan(matrix).reduce((s, u) => s + u.seconds, 0));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Where the run's roles go (--provider); a netns host is set up here (exit 2 when the machine forbids it). */
function createHost(o: BenchOptions): Host {
  if (o.provider !== 'netns') return new LocalHost();
  const h = new NetnsHost({ linkDelayMs: o.linkDelayMs, linkRate: o.linkRate, log: (l) => process.stderr.write(l + '\n') });
  h.setup();
  return h;
}

/** Where the system's host has the peers: this machine's folder, or where site.yml put them on a VM. */
async function runPeersDir(o: BenchOptions, host: Host): Promise<string> {
  if (host.name !== 'gcp') return resolve(o.peersDir ?? defaultPeersDir());
  return (await import('./providers/gcp/host.js')).REMOTE_PEERS_DIR;
}

/** Runs the matrix, prints the tables, writes the results folder; returns the exit code. */
async function runBench(matrix: Matrix, o: BenchOptions, host: Host, base?: Results): Promise<number> {
  const startedAt = new Date();
  const out = resultsDir(resolve(o.out), startedAt);
  const abort = new AbortController();
  let signal: NodeJS.Signals | null = null;
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signal !== null) {
      if (host.name === 'gcp' && signals === 2) {
        // VMs cost money: the second Ctrl-C still deletes them; only a third leaves them.
        process.stderr.write('deleting the VMs first; Ctrl-C again leaves them (then: sluice orchestrator gc --provider gcp --yes)\n');
        void host.close().then(
          () => process.exit(sig === 'SIGINT' ? 130 : 143),
          () => process.exit(1),
        );
        return;
      }
      if (signals > 2) process.exit(sig === 'SIGINT' ? 130 : 143);
      // A second Ctrl-C: stop the processes now, without waiting for the run to unwind.
      void host.close().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
      return;
    }
    signal = sig;
    process.stderr.write(`\n${sig}: stopping the run; what finished is kept\n`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const progress = benchProgress();
  let results: Results;
  try {
    results = await runMatrix({ matrix, host, peersDir: await runPeersDir(o, host), onEvent: progress.onEvent, signal: abort.signal });
  } finally {
    progress.stop();
    try {
      await host.close();
    } catch (err) {
      // The VMs that could not be deleted are named by the provider; the results are still written.
      process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
  }
  const tables = formatTables(results);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'results.json'), JSON.stringify(results, null, 1) + '\n');
  writeFileSync(join(out, 'tables.md'), tables);
  writeFileSync(join(out, 'report.html'), reportHtml(results));
  process.stdout.write('\n' + tables);
  let regressions = 0;
  if (base !== undefined) {
    const comparison = compareResults(base, results);
    const md = formatComparison(comparison);
    writeFileSync(join(out, 'compare.md'), md);
    process.stdout.write('\n' + md);
    regressions = comparison.regressions;
  }
  process.stderr.write(`\nresults: ${out}/ (results.json, tables.md, report.html${base !== undefined ? ', compare.md' : ''})\n`);
  if (signal !== null) return signal === 'SIGINT' ? 130 : 143;
  if (results.status === 'failed') {
    process.stderr.write(`error: the run failed: ${results.error}\n`);
    return 1;
  }
  if (o.failOnRegression && regressions > 0) {
    process.stderr.write(`error: ${regressions} regression${regressions === 1 ? '' : 's'} against ${o.compare}\n`);
    return 1;
  }
  return 0;
}
