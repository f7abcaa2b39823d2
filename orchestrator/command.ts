// `sluice bench`: the main job. A matrix run (scenarios × systems ×
// repetitions), printed as the reference write-up's tables, saved under
// results/<UTC timestamp>/.
//
// Only the flags are defined here: every `sluice` process (the gateway's
// workers too) registers every command, so the run itself (./bench.js, with
// undici, the report, the schemas) is loaded only when `sluice bench` runs.
import { Command, InvalidArgumentError, Option } from 'commander';
import { integer, list, number } from '../common/cli-args.js';
import { BUILTIN_SYSTEMS } from './matrix/types.js';

export interface BenchOptions {
  matrix?: string;
  printMatrix: boolean;
  full: boolean;
  systems?: string[];
  repeat?: number;
  provider: string;
  linkDelayMs?: number;
  linkRate?: string;
  project?: string;
  zone?: string;
  machineType?: string;
  image?: string;
  network?: string;
  yes: boolean;
  keep: boolean;
  onGce: boolean;
  out: string;
  installPeers: boolean;
  peersDir?: string;
  compare?: string;
  failOnRegression: boolean;
  daemon?: string;
  detach: boolean;
  label?: string;
}

const gcpName = (what: string, re: RegExp) => (v: string): string => {
  if (!re.test(v)) throw new InvalidArgumentError(`"${v}" is not a GCP ${what}.`);
  return v;
};

export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description('the main job: run a matrix of scenarios against sluice and other gateways and print the tables side by side')
    .option('--matrix <file>', 'the matrix (YAML or JSON); default: the reference write-up\'s scenarios (see --print-matrix)')
    .option('--print-matrix', 'print the default matrix (or --matrix FILE, validated) and exit', false)
    .option('--full', 'run every cell long enough to hold at least 10,000 requests', false)
    .option('--systems <names>', `systems to run, comma-separated (${BUILTIN_SYSTEMS.join(', ')}, or custom ones of the matrix)`, list)
    .option('--repeat <n>', 'repetitions of every cell (the tables show the median and the spread)', integer(1, 100))
    .addOption(
      new Option('--provider <name>', 'where source, system and sink run: local (processes on loopback), netns (a network namespace each, root) or gcp (three VMs)')
        .default('local')
        .argParser((v) => {
          if (v !== 'local' && v !== 'netns' && v !== 'gcp') throw new InvalidArgumentError(`"${v}" is not a provider; the providers are: local, netns, gcp.`);
          return v;
        }),
    )
    .option('--project <id>', 'with --provider gcp: the GCP project (or the matrix\'s gcp.project, or $GOOGLE_CLOUD_PROJECT)', gcpName('project', /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/))
    .option('--zone <zone>', 'with --provider gcp: the zone of the VMs (default us-central1-a)', gcpName('zone', /^[a-z]+-[a-z]+[0-9]+-[a-z]$/))
    .option('--machine-type <type>', 'with --provider gcp: the machine type of the three VMs (default e2-medium)', gcpName('machine type', /^[a-z0-9-]+$/))
    .option('--image <image>', 'with --provider gcp: the boot image (default projects/debian-cloud/global/images/family/debian-12)')
    .option('--network <network>', 'with --provider gcp: the VPC network (default: default; it must allow SSH from here and all traffic between the VMs)')
    .option('--yes', 'with --provider gcp: create the VMs without asking (required when not on a terminal)', false)
    .option('--keep', 'with --provider gcp: keep the VMs after the run and print how to delete them', false)
    .option('--on-gce', 'with --provider gcp: sluice itself runs on GCE (credentials may come from the metadata server)', false)
    .option('--link-delay-ms <ms>', 'with --provider netns: one-way delay added on every link (tc netem)', number(0, 10_000))
    .option('--link-rate <rate>', 'with --provider netns: the rate of every link (tc netem, e.g. 1gbit, 100mbit)', (v) => {
      if (!/^\d+(\.\d+)?(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$/i.test(v)) throw new InvalidArgumentError('must be a tc rate such as 1gbit or 100mbit.');
      return v;
    })
    .option('--out <dir>', 'where results/<UTC timestamp>/ goes', 'results')
    .option('--install-peers', 'install the peer gateways (Portkey; nginx with apt-get as root) into --peers-dir and exit', false)
    .option('--peers-dir <dir>', 'where peers are installed (default $SLUICE_PEERS_DIR, or ~/.cache/sluice/peers)')
    .option('--compare <results>', 'compare this run with an earlier one (its results folder or results.json): print each change, mark regressions and improvements')
    .option('--fail-on-regression', 'with --compare: exit 1 when the comparison finds a regression', false)
    .option('--daemon <url>', 'submit the matrix to a daemon (sluice orchestrator serve) and follow it there; token in $SLUICE_ORCHESTRATOR_TOKEN')
    .option('--detach', 'with --daemon: print the run id and return', false)
    .option('--label <label>', 'with --daemon: a label for the run in the history')
    .action(async (o: BenchOptions) => {
      const { bench } = await import('./bench.js');
      await bench(o);
    });
}
