// tsc keeps the shebang but not the executable bit of the CLI.
import { chmodSync, cpSync } from 'node:fs';
chmodSync(new URL('../dist/cli.js', import.meta.url), 0o755);
// The load generator's web page is served from dist at runtime.
cpSync(new URL('../loadgen/web', import.meta.url), new URL('../dist/loadgen/web', import.meta.url), { recursive: true });
// The bench report's page script and styles are inlined from dist at runtime.
cpSync(new URL('../orchestrator/report/web', import.meta.url), new URL('../dist/orchestrator/report/web', import.meta.url), { recursive: true });
// The orchestrator daemon's web page is served from dist at runtime.
cpSync(new URL('../orchestrator/daemon/web', import.meta.url), new URL('../dist/orchestrator/daemon/web', import.meta.url), { recursive: true });
