// Runs Ansible from the tests: ansible-playbook with the project's roles, its
// temporary files in a directory of the test, no colour, and the PLAY RECAP
// read back.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const ANSIBLE_DIR = join(REPO, 'ansible');
export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** The reason a tool is missing (for t.skip), or false when every one is there. */
export function missingTools(...tools: string[]): string | false {
  const missing = tools.filter((tool) => !existsSync(tool));
  return missing.length === 0 ? false : `not installed: ${missing.join(', ')} (node scripts/ensure-system-deps.mjs installs them, as root)`;
}

export const PLAYBOOK = '/usr/bin/ansible-playbook';
export const LINT = '/usr/bin/ansible-lint';
export const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';

/** A scratch directory removed when the test ends. */
export function scratch(t: Test, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `sluice-${name}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Environment of every Ansible command: its temporary files under `home`, the project's roles. */
export function ansibleEnv(home: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ANSIBLE_HOME: join(home, '.ansible'),
    ANSIBLE_LOCAL_TEMP: join(home, '.ansible', 'tmp'),
    ANSIBLE_REMOTE_TEMP: join(home, '.ansible', 'remote-tmp'),
    ANSIBLE_ROLES_PATH: join(ANSIBLE_DIR, 'roles'),
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_FORCE_COLOR: '0',
    ANSIBLE_RETRY_FILES_ENABLED: '0',
    ANSIBLE_STDOUT_CALLBACK: 'default',
    ANSIBLE_LOAD_CALLBACK_PLUGINS: '0',
    ANSIBLE_DEPRECATION_WARNINGS: '1',
    ANSIBLE_PYTHON_INTERPRETER: '/usr/bin/python3',
    ANSIBLE_PIPELINING: '1',
    ANSIBLE_LOCALHOST_WARNING: '0',
    ANSIBLE_INVENTORY_UNPARSED_WARNING: '0',
    // The load generator's web page check in site.yml uses loopback only.
    no_proxy: '*',
    NO_PROXY: '*',
  };
}

export interface Recap {
  ok: number;
  changed: number;
  unreachable: number;
  failed: number;
  skipped: number;
}

export interface PlaybookRun {
  code: number | null;
  output: string;
  ms: number;
  /** PLAY RECAP per host. */
  recap: Record<string, Recap>;
}

export function parseRecap(output: string): Record<string, Recap> {
  const recap: Record<string, Recap> = {};
  const at = output.lastIndexOf('PLAY RECAP');
  if (at < 0) return recap;
  for (const line of output.slice(at).split('\n').slice(1)) {
    const m = /^(\S+)\s+:\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const fields = Object.fromEntries([...m[2]!.matchAll(/(\w+)=(\d+)/g)].map((f) => [f[1]!, Number(f[2])]));
    recap[m[1]!] = { ok: fields.ok ?? 0, changed: fields.changed ?? 0, unreachable: fields.unreachable ?? 0, failed: fields.failed ?? 0, skipped: fields.skipped ?? 0 };
  }
  return recap;
}

/** ansible-playbook ARGS; resolves when it exits (never rejects). */
export function runPlaybook(args: string[], env: NodeJS.ProcessEnv, cwd = ANSIBLE_DIR): Promise<PlaybookRun> {
  const started = Date.now();
  return new Promise((resolve) => {
    const proc = spawn(PLAYBOOK, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (output += d.toString()));
    proc.on('close', (code) => resolve({ code, output, ms: Date.now() - started, recap: parseRecap(output) }));
  });
}

/** A command's exit code and output, synchronously. */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** The tail of a long output, for failure messages. */
export const tail = (s: string, lines = 40): string => s.trim().split('\n').slice(-lines).join('\n');

/** Whether the built gateway knows shutdown.grace_ms (the reload issue adds it). */
export function gatewayKnowsGrace(): boolean {
  try {
    return readFileSync(join(REPO, 'dist', 'gateway', 'config', 'schema.js'), 'utf8').includes('grace_ms');
  } catch {
    return false;
  }
}

/** Whether the built gateway reloads its config on SIGHUP (the reload issue). */
export function gatewayReloads(): boolean {
  try {
    return readFileSync(join(REPO, 'dist', 'gateway', 'primary.js'), 'utf8').includes("'SIGHUP', () => startReload");
  } catch {
    return false;
  }
}

/** better-sqlite3's binary, as a local prebuild, so the install does not compile it again (~75 s). */
export function localPrebuilds(dir: string): Record<string, string> {
  const pkgDir = join(REPO, 'node_modules', 'better-sqlite3');
  const binary = join(pkgDir, 'build', 'Release', 'better_sqlite3.node');
  if (!existsSync(binary)) return {};
  const { version } = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string };
  const out = join(dir, 'prebuilds');
  mkdirSync(out, { recursive: true });
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  execFileSync('tar', ['-czf', join(out, name), '-C', pkgDir, 'build/Release/better_sqlite3.node']);
  return { npm_config_better_sqlite3_local_prebuilds: out };
}

/**
 * The roles' variables for a run on this test machine, into `prefix`: no account created (root runs the
 * services), this Node, no Node install (only npm and Debian apt are reachable), no sysctl applied (never
 * retune the test machine), npm's cache and better-sqlite3's local prebuild.
 */
export function testMachineVars(prefix: string, dir: string): Record<string, unknown> {
  return {
    ansible_become: false,
    sluice_prefix: prefix,
    sluice_create_user: false,
    sluice_user: 'root',
    sluice_group: 'root',
    sluice_dirs_owner: 'root',
    sluice_dirs_group: 'root',
    sluice_node_bin: process.execPath,
    common_install_node: false,
    common_sysctl_apply: false,
    common_package_build_dir: join(dir, 'pack'),
    common_npm_cache: join(homedir(), '.npm'),
    common_npm_env: localPrebuilds(dir),
  };
}
