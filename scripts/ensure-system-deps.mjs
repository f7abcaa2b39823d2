#!/usr/bin/env node
// Installs the Debian packages the tests need when they are missing (as root,
// with apt-get), or says exactly which command to run. Used by `npm test`
// (pretest) and by .ci/run. `--bench` adds what the benchmarks need.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

// package -> a file that proves it is installed
const TEST_PACKAGES = {
  'redis-server': '/usr/bin/redis-server',
  chromium: '/usr/bin/chromium',
  // test/ops: the Ansible roles (syntax check, lint, a local run) and the systemd units
  'ansible-core': '/usr/bin/ansible-playbook',
  'ansible-lint': '/usr/bin/ansible-lint',
  systemd: '/usr/bin/systemd-analyze',
  // test/orchestrator: the SSH hosts of --provider gcp, stood in for by sshd in network namespaces
  'openssh-server': '/usr/sbin/sshd',
};
const BENCH_PACKAGES = {
  wrk: '/usr/bin/wrk',
  'nginx-light': '/usr/sbin/nginx',
};

const wanted = { ...TEST_PACKAGES, ...(process.argv.includes('--bench') ? BENCH_PACKAGES : {}) };
const missing = Object.entries(wanted)
  .filter(([, file]) => !existsSync(file))
  .map(([pkg]) => pkg);
if (missing.length === 0) process.exit(0);

const command = `apt-get update && apt-get install -y --no-install-recommends ${missing.join(' ')}`;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0;
if (!isRoot || !hasApt) {
  console.error(`sluice needs Debian packages that are missing: ${missing.join(', ')}.\nRun as root: ${command}`);
  process.exit(1);
}
console.error(`installing missing Debian packages: ${missing.join(', ')}`);
try {
  execFileSync('sh', ['-c', command], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
} catch {
  console.error(`installing ${missing.join(', ')} failed; run as root: ${command}`);
  process.exit(1);
}
