// The gateway as the benchmarks run it: one config file (a benchmark-model in
// front of the sink, request logs as asked, no grace period on SIGTERM) and a
// `sluice gateway` child that is ready once it says it listens.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { spawnReady, jsonPort } from './procs.mjs';

const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/**
 * Writes a gateway config to `path`. `keys`: static keys ({name, sha256}); `store`: the store
 * section (default none); `weight`: the sink upstream's weight; `requests`: one log line per request.
 */
export function writeGatewayConfig(path, { sinkUrl, keys = [], store = { kind: 'none' }, weight = 1, requests = true }) {
  const config = {
    listen: { host: '127.0.0.1', port: 0 },
    workers: 'auto',
    models: { 'benchmark-model': { upstreams: [{ url: `${sinkUrl}/v1`, weight }] } },
    keys: keys.map((k) => ({ ...k, models: ['*'] })),
    store,
    log: { level: 'info', requests },
    // Nothing balances load over it here: the port closes at once on SIGTERM.
    shutdown: { grace_ms: 0 },
  };
  writeFileSync(path, stringify(config));
}

/** Starts `sluice gateway --config path`; resolves with the child and its first line ({ port, … }). */
export function startGatewayProcess(path) {
  return spawnReady(process.execPath, [cli, 'gateway', '--config', path], (l) => {
    const m = jsonPort(l);
    return m && m.msg === 'gateway listening' ? m : null;
  });
}
