// `sluice keys …`: key administration, against the store directly (--store or
// --config) or against a running gateway's admin API (--url, with the admin
// token from $SLUICE_ADMIN_TOKEN).
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { sha256Hex } from './auth/key-hash.js';
import { integer, list } from '../common/cli-args.js';
import { ConfigError, loadConfigFile } from './config/load.js';
import { resolveStore } from './primary.js';
import { openStore, type KeyStore } from './store/index.js';
import { keyView } from './http/admin.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

interface Target {
  store?: string;
  config?: string;
  url?: string;
}

type Admin = (method: string, path: string, body?: unknown) => Promise<unknown>;

function fail(program: Command, message: string): never {
  program.error(`error: ${message}`, { exitCode: 2 });
  throw new Error(message);
}

/** The store a command works on, or an admin-API caller. */
function target(program: Command, o: Target, creates: boolean): { store: KeyStore } | { admin: Admin } {
  if (o.url !== undefined) {
    const token = process.env.SLUICE_ADMIN_TOKEN;
    if (!token) fail(program, '--url: set SLUICE_ADMIN_TOKEN to the gateway admin token');
    const base = o.url.replace(/\/+$/, '');
    return {
      admin: async (method, path, body) => {
        const res = await fetch(`${base}${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const json = (await res.json()) as { error?: { message: string } };
        if (!res.ok) throw new Error(`${res.status}: ${json.error?.message ?? 'request failed'}`);
        return json;
      },
    };
  }
  if (o.store !== undefined) {
    if (o.store.startsWith('redis://') || o.store.startsWith('rediss://')) return { store: openStore({ kind: 'redis', url: o.store }) };
    const path = o.store.startsWith('sqlite:') ? o.store.slice(7) : o.store;
    // Only create makes a new store: for the rest, a mistyped path would look like an empty one.
    if (!creates && !existsSync(path)) fail(program, `--store: no SQLite file at ${path}`);
    return { store: openStore({ kind: 'sqlite', path }) };
  }
  let cfg;
  try {
    cfg = loadConfigFile(o.config);
  } catch (err) {
    if (err instanceof ConfigError) fail(program, err.message);
    throw err;
  }
  const s = resolveStore(cfg);
  if (s === undefined || s.kind === 'none') fail(program, '--config: the config has no key store (store.kind none)');
  return { store: openStore(s.kind === 'sqlite' ? { kind: 'sqlite', path: s.path! } : s) };
}

function withTarget(cmd: Command): Command {
  return cmd
    .option('--store <url|path>', 'the store: redis://HOST:PORT or a SQLite file path')
    .option('--config <file>', "use the gateway config's store (default store: ./data/sluice.db)")
    .option('--url <url>', "a running gateway's base URL: use its admin API (token in $SLUICE_ADMIN_TOKEN)");
}

async function run(program: Command, o: Target, direct: (s: KeyStore) => Promise<unknown>, viaApi: (a: Admin) => Promise<unknown>, creates = false): Promise<void> {
  const t = target(program, o, creates);
  try {
    const out = 'store' in t ? await direct(t.store) : await viaApi(t.admin);
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } catch (err) {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  } finally {
    if ('store' in t) await t.store.close().catch(() => undefined);
  }
}

export function registerKeysCommand(program: Command): void {
  const keys = program.command('keys').description('key administration (create, list, revoke, usage, hash)');
  keys
    .command('hash')
    .description('print the SHA-256 (hex) of a key secret read from stdin, for the config file')
    .action(async () => {
      // Trimmed as the gateway trims the bearer secret it hashes.
      const secret = (await readStdin()).trim();
      if (secret === '') fail(program, 'stdin: no secret given (pipe the key in: echo -n "$KEY" | sluice keys hash)');
      process.stdout.write(sha256Hex(secret) + '\n');
    });
  withTarget(keys.command('create').description('create a key; its secret is printed once'))
    .requiredOption('--name <name>', 'a name for the key')
    .option('--models <names>', 'comma-separated models it may use (default: all)', list)
    .option('--rpm <n>', 'requests per minute', integer(1))
    .option('--tpm <n>', 'tokens per minute', integer(1))
    .option('--expires-in <days>', 'days until it expires', integer(1, 36500))
    .action(async (o: Target & { name: string; models?: string[]; rpm?: number; tpm?: number; expiresIn?: number }) => {
      const expiresAt = o.expiresIn === undefined ? undefined : Date.now() + o.expiresIn * 86_400_000;
      await run(
        program,
        o,
        async (s) => {
          const { key, secret } = await s.createKey({ name: o.name, models: o.models, rpm: o.rpm, tpm: o.tpm, expiresAt });
          return { ...keyView(key), secret };
        },
        (a) => a('POST', '/admin/v1/keys', { name: o.name, models: o.models, rpm: o.rpm, tpm: o.tpm, expires_at: expiresAt === undefined ? undefined : Math.floor(expiresAt / 1000) }),
        true,
      );
    });
  withTarget(keys.command('list').description('list keys (never their secrets)')).action(async (o: Target) => {
    await run(program, o, async (s) => (await s.listKeys()).map(keyView), async (a) => ((await a('GET', '/admin/v1/keys')) as { data: unknown }).data);
  });
  withTarget(keys.command('revoke').description('revoke a key by id').argument('<id>', 'the key id')).action(async (id: string, o: Target) => {
    await run(
      program,
      o,
      async (s) => {
        const k = await s.revokeKey(id);
        if (k === null) throw new Error(`no key with id ${id}`);
        return keyView(k);
      },
      (a) => a('DELETE', `/admin/v1/keys/${encodeURIComponent(id)}`),
    );
  });
  withTarget(
    keys
      .command('usage')
      .description('usage per key and model: requests, prompt and completion tokens, and estimated requests (those whose tokens the gateway estimated: the upstream reported none)'),
  )
    .option('--key <id>', 'only this key')
    .action(async (o: Target & { key?: string }) => {
      await run(
        program,
        o,
        async (s) => s.usage(o.key),
        async (a) => ((await a('GET', `/admin/v1/usage${o.key ? `?key_id=${encodeURIComponent(o.key)}` : ''}`)) as { data: unknown }).data,
      );
    });
}
