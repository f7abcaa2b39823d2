// tsc keeps the shebang but not the executable bit of the CLI.
import { chmodSync } from 'node:fs';
chmodSync(new URL('../dist/cli.js', import.meta.url), 0o755);
