// The systemd units of the four sluice services, rendered by their Ansible
// roles (with this machine's node and the repository's dist/cli.js, so every
// executable they name exists): each passes `systemd-analyze verify` with an
// empty stderr, rates "OK" (exposure ≤ 3.0) with `systemd-analyze security
// --offline=true`, and has the directives the operations issue asks for;
// no secret reaches a unit or the gateway's config.
import t from 'tap';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnCli } from '../helpers/sink.js';
import { FIXTURES, gatewayKnowsGrace, PLAYBOOK, REPO, SYSTEMD_ANALYZE, ansibleEnv, missingTools, run, runPlaybook, scratch, tail } from './ansible.js';

const UNITS = ['sluice-sink', 'sluice-gateway', 'sluice-loadgen', 'sluice-orchestrator'] as const;
const missing = missingTools(PLAYBOOK, SYSTEMD_ANALYZE);
// The nginx peer's unit too where nginx is installed (`npm run bench:*` installs it): its role checks its package.
const NGINX = '/usr/sbin/nginx';
const withNginx = existsSync(NGINX);

t.test('the rendered units verify, rate OK and carry the hardening', { skip: missing }, async (t) => {
  const dir = scratch(t, 'units');
  const prefix = join(dir, 'root');
  const adminToken = `admin-${process.pid}-do-not-leak`;
  const keySecret = `sk-test-${process.pid}-do-not-leak`;
  const upstreamKey = `up-${process.pid}-do-not-leak`;
  const vars = join(dir, 'vars.json');
  // Grace and drain that are not the defaults: TimeoutStopSec must follow them.
  writeFileSync(vars, JSON.stringify({
    sluice_prefix: prefix,
    sluice_node_bin: process.execPath,
    sluice_cli: join(REPO, 'dist', 'cli.js'),
    gateway_shutdown_grace_ms: 7000,
    gateway_drain_timeout_ms: 40000,
    gateway_admin_token: adminToken,
    gateway_keys: [{ name: 'bench', secret: keySecret }],
    gateway_upstream_secrets: { SINK_API_KEY: upstreamKey },
    gateway_models: { 'benchmark-model': { upstreams: [{ url: 'http://127.0.0.1:8081/v1', api_key_env: 'SINK_API_KEY' }] } },
    render_roles: ['mocksink', 'gateway', 'loadgen', 'orchestrator', ...(withNginx ? ['nginx'] : [])],
    sluice_peer_api_key: 'sk-peer-test',
    sluice_apt_cache_valid_time: 315360000, // the package is there: never apt-get update
  }));
  const r = await runPlaybook(['-i', 'localhost,', '-e', `@${vars}`, join(FIXTURES, 'render-units.yml')], ansibleEnv(dir));
  t.equal(r.code, 0, 'the roles render the units');
  if (r.code !== 0) return t.comment(tail(r.output));

  const unitDir = join(prefix, 'etc', 'systemd', 'system');
  const scores: Record<string, number> = {};
  for (const name of UNITS) {
    const file = join(unitDir, `${name}.service`);
    const unit = readFileSync(file, 'utf8');
    const verify = run(SYSTEMD_ANALYZE, ['verify', file]);
    t.equal(verify.code, 0, `${name}: systemd-analyze verify exits 0`);
    t.equal(verify.stderr, '', `${name}: systemd-analyze verify says nothing on stderr`);
    const security = run(SYSTEMD_ANALYZE, ['security', '--offline=true', file]);
    const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?) (\S+)/.exec(security.stdout);
    t.ok(m, `${name}: systemd-analyze security rates it`);
    if (m) {
      scores[name] = Number(m[1]);
      t.ok(Number(m[1]) <= 3.0, `${name}: exposure ${m[1]} ${m[2]} is OK (≤ 3.0) or better`);
    }
    for (const line of [
      'User=sluice', 'Group=sluice', 'Restart=on-failure', 'KillSignal=SIGTERM', 'NoNewPrivileges=yes', 'ProtectSystem=strict',
      'ProtectHome=yes', 'PrivateTmp=yes', 'PrivateDevices=yes', 'ProtectKernelTunables=yes', 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
      'SystemCallFilter=@system-service', 'CapabilityBoundingSet=', 'LimitNOFILE=1048576',
      `EnvironmentFile=${join(prefix, 'etc', 'sluice', `${name}.env`)}`, `StateDirectory=sluice/${name.replace('sluice-', '')}`,
      `LogsDirectory=sluice/${name.replace('sluice-', '')}`,
    ]) {
      t.ok(unit.split('\n').includes(line), `${name}: ${line}`);
    }
    t.notMatch(unit, /^MemoryDenyWriteExecute=yes/m, `${name}: no MemoryDenyWriteExecute (V8's JIT needs W+X memory)`);
    t.match(unit, new RegExp(`^ExecStart=${process.execPath} ${join(REPO, 'dist', 'cli.js')} `, 'm'), `${name}: runs the CLI with node`);
    for (const secret of [adminToken, keySecret, upstreamKey]) t.notOk(unit.includes(secret), `${name}: no secret in the unit`);
    const env = join(prefix, 'etc', 'sluice', `${name}.env`);
    t.equal(statSync(env).mode & 0o777, 0o600, `${name}: environment file is mode 0600`);
  }
  if (withNginx) {
    const file = join(unitDir, 'sluice-peer-nginx.service');
    const verify = run(SYSTEMD_ANALYZE, ['verify', file]);
    t.equal(verify.code, 0, 'sluice-peer-nginx: systemd-analyze verify exits 0');
    t.equal(verify.stderr, '', 'sluice-peer-nginx: systemd-analyze verify says nothing on stderr');
    const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(run(SYSTEMD_ANALYZE, ['security', '--offline=true', file]).stdout);
    scores['sluice-peer-nginx'] = Number(m?.[1]);
    t.ok(Number(m?.[1]) <= 3.0, `sluice-peer-nginx: exposure ${m?.[1]} is OK`);
    const conf = join(prefix, 'etc', 'sluice', 'nginx.conf');
    const test = run(NGINX, ['-t', '-q', '-e', join(dir, 'nginx-test.log'), '-c', conf]);
    t.equal(test.code, 0, `the nginx peer's config passes nginx -t ${test.stderr.trim()}`);
  } else {
    t.comment(`${NGINX} is not installed: the nginx peer's unit is not rendered`);
  }
  t.comment(`exposure: ${JSON.stringify(scores)}`);

  const gateway = readFileSync(join(unitDir, 'sluice-gateway.service'), 'utf8');
  t.match(gateway, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m, 'gateway: SIGHUP reloads');
  const stop = Number(/^TimeoutStopSec=(\d+)$/m.exec(gateway)?.[1]);
  t.ok(stop > 7 + 40, `gateway: TimeoutStopSec=${stop} is above grace (7 s) + drain (40 s)`);
  t.match(gateway, /^KillMode=mixed$/m, 'gateway: SIGTERM to the primary only, which stops its workers');
  for (const name of ['sluice-sink', 'sluice-loadgen', 'sluice-orchestrator']) {
    t.notMatch(readFileSync(join(unitDir, `${name}.service`), 'utf8'), /^ExecReload=/m, `${name}: no reload (a restart)`);
  }
  const sink = readFileSync(join(unitDir, 'sluice-sink.service'), 'utf8');
  t.ok(Number(/^TimeoutStopSec=(\d+)$/m.exec(sink)?.[1]) > 30, 'sink: TimeoutStopSec above its 30 s drain');

  // Secrets: in the 0600 environment file; the config holds only the key's sha256 and the variable names.
  const envFile = readFileSync(join(prefix, 'etc', 'sluice', 'sluice-gateway.env'), 'utf8');
  t.match(envFile, `SLUICE_ADMIN_TOKEN='${adminToken}'`);
  t.match(envFile, `SINK_API_KEY='${upstreamKey}'`);
  const config = readFileSync(join(prefix, 'etc', 'sluice', 'gateway.yaml'), 'utf8');
  for (const secret of [adminToken, keySecret, upstreamKey]) t.notOk(config.includes(secret), 'no secret in the gateway config');
  const { createHash } = await import('node:crypto');
  t.match(config, createHash('sha256').update(keySecret).digest('hex'), 'the key is in the config as its sha256');
  t.match(config, /token_env: SLUICE_ADMIN_TOKEN/);
  t.equal(statSync(join(prefix, 'etc', 'sluice', 'gateway.yaml')).mode & 0o777, 0o640, 'gateway config is mode 0640');

  // The config the role writes is one the gateway accepts: it starts on it (a bad field is exit 2).
  let configFile = join(prefix, 'etc', 'sluice', 'gateway.yaml');
  t.match(config, /grace_ms: 7000/, 'shutdown.grace_ms comes from gateway_shutdown_grace_ms');
  if (!gatewayKnowsGrace()) {
    t.comment('dist/ predates shutdown.grace_ms: started without it');
    configFile = join(dir, 'gateway-no-grace.yaml');
    writeFileSync(configFile, config.replace(/^\s*grace_ms: \d+\n/m, ''));
  }
  const gw = await spawnCli(t, ['gateway', '--config', configFile, '--port', '0', '--workers', '1'], { SLUICE_ADMIN_TOKEN: adminToken, SINK_API_KEY: upstreamKey });
  const res = await fetch(`http://127.0.0.1:${gw.ready.port as number}/healthz`);
  t.equal(res.status, 200, 'the gateway serves with the rendered config');
  await res.arrayBuffer();
  // (Stopped by spawnCli's teardown: a SIGTERM would wait out the 7 s grace.)
});

t.test('systemd-analyze verify is not silenced: a broken unit fails it', { skip: missing }, async (t) => {
  const dir = scratch(t, 'units-bad');
  const file = join(dir, 'sluice-broken.service');
  writeFileSync(file, '[Service]\nExecStart=/nonexistent/node cli.js\n');
  const verify = run(SYSTEMD_ANALYZE, ['verify', file]);
  t.not(verify.code, 0, 'a missing executable: exit code is not 0');
  t.match(verify.stderr, /not executable|No such file/, 'and it is named');
  // Bad values and unknown keys are only warnings (exit 0): the empty stderr is what catches them.
  const typo = join(dir, 'sluice-typo.service');
  writeFileSync(typo, `[Service]\nExecStart=${process.execPath} cli.js\nProtectSystem=sometimes\nProtectKernelTunable=yes\n`);
  const warned = run(SYSTEMD_ANALYZE, ['verify', typo]);
  t.match(warned.stderr, /protect system value/i, 'a bad value is on stderr');
  t.match(warned.stderr, /Unknown key 'ProtectKernelTunable'/, 'and so is a misspelt directive');
});
