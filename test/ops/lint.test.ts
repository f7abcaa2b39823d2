// Every playbook passes `ansible-playbook --syntax-check`, and the whole of
// ansible/ passes ansible-lint with the production profile.
import t from 'tap';
import { join } from 'node:path';
import { ANSIBLE_DIR, LINT, PLAYBOOK, ansibleEnv, missingTools, run, scratch, tail } from './ansible.js';

const PLAYBOOKS = ['site.yml', 'rollout.yml'];

t.test('--syntax-check passes on every playbook', { skip: missingTools(PLAYBOOK) }, async (t) => {
  const env = ansibleEnv(scratch(t, 'syntax'));
  for (const playbook of PLAYBOOKS) {
    const r = run(PLAYBOOK, ['--syntax-check', '-i', join(ANSIBLE_DIR, 'inventory.example', 'hosts.yml'), playbook], { cwd: ANSIBLE_DIR, env });
    t.equal(r.code, 0, `${playbook}: syntax-check exits 0`);
    if (r.code !== 0) t.comment(tail(r.stdout + r.stderr));
  }
  const broken = run(PLAYBOOK, ['--syntax-check', '-i', 'localhost,', join(ANSIBLE_DIR, 'roles', 'common', 'defaults', 'main.yml')], { cwd: ANSIBLE_DIR, env });
  t.not(broken.code, 0, 'a file that is not a playbook fails it (the check can fail)');
});

t.test('ansible-lint --profile production is clean', { skip: missingTools(LINT) }, async (t) => {
  const home = scratch(t, 'lint');
  const r = run(LINT, ['-c', join(ANSIBLE_DIR, '.ansible-lint'), '--offline', '--nocolor', '-p', ...PLAYBOOKS, 'roles'], { cwd: ANSIBLE_DIR, env: { ...ansibleEnv(home), HOME: home } });
  t.equal(r.code, 0, 'ansible-lint exits 0');
  t.equal(r.stdout.trim(), '', 'and reports no violation');
  if (r.code !== 0) t.comment(tail(r.stdout + r.stderr, 60));
});
