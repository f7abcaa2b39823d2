// sshd (Debian's openssh-server) in the namespaces of a NetnsHost: three
// hosts reached over real SSH, as the VMs of a GCP run are. Each listens on
// its namespace's 198.18 address, port 22, and takes one key pair made here
// for the invoking user; everything is removed when the test ends.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { NetnsHost, Role } from '../../orchestrator/providers/netns.js';
import { netnsLock } from './netns-lock.js';
import type { SshTarget } from '../../orchestrator/providers/ssh.js';

export const SSHD = '/usr/sbin/sshd';

/** Why sshd cannot run here (for t.skip), or false. */
export function sshdMissing(): string | false {
  return existsSync(SSHD) ? false : `${SSHD} is not installed (apt-get install -y openssh-server; node scripts/ensure-system-deps.mjs does it)`;
}

export interface NetnsSshd {
  targets: Record<Role, SshTarget>;
  keyFile: string;
  publicKey: string;
  /** The pids of the three sshd processes. */
  pids: number[];
  /** The keys sshd accepts, one per line (append to it to accept another). */
  authorizedKeys: string;
}

export async function sshdInNamespaces(t: Test, host: NetnsHost, opts: { keyFile?: string; publicKey?: string } = {}): Promise<NetnsSshd> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-sshd-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  let keyFile = opts.keyFile;
  let publicKey = opts.publicKey;
  if (keyFile === undefined || publicKey === undefined) {
    keyFile = join(dir, 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
    publicKey = readFileSync(`${keyFile}.pub`, 'utf8').trim();
  }
  writeFileSync(join(dir, 'authorized_keys'), publicKey + '\n', { mode: 0o600 });
  // Privilege separation needs this folder (a package's service would create it).
  execFileSync('mkdir', ['-p', '/run/sshd']);
  const procs: ReturnType<typeof spawn>[] = [];
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const roles: Role[] = ['source', 'sut', 'sink'];
  const targets = {} as Record<Role, SshTarget>;
  for (const role of roles) {
    const address = host.address(role);
    const config = join(dir, `sshd_${role}`);
    writeFileSync(
      config,
      [
        `ListenAddress ${address}`,
        'Port 22',
        `HostKey ${join(dir, 'host_key')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password',
        'StrictModes no',
        'UsePAM no',
        'AllowTcpForwarding local',
        'MaxSessions 64',
        'MaxStartups 64:30:128',
        `PidFile ${join(dir, `sshd_${role}.pid`)}`,
      ].join('\n') + '\n',
    );
    const p = spawn('ip', ['netns', 'exec', host.namespace(role), SSHD, '-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    procs.push(p);
    await new Promise<void>((resolve, reject) => {
      let err = '';
      p.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes('Server listening')) resolve();
      });
      p.once('exit', (code) => reject(new Error(`sshd in ${host.namespace(role)} exited (${code}): ${err.trim()}`)));
    });
    targets[role] = { address, user: userInfo().username, keyFile, internalAddress: address };
  }
  return { targets, keyFile, publicKey, pids: procs.map((p) => p.pid!), authorizedKeys: join(dir, 'authorized_keys') };
}

/** Three namespaces (a NetnsHost of dist/, set up under the tests' netns lock, removed at the end) with sshd in each. */
export async function netnsWithSshd(t: Test): Promise<{ netns: NetnsHost; sshd: NetnsSshd }> {
  const { NetnsHost } = (await import(new URL('../../dist/orchestrator/providers/netns.js', import.meta.url).href)) as typeof import('../../orchestrator/providers/netns.js');
  const netns = new NetnsHost();
  const release = await netnsLock();
  try {
    netns.setup();
  } finally {
    release();
  }
  t.teardown(() => netns.close());
  return { netns, sshd: await sshdInNamespaces(t, netns) };
}
