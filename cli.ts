#!/usr/bin/env node
// `sluice <component> [options]`: one command, a subcommand per component.
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { registerSinkCommand } from './mocksink/command.js';
import { registerLoadgenCommand } from './loadgen/command.js';
import { registerGatewayCommand } from './gateway/command.js';
import { registerKeysCommand } from './gateway/keys-command.js';
import { registerBenchCommand } from './orchestrator/command.js';
import { registerOrchestratorCommand } from './orchestrator/daemon/command.js';

const pkg = createRequire(import.meta.url)('../package.json') as { version: string };

const program = new Command('sluice')
  .description('sluice: an OpenAI-compatible AI gateway, and the apparatus that benchmarks it')
  .version(pkg.version)
  .showSuggestionAfterError(true)
  .exitOverride()
  .configureOutput({
    // commander's messages already start with "error:"; keep them to one line.
    outputError: (str, write) => write(str.trim().split('\n')[0] + '\n'),
  });

registerSinkCommand(program);
registerGatewayCommand(program);
registerKeysCommand(program);
registerLoadgenCommand(program);
registerBenchCommand(program);
registerOrchestratorCommand(program);

// A command that only groups others (sluice, sluice loadgen, sluice keys) run
// without one of them is a usage error: one line and exit 2, not the help page.
(function requireSubcommand(cmd: Command): void {
  if (cmd.commands.length === 0) return;
  const names = cmd.commands.map((c) => c.name()).filter((n) => n !== 'help');
  cmd.allowExcessArguments(true).action(() => {
    const given = cmd.args[0];
    if (given === 'help') (cmd.commands.find((c) => c.name() === cmd.args[1]) ?? cmd).help();
    if (given !== undefined) cmd.error(`error: unknown command '${given}'; the commands are ${names.join(', ')}.`, { exitCode: 2 });
    cmd.error(`error: ${cmd.name()} needs a command: ${names.join(', ')} (see --help).`, { exitCode: 2 });
  });
  for (const sub of cmd.commands) requireSubcommand(sub);
})(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
      process.exit(0);
    }
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
