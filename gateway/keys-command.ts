import type { Command } from 'commander';
import { sha256Hex } from './auth/key-cache.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function registerKeysCommand(program: Command): void {
  const keys = program.command('keys').description('key administration');
  keys
    .command('hash')
    .description('print the SHA-256 (hex) of a key secret read from stdin, for the config file')
    .action(async () => {
      const secret = (await readStdin()).replace(/\r?\n$/, '');
      if (secret === '') program.error('error: stdin: no secret given (pipe the key in: echo -n "$KEY" | sluice keys hash)', { exitCode: 2 });
      process.stdout.write(sha256Hex(secret) + '\n');
    });
}
