// The per-run SSH key pair put in the VMs' metadata, and the Ansible
// inventory of a GCP run (groups source, sut, sink; the VMs' external
// addresses to reach them, internal ones for their traffic; the login user
// is SSH_USER, never the service account `sluice`).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { GcpError, SSH_USER, type Vm } from './fleet.js';

export interface KeyPair {
  privateKeyFile: string;
  publicKey: string;
}

/** An ed25519 key pair in `dir` (mode 0600), made with ssh-keygen. */
export function generateKeyPair(dir: string, comment: string): KeyPair {
  const file = join(dir, 'id_ed25519');
  try {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    throw new GcpError(e.code === 'ENOENT' ? 'ssh-keygen is not installed (apt-get install -y openssh-client)' : `ssh-keygen failed: ${String(e.stderr ?? e.message).trim()}`);
  }
  return { privateKeyFile: file, publicKey: readFileSync(`${file}.pub`, 'utf8').trim() };
}

/** The inventory site.yml runs against: one host per group, reached as `user` (SSH_USER) with the run's key. */
export function writeInventory(path: string, vms: Vm[], key: KeyPair, user: string = SSH_USER): void {
  const group = (role: Vm['role']) => {
    const vm = vms.find((v) => v.role === role);
    if (vm === undefined) return { hosts: {} };
    return { hosts: { [vm.name]: { ansible_host: vm.externalIp ?? vm.internalIp, internal_address: vm.internalIp } } };
  };
  const inventory = {
    all: {
      vars: {
        ansible_user: user,
        ansible_ssh_private_key_file: key.privateKeyFile,
        ansible_ssh_common_args: '-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=' + join(path, '..', 'known_hosts'),
        ansible_become: true,
      },
      children: { source: group('source'), sut: group('sut'), sink: group('sink') },
    },
  };
  writeFileSync(path, stringify(inventory), { mode: 0o600 });
}
