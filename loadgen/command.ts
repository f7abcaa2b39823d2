import type { Command } from 'commander';

// Placeholder until the load generator lands (issue 5).
export function registerLoadgenCommand(program: Command): void {
  program.command('loadgen').description('the load generator (not built yet)');
}
