// Loads the gateway's YAML config, validates it once with ajv, applies CLI
// overrides and checks that the environment variables it names exist.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { configSchema, type GatewayConfig } from './schema.js';
import { hasCrLfNul } from '../proxy/h1-types.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface ConfigOverrides {
  host?: string;
  port?: number;
  workers?: 'auto' | number;
  upstream?: string;
}

const ajv = new Ajv({ useDefaults: true, allErrors: false, strict: false });
const validate = ajv.compile<GatewayConfig>(configSchema);

function describe(err: ErrorObject): string {
  const path = err.instancePath === '' ? '(top level)' : err.instancePath.slice(1).replace(/\//g, '.');
  // Unions: ajv reports the first branch that failed ("must be equal to constant"); say what is allowed.
  if (path === 'workers') return 'workers: must be "auto" or an integer from 1 to 256';
  if (path === 'store' || path.startsWith('store.')) {
    return `${path}: store must be {kind: sqlite, path?}, {kind: redis, url: redis://… or rediss://…} or {kind: none}`;
  }
  if (err.keyword === 'additionalProperties') {
    return `${path === '(top level)' ? '' : path + '.'}${(err.params as { additionalProperty: string }).additionalProperty}: unknown field`;
  }
  if (err.keyword === 'required') {
    return `${path === '(top level)' ? '' : path + '.'}${(err.params as { missingProperty: string }).missingProperty}: is required`;
  }
  if (err.keyword === 'enum') return `${path}: must be one of ${(err.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  if (err.keyword === 'pattern' && path.endsWith('sha256')) return `${path}: must be 64 lowercase hex characters (sluice keys hash prints it)`;
  return `${path}: ${err.message ?? 'is invalid'}`;
}

/** Validates a plain object as a gateway config (applying defaults); throws ConfigError naming the field. */
export function validateConfig(raw: unknown, overrides: ConfigOverrides = {}, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const cfg = structuredClone(raw ?? {}) as Record<string, unknown>;
  if (typeof cfg !== 'object' || Array.isArray(cfg)) throw new ConfigError('config: must be a YAML mapping');
  // A section left with only comments in it (`keys:`) parses as null: treat it as absent.
  for (const k of Object.keys(cfg)) if (cfg[k] === null) delete cfg[k];
  if (!validate(cfg)) throw new ConfigError(`config: ${describe(validate.errors![0]!)}`);
  const c = cfg as unknown as GatewayConfig;
  if (overrides.host !== undefined) {
    // The file's host goes through the schema; the flag's must meet the same rule.
    if (overrides.host.trim() === '') throw new ConfigError('--host: must be an address to listen on, not empty');
    c.listen.host = overrides.host;
  }
  if (overrides.port !== undefined) c.listen.port = overrides.port;
  if (overrides.workers !== undefined) c.workers = overrides.workers;
  if (overrides.upstream !== undefined) {
    if (!/^https?:\/\/\S+$/.test(overrides.upstream)) throw new ConfigError('--upstream: must be an http:// or https:// URL');
    const names = Object.keys(c.models);
    if (names.length === 0) c.models['*'] = { balance: 'round_robin', upstreams: [{ url: overrides.upstream, weight: 1 }] };
    for (const name of names) {
      c.models[name]!.upstreams = c.models[name]!.upstreams.map((u) => ({ ...u, url: overrides.upstream! }));
    }
  }
  if (Object.keys(c.models).length === 0) {
    throw new ConfigError('config: models: name at least one model and its upstreams (or pass --upstream)');
  }
  for (const [name, m] of Object.entries(c.models)) {
    m.upstreams.forEach((u, i) => {
      const field = `config: models.${name}.upstreams.${i}.url`;
      let url: URL;
      try {
        url = new URL(u.url);
      } catch {
        throw new ConfigError(`${field}: is not a valid URL`);
      }
      // The client sends only a URL's origin and path: anything else would be dropped unsaid.
      if (url.username !== '' || url.password !== '') throw new ConfigError(`${field}: must not hold a user or password (use api_key_env)`);
      if (url.search !== '' || url.hash !== '') throw new ConfigError(`${field}: must not have a query or fragment`);
      // WHATWG reads http:///v1 as the host "v1".
      if (!/^https?:\/\/[^/]/i.test(u.url)) throw new ConfigError(`${field}: must name a host after http:// or https://`);
      if (u.api_key_env !== undefined && !env[u.api_key_env]) {
        throw new ConfigError(`config: models.${name}.upstreams.${i}.api_key_env: environment variable ${u.api_key_env} is not set`);
      }
      if (u.api_key_env !== undefined && hasCrLfNul(env[u.api_key_env]!)) {
        // It is written into a request header: a line break would let it inject headers.
        throw new ConfigError(`config: models.${name}.upstreams.${i}.api_key_env: environment variable ${u.api_key_env} contains a line break`);
      }
      if (u.tls?.ca_file !== undefined) {
        try {
          u.tls.ca = readFileSync(u.tls.ca_file, 'utf8');
        } catch (err) {
          throw new ConfigError(`config: models.${name}.upstreams.${i}.tls.ca_file: cannot read ${u.tls.ca_file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
        }
      }
    });
  }
  if (c.admin?.token_env !== undefined && !env[c.admin.token_env]) {
    throw new ConfigError(`config: admin.token_env: environment variable ${c.admin.token_env} is not set`);
  }
  if (c.metrics?.token_env !== undefined && !env[c.metrics.token_env]) {
    throw new ConfigError(`config: metrics.token_env: environment variable ${c.metrics.token_env} is not set`);
  }
  const names = new Set<string>();
  c.keys.forEach((k, i) => {
    if (names.has(k.name)) throw new ConfigError(`config: keys.${i}.name: duplicate key name ${k.name}`);
    names.add(k.name);
  });
  return c;
}

export function loadConfigFile(path: string | undefined, overrides: ConfigOverrides = {}, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  let raw: unknown = {};
  if (path !== undefined) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(`--config: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    try {
      raw = parseYaml(text) ?? {};
    } catch (err) {
      throw new ConfigError(`--config: ${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return validateConfig(raw, overrides, env);
}
