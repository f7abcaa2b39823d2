// Portkey's open-source gateway (@portkey-ai/gateway), a Node peer, installed
// by --install-peers into the peers folder. It is pointed at the sink with
// x-portkey-provider: openai and x-portkey-custom-host.
import { dirname, join } from 'node:path';
import { portkeyEntry, PORTKEY_VERSION } from '../peers.js';
import type { SystemModule } from './types.js';

export const portkey: SystemModule = {
  name: 'portkey',
  unavailable: async (ctx) => {
    if (await ctx.files.exists(portkeyEntry(ctx.peersDir))) return null;
    return `Portkey is not installed in ${ctx.peersDir}; install it with: npx sluice bench --install-peers`;
  },
  start: async (ctx) => {
    const entry = portkeyEntry(ctx.peersDir);
    const port = await ctx.freePort();
    const version = (JSON.parse(await ctx.files.read(join(dirname(entry), '..', 'package.json'))) as { version?: string }).version ?? PORTKEY_VERSION;
    const [node] = ctx.cli;
    const proc = await ctx.procs.start('portkey', node!, [entry, `--port=${port}`, '--headless'], {
      // production: no log UI, no per-request console logging of its dev mode.
      env: { NODE_ENV: 'production' },
      cwd: ctx.dir,
      ready: (l) => l.includes('Ready for connections'),
    });
    // Its banner comes before the server listens on every path: ask until it answers.
    const deadline = Date.now() + 10_000;
    for (;;) {
      if ((await ctx.probe(`http://${ctx.host}:${port}/`)) === 200) break;
      if (Date.now() > deadline) {
        await ctx.procs.stop(proc);
        throw new Error(`Portkey did not answer on port ${port}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return {
      url: `http://${ctx.host}:${port}/v1`,
      key: 'sk-portkey-bench',
      headers: { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': ctx.sink.url },
      pids: [proc.pid],
      version: `portkey ${version}`,
      stop: () => ctx.procs.stop(proc),
    };
  },
};
