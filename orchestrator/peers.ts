// Peers are not dependencies of sluice: they are installed into a cache
// folder of their own (`sluice bench --install-peers`), never into the
// project's node_modules, and nginx through apt-get where we are root.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { NGINX } from './systems/nginx.js';

export const PORTKEY_VERSION = '1.15.2';

/** $SLUICE_PEERS_DIR, or $XDG_CACHE_HOME/sluice/peers (~/.cache/sluice/peers). */
export function defaultPeersDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SLUICE_PEERS_DIR) return env.SLUICE_PEERS_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'sluice', 'peers');
}

export function portkeyEntry(peersDir: string): string {
  return join(peersDir, 'node_modules', '@portkey-ai', 'gateway', 'build', 'start-server.js');
}

export const PEERS_PACKAGE = {
  name: 'sluice-peers',
  private: true,
  description: 'Gateways sluice bench measures beside sluice; installed by `sluice bench --install-peers`.',
  dependencies: { '@portkey-ai/gateway': PORTKEY_VERSION },
  // Portkey's streaming breaks with later @hono/node-server releases.
  overrides: { '@hono/node-server': '1.13.8' },
  // Its postinstall runs patch-package over patches it does not ship: nothing to run.
  allowScripts: { '@portkey-ai/gateway': false },
};

/** Installs the peers; returns one line per peer saying what was done. */
export function installPeers(peersDir: string, log: (line: string) => void): void {
  mkdirSync(peersDir, { recursive: true });
  writeFileSync(join(peersDir, 'package.json'), JSON.stringify(PEERS_PACKAGE, null, 2) + '\n');
  log(`installing @portkey-ai/gateway@${PORTKEY_VERSION} into ${peersDir}`);
  const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: peersDir, stdio: ['ignore', 'inherit', 'inherit'] });
  if (npm.status !== 0) throw new Error(`npm install in ${peersDir} failed (exit ${npm.status ?? npm.signal})`);
  if (!existsSync(portkeyEntry(peersDir))) throw new Error(`npm install finished but ${portkeyEntry(peersDir)} is missing`);
  if (existsSync(NGINX)) {
    log(`nginx: already installed (${NGINX})`);
    return;
  }
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const apt = spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0;
  const cmd = 'apt-get update && apt-get install -y --no-install-recommends nginx-light';
  if (!root || !apt) {
    log(`nginx: not installed; as root run: ${cmd}`);
    return;
  }
  log('nginx: installing nginx-light with apt-get');
  execFileSync('sh', ['-c', cmd], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}
