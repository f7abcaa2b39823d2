// A real run of ansible/site.yml against this machine (ansible_connection=local)
// into a temporary prefix: the app from `npm pack`, the sink, the gateway,
// the load generator (and the orchestrator daemon, where dist/ has it)
// started without systemd (sluice_service_manager: direct, the roles'
// test-only mode), each answering; one authenticated request
// through the gateway to the sink; then a second run that changes nothing;
// then rollout.yml: a forced restart that waits for the old gateway to go out
// of service, and a failing roll-out that stops before the next host.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { PLAYBOOK, REPO, ansibleEnv, gatewayKnowsGrace, gatewayReloads, missingTools, runPlaybook, scratch, tail, testMachineVars } from './ansible.js';

t.setTimeout(300_000);

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Stops what the run started: each pid file's process group, SIGTERM then SIGKILL. */
async function stopAll(runDir: string): Promise<void> {
  if (!existsSync(runDir)) return;
  const pids = readdirSync(runDir)
    .filter((f) => f.endsWith('.pid'))
    .map((f) => Number(readFileSync(join(runDir, f), 'utf8').trim()))
    .filter((pid) => pid > 1);
  const signal = (pid: number, sig: NodeJS.Signals): void => {
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, sig);
      } catch {
        /* gone */
      }
    }
  };
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of pids) signal(pid, 'SIGKILL');
}

/** Whether the built CLI has the orchestrator daemon. */
function orchestratorExists(): boolean {
  try {
    execFileSync(process.execPath, [join(REPO, 'dist', 'cli.js'), 'orchestrator', 'serve', '--help'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The tasks that reported changed (or failed), for a failure message. */
function changedTasks(output: string): string {
  let task = '';
  const lines: string[] = [];
  for (const line of output.split('\n')) {
    if (line.startsWith('TASK [')) task = line.replace(/\s*\*+$/, '');
    else if (/^(changed|failed|fatal)/.test(line)) lines.push(`${task}: ${line.slice(0, 300)}`);
  }
  return lines.join('\n');
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = missingTools(PLAYBOOK, '/sbin/start-stop-daemon') || (isRoot ? false : 'the roles install files owned by root: run as root');

t.test('site.yml installs and starts the sink, the gateway and the load generator; a second run changes nothing', { skip }, async (t) => {
  const dir = scratch(t, 'site');
  const prefix = join(dir, 'root');
  const runDir = join(prefix, 'var', 'lib', 'sluice', 'run');
  t.teardown(() => stopAll(runDir));
  const [sinkPort, gatewayPort, loadgenPort, orchestratorPort, nginxPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  // The nginx peer too where nginx is installed (`npm run bench:*` installs it).
  const nginx = existsSync('/usr/sbin/nginx');
  if (!nginx) t.comment('/usr/sbin/nginx is not installed: the nginx peer is not deployed');
  const peerKey = `sk-peer-${process.pid}`;
  // `sluice orchestrator serve` is newer than the roles: its unit is always installed, it is started only where it exists.
  const daemon = orchestratorExists();
  if (!daemon) t.comment('dist/ has no `sluice orchestrator serve`: its unit is installed, not started');
  const key = `sk-site-test-${process.pid}-${Date.now()}`;
  const inventory = join(dir, 'hosts.yml');
  const groups = Object.fromEntries(['sink', 'sut', 'source', 'orchestrator'].map((g) => [g, { hosts: { localhost: {} } }]));
  writeFileSync(inventory, JSON.stringify({ all: { hosts: { localhost: { ansible_connection: 'local' } }, children: groups } }));
  const grace = gatewayKnowsGrace();
  if (!grace) t.comment('dist/ predates shutdown.grace_ms: the config leaves it out');
  const vars = join(dir, 'vars.json');
  writeFileSync(vars, JSON.stringify({
    ...testMachineVars(prefix, dir),
    sluice_service_manager: 'direct', // tests only: no systemd here
    sluice_sink_host: '127.0.0.1',
    sluice_sink_port: sinkPort,
    mocksink_host: '127.0.0.1',
    gateway_host: '127.0.0.1',
    gateway_port: gatewayPort,
    gateway_workers: 1,
    gateway_keys: [{ name: 'site-test', secret: key }],
    gateway_shutdown_grace_ms: grace ? 300 : null,
    gateway_drain_timeout_ms: 2000,
    loadgen_port: loadgenPort,
    orchestrator_port: orchestratorPort,
    nginx_enabled: nginx,
    nginx_port: nginxPort,
    nginx_bind: '127.0.0.1',
    nginx_workers: 1,
    sluice_peer_api_key: peerKey,
    sluice_apt_cache_valid_time: 315360000, // nginx-light is there: never apt-get update
    orchestrator_start: daemon,
  }));
  let args = ['-i', inventory, '-e', `@${vars}`, 'site.yml'];
  const env = ansibleEnv(dir);

  const first = await runPlaybook(args, env);
  t.comment(`first run: ${(first.ms / 1000).toFixed(1)} s`);
  t.equal(first.code, 0, 'the first run succeeds');
  t.equal(first.recap.localhost?.failed, 0, 'no task failed');
  t.ok((first.recap.localhost?.changed ?? 0) > 0, 'and it changed things');
  if (first.code !== 0) return t.comment(tail(first.output, 60));

  const sink = await fetch(`http://127.0.0.1:${sinkPort}/healthz`);
  t.equal(sink.status, 200, 'the sink answers /healthz');
  const gw = await fetch(`http://127.0.0.1:${gatewayPort}/healthz`);
  t.equal(gw.status, 200, 'the gateway answers /healthz');
  t.equal((await fetch(`http://127.0.0.1:${gatewayPort}/readyz`)).status, 200, 'and /readyz');
  // `sluice loadgen serve` has no /healthz: its list of runs is what answers.
  const lg = await fetch(`http://127.0.0.1:${loadgenPort}/v1/benchmarks`);
  t.equal(lg.status, 200, 'the load generator answers');

  const body = JSON.stringify({ model: 'benchmark-model', messages: [{ role: 'user', content: 'hello' }] });
  const ok = await fetch(`http://127.0.0.1:${gatewayPort}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
  t.equal(ok.status, 200, 'an authenticated request goes through the gateway');
  const completion = (await ok.json()) as { object?: string; usage?: unknown };
  t.equal(completion.object, 'chat.completion', 'and the sink answered it');
  const denied = await fetch(`http://127.0.0.1:${gatewayPort}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sk-wrong', 'content-type': 'application/json' }, body });
  t.equal(denied.status, 401, 'a wrong key is refused');
  await denied.arrayBuffer();
  const stats = (await (await fetch(`http://127.0.0.1:${sinkPort}/sink/stats`)).json()) as { requests: number };
  t.ok(stats.requests >= 2, `the sink saw the role's check request and ours (${stats.requests})`);

  if (nginx) {
    const viaNginx = await fetch(`http://127.0.0.1:${nginxPort}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${peerKey}`, 'content-type': 'application/json' }, body });
    t.equal(viaNginx.status, 200, 'the nginx peer proxies a request with its key to the sink');
    t.equal(((await viaNginx.json()) as { object?: string }).object, 'chat.completion');
    const noKey = await fetch(`http://127.0.0.1:${nginxPort}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    t.equal(noKey.status, 401, 'and refuses one without it');
    await noKey.arrayBuffer();
  }
  t.ok(existsSync(join(prefix, 'etc', 'systemd', 'system', 'sluice-orchestrator.service')), "the orchestrator's unit is installed");
  if (daemon) {
    t.equal((await fetch(`http://127.0.0.1:${orchestratorPort}/healthz`)).status, 200, 'the orchestrator answers /healthz');
  } else {
    t.notOk(existsSync(join(runDir, 'sluice-orchestrator.pid')), 'but not started (orchestrator_start: false)');
  }
  for (const name of ['sluice-sink', 'sluice-gateway', 'sluice-loadgen', ...(daemon ? ['sluice-orchestrator'] : []), ...(nginx ? ['sluice-peer-nginx'] : [])]) {
    const pid = Number(readFileSync(join(runDir, `${name}.pid`), 'utf8'));
    t.ok(alive(pid), `${name} runs (pid ${pid})`);
  }
  const pidsBefore = readFileSync(join(runDir, 'sluice-gateway.pid'), 'utf8');

  // Later runs install the tarball the first run packed: dist/ may be rebuilt meanwhile (others work in this repository).
  const packed = readdirSync(join(dir, 'pack')).filter((f) => f.endsWith('.tgz'));
  t.equal(packed.length, 1, 'the first run packed one tarball on the controller');
  const samePackage = ['-e', JSON.stringify({ common_package_tarball: join(dir, 'pack', packed[0]!) })];
  args = ['-i', inventory, '-e', `@${vars}`, ...samePackage, 'site.yml'];

  const second = await runPlaybook(args, env);
  t.comment(`second run: ${(second.ms / 1000).toFixed(1)} s`);
  t.equal(second.code, 0, 'the second run succeeds');
  t.equal(second.recap.localhost?.changed, 0, 'and reports changed=0');
  if (second.code !== 0 || second.recap.localhost?.changed !== 0) t.comment(tail(changedTasks(second.output), 40));
  t.equal(readFileSync(join(runDir, 'sluice-gateway.pid'), 'utf8'), pidsBefore, 'the gateway was not restarted');

  // rollout.yml, forced to restart: the gateway drains (/readyz 503 or closed), a new one starts and serves.
  const roll = await runPlaybook(['-i', inventory, '-e', `@${vars}`, ...samePackage, '-e', '{"gateway_force_restart": true}', 'rollout.yml'], env);
  t.comment(`rollout.yml: ${(roll.ms / 1000).toFixed(1)} s`);
  t.equal(roll.code, 0, 'rollout.yml succeeds');
  if (roll.code !== 0) t.comment(tail(roll.output, 60));
  t.match(roll.output, /TASK \[sluice_service : Wait until it is out of service[^\n]*\n(ok|changed): \[localhost\]/, 'it waited for the old gateway to go out of service');
  const pidAfter = readFileSync(join(runDir, 'sluice-gateway.pid'), 'utf8');
  t.not(pidAfter, pidsBefore, 'the gateway was restarted');
  t.ok(alive(Number(pidAfter)), 'and runs');
  const again = await fetch(`http://127.0.0.1:${gatewayPort}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
  t.equal(again.status, 200, 'the new gateway serves');
  await again.arrayBuffer();

  // Only the config changed (a key added): the roll-out reloads the gateway in place (SIGHUP), the new key works.
  if (gatewayReloads()) {
    const added = `sk-added-${process.pid}-${Date.now()}`;
    const keys = { gateway_keys: [{ name: 'site-test', secret: key }, { name: 'added', secret: added }] };
    const reload = await runPlaybook(['-i', inventory, '-e', `@${vars}`, ...samePackage, '-e', JSON.stringify(keys), 'rollout.yml'], env);
    t.comment(`rollout.yml (config only): ${(reload.ms / 1000).toFixed(1)} s`);
    t.equal(reload.code, 0, 'a config-only roll-out succeeds');
    if (reload.code !== 0) t.comment(tail(reload.output, 60));
    t.match(reload.output, /TASK \[sluice_service : Reload with SIGHUP \(config changed\): sluice-gateway\][^\n]*\nchanged: \[localhost\]/, 'it reloaded the gateway with SIGHUP');
    t.equal(readFileSync(join(runDir, 'sluice-gateway.pid'), 'utf8'), pidAfter, 'without restarting it');
    const withAdded = await fetch(`http://127.0.0.1:${gatewayPort}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${added}`, 'content-type': 'application/json' }, body });
    t.equal(withAdded.status, 200, 'the key the new config added works');
    await withAdded.arrayBuffer();
  } else {
    t.comment('dist/ has no SIGHUP reload yet: the config-only roll-out is not run');
  }

  // A host that fails stops the roll-out: the second host is never touched.
  const twoHosts = join(dir, 'two-hosts.yml');
  writeFileSync(twoHosts, JSON.stringify({
    all: {
      hosts: { localhost: { ansible_connection: 'local' }, 'sut-b': { ansible_connection: 'local' } },
      children: { sut: { hosts: { localhost: {}, 'sut-b': {} } } },
    },
  }));
  const failing = await runPlaybook(['-i', twoHosts, '-e', `@${vars}`, ...samePackage, '-e', '{"gateway_check_key": "sk-not-a-key"}', 'rollout.yml'], env);
  t.not(failing.code, 0, 'a roll-out whose check request fails exits non-zero');
  t.match(failing.output, /Send one real request with a key through the gateway[\s\S]*fatal: \[localhost\]/, 'it failed at the request check');
  t.notMatch(failing.output, /\[sut-b\]/, 'the second host was not touched');
  t.notOk(failing.recap['sut-b'] && failing.recap['sut-b'].ok > 0, 'no task ran on it');
  const still = await fetch(`http://127.0.0.1:${gatewayPort}/readyz`);
  t.equal(still.status, 200, 'the first host still serves');
});
