// The behavioural suite every KeyStore implementation must pass.
import { fork } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { sha256Hex } from '../../gateway/auth/key-hash.js';
import { waitFor } from '../helpers/gateway.js';
import type { KeyStore, OpenStoreConfig } from '../../gateway/store/index.js';

export interface SuiteTarget {
  cfg: OpenStoreConfig;
  /** Opens a new store object on the same backend (the suite closes it). */
  open(): KeyStore;
  /** Everything persisted, as bytes/text, to search for secrets. */
  dump(): Promise<Buffer>;
  /** Revocations through one object reach listeners on another (redis). */
  crossInstanceRevocations: boolean;
}

const CHILD = fileURLToPath(new URL('./fixtures/lease-child.ts', import.meta.url));

function openT(t: Test, target: SuiteTarget): KeyStore {
  const s = target.open();
  t.teardown(() => s.close());
  return s;
}

/** Runs `n` child processes that each take `count` leases of 1 from one window; resolves with the grants. */
async function childLeases(target: SuiteTarget, keyId: string, windowId: number, n: number, count: number, limit: number): Promise<number[]> {
  const kids = Array.from({ length: n }, () => {
    const p = fork(CHILD, [JSON.stringify(target.cfg), keyId, String(windowId), String(count), String(limit)], {
      stdio: ['pipe', 'pipe', 'pipe', 'ipc'],
    });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const lines = createInterface({ input: p.stdout! });
    const ready = new Promise<void>((resolve, reject) => {
      lines.on('line', (l) => l === 'ready' && resolve());
      p.once('exit', (c) => reject(new Error(`child exited ${c}: ${err}`)));
    });
    const result = new Promise<number>((resolve, reject) => {
      lines.on('line', (l) => {
        if (l.startsWith('{')) resolve((JSON.parse(l) as { granted: number }).granted);
      });
      p.once('exit', (c) => setTimeout(() => reject(new Error(`child exited ${c} without result: ${err}`)), 100));
    });
    return { p, ready, result };
  });
  try {
    await Promise.all(kids.map((k) => k.ready));
    for (const k of kids) k.p.stdin!.write('go\n');
    return await Promise.all(kids.map((k) => k.result));
  } finally {
    for (const k of kids) if (k.p.exitCode === null) k.p.kill('SIGKILL');
  }
}

export function runSuite(t: Test, target: SuiteTarget): void {
  t.test('createKey: secret format, lookup by sha256, secret never stored', async (t) => {
    const s = openT(t, target);
    await s.ready();
    t.equal(s.kind, target.cfg.kind);
    const { key, secret } = await s.createKey({ name: 'alpha', models: ['m1', 'm2'], rpm: 60, tpm: 1000, expiresAt: 4102444800000 });
    t.match(secret, /^sk-[A-Za-z0-9_-]{43,}$/, 'sk- + base64url of 32 bytes');
    t.equal(key.sha256, sha256Hex(secret));
    t.match(key, { name: 'alpha', models: ['m1', 'm2'], rpm: 60, tpm: 1000, expiresAt: 4102444800000 });
    t.type(key.id, 'string');
    t.ok(key.createdAt > Date.now() - 60_000 && key.createdAt <= Date.now());
    t.equal(key.revokedAt, undefined);

    const rec = await s.lookup(sha256Hex(secret));
    t.same(rec, { id: key.id, name: 'alpha', models: ['m1', 'm2'], rpm: 60, tpm: 1000, expiresAt: 4102444800000 });
    t.equal(await s.lookup(sha256Hex(secret + 'x')), null, 'unknown key: null');

    const { key: k2, secret: s2 } = await s.createKey({ name: 'beta' });
    t.not(s2, secret);
    t.not(k2.id, key.id);
    t.same(await s.lookup(k2.sha256), { id: k2.id, name: 'beta', models: ['*'] }, 'defaults: all models, no limits');

    // Visible from another store object.
    const other = openT(t, target);
    await other.ready();
    t.same(await other.lookup(key.sha256), rec);

    const bytes = await target.dump();
    t.ok(bytes.length > 0, 'dump is not empty');
    t.notOk(bytes.includes(secret), 'secret is not stored');
    t.notOk(bytes.includes(s2), 'second secret is not stored');
    t.notOk(bytes.includes(secret.slice(3)), 'not even without its prefix');
    t.ok(bytes.includes(key.sha256), 'its hash is');

    await t.rejects(s.createKey({ name: '' }), 'a name is required');
  });

  t.test('listKeys and getKey', async (t) => {
    const s = openT(t, target);
    const a = await s.createKey({ name: 'list-a' });
    const b = await s.createKey({ name: 'list-b', models: ['x'] });
    const all = await s.listKeys();
    const ids = all.map((k) => k.id);
    t.ok(ids.includes(a.key.id) && ids.includes(b.key.id), 'both listed');
    t.same(
      all.find((k) => k.id === b.key.id),
      b.key,
    );
    t.same(await s.getKey(a.key.id), a.key);
    t.equal(await s.getKey('key_does_not_exist'), null);
    for (const k of all) t.notOk('secret' in k, 'no secret field');
  });

  t.test('revokeKey: revokedAt, idempotent, lookup shows it, onRevoked', async (t) => {
    const s = openT(t, target);
    const other = openT(t, target);
    await Promise.all([s.ready(), other.ready()]);
    const seen: { id: string; sha256: string }[] = [];
    const seenOther: { id: string; sha256: string }[] = [];
    s.onRevoked((ev) => seen.push(ev));
    other.onRevoked((ev) => seenOther.push(ev));
    const { key } = await s.createKey({ name: 'doomed' });
    const before = Date.now();
    const r = await s.revokeKey(key.id);
    t.ok(r);
    t.ok(r!.revokedAt! >= before && r!.revokedAt! <= Date.now(), 'revokedAt set');
    t.equal(r!.id, key.id);
    t.equal((await s.lookup(key.sha256))?.revokedAt, r!.revokedAt, 'lookup shows revokedAt');
    t.equal((await other.lookup(key.sha256))?.revokedAt, r!.revokedAt, 'also through another object');
    t.same(seen, [{ id: key.id, sha256: key.sha256 }], 'listener on the revoking store called once');

    await new Promise((res) => setTimeout(res, 5));
    const again = await s.revokeKey(key.id);
    t.equal(again!.revokedAt, r!.revokedAt, 'idempotent: revokedAt unchanged');
    t.equal(await s.revokeKey('key_unknown'), null, 'unknown: null');

    if (target.crossInstanceRevocations) {
      t.ok(await waitFor(() => seenOther.length >= 1), 'delivered to another store instance');
      t.same(seenOther[0], { id: key.id, sha256: key.sha256 });
    } else {
      t.same(seenOther, [], 'sqlite: only revocations made through this object');
    }
  });

  t.test('usage: batches add up per key and model', async (t) => {
    const s = openT(t, target);
    const other = openT(t, target);
    const k1 = 'usage-k1-' + Math.random().toString(36).slice(2);
    const k2 = 'usage-k2-' + Math.random().toString(36).slice(2);
    await s.addUsage([
      { keyId: k1, model: 'gpt|x', requests: 1, promptTokens: 10, completionTokens: 5 },
      { keyId: k1, model: 'm2', requests: 2, promptTokens: 20, completionTokens: 0, estimatedRequests: 1 },
      { keyId: k2, model: 'm2', requests: 1, promptTokens: 1, completionTokens: 1 },
    ]);
    await Promise.all([
      s.addUsage([{ keyId: k1, model: 'gpt|x', requests: 1, promptTokens: 3, completionTokens: 4, estimatedRequests: 1 }]),
      other.addUsage([{ keyId: k1, model: 'gpt|x', requests: 1, promptTokens: 3, completionTokens: 4 }]),
    ]);
    await s.addUsage([]);
    t.same(await s.usage(k1), [
      { keyId: k1, model: 'gpt|x', requests: 3, promptTokens: 16, completionTokens: 13, estimatedRequests: 1 },
      { keyId: k1, model: 'm2', requests: 2, promptTokens: 20, completionTokens: 0, estimatedRequests: 1 },
    ]);
    const all = await other.usage();
    t.same(
      all.filter((r) => r.keyId === k2),
      [{ keyId: k2, model: 'm2', requests: 1, promptTokens: 1, completionTokens: 1, estimatedRequests: 0 }],
    );
    t.equal(all.filter((r) => r.keyId === k1).length, 2);
    t.same(await s.usage('nobody'), []);
  });

  t.test('usage: a batch id is applied at most once, by any store object', async (t) => {
    const s = openT(t, target);
    const other = openT(t, target);
    const k = 'usage-once-' + Math.random().toString(36).slice(2);
    const deltas = [{ keyId: k, model: 'm', requests: 2, promptTokens: 30, completionTokens: 7, estimatedRequests: 1 }];
    const batch = { id: 'b-' + Math.random().toString(36).slice(2), firstSentAt: Date.now() };
    await s.addUsage(deltas, batch);
    const once = [{ keyId: k, model: 'm', requests: 2, promptTokens: 30, completionTokens: 7, estimatedRequests: 1 }];
    if (target.cfg.kind === 'redis') {
      // A retry (same id) from this or another object is a no-op; a new id counts again.
      await s.addUsage(deltas, batch);
      await other.addUsage(deltas, { ...batch });
      t.same(await s.usage(k), once, 'the same batch id three times: counted once');
    }
    await s.addUsage(deltas, { id: batch.id + '-2', firstSentAt: Date.now() });
    t.same(await s.usage(k), [{ ...once[0]!, requests: 4, promptTokens: 60, completionTokens: 14, estimatedRequests: 2 }], 'another id: counted');
  });

  t.test('lease: exact budget, the 11th unit is refused', async (t) => {
    const s = openT(t, target);
    const w = 1000;
    const grants: number[] = [];
    for (let i = 0; i < 11; i++) grants.push(await s.lease('lk', 'req', w, 1, 10));
    t.same(grants, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    t.equal(await s.windowUsed('lk', 'req', w), 10);
    t.equal(await s.lease('lk', 'tok', w, 1, 10), 1, 'kinds are separate');
    t.equal(await s.lease('lk', 'req', w + 1, 1, 10), 1, 'windows are separate');
    t.equal(await s.lease('lk2', 'req', w, 1, 10), 1, 'keys are separate');

    const parts: number[] = [];
    for (let i = 0; i < 4; i++) parts.push(await s.lease('lk', 'tok', 2000, 4, 10));
    t.same(parts, [4, 4, 2, 0], 'partial grant, then nothing');
    t.equal(await s.lease('lk', 'tok', 2000, 0, 10), 0, 'want 0');
    t.equal(await s.lease('lk', 'tok', 2001, 5, 0), 0, 'limit 0');
  });

  t.test('lease: concurrent store objects never exceed the limit', async (t) => {
    const stores = Array.from({ length: 4 }, () => openT(t, target));
    await Promise.all(stores.map((s) => s.ready()));
    const jobs: Promise<number>[] = [];
    for (let i = 0; i < 60; i++) jobs.push(stores[i % stores.length]!.lease('conc', 'req', 7, 1 + (i % 3), 25));
    const got = await Promise.all(jobs);
    t.equal(
      got.reduce((a, b) => a + b, 0),
      25,
      'exactly the limit granted',
    );
    t.equal(await stores[0]!.windowUsed('conc', 'req', 7), 25);
  });

  t.test('lease: concurrent processes never exceed the limit', async (t) => {
    const key = 'proc-' + Math.random().toString(36).slice(2);
    const grants = await childLeases(target, key, 42, 3, 15, 10);
    t.equal(
      grants.reduce((a, b) => a + b, 0),
      10,
      `exactly 10 granted across processes (${grants.join(' + ')})`,
    );
    t.ok(grants.filter((g) => g > 0).length >= 2, 'the processes really interleaved');
    const s = openT(t, target);
    t.equal(await s.windowUsed(key, 'req', 42), 10);
  });

  t.test('charge: adds without a limit check, leases then respect it', async (t) => {
    const s = openT(t, target);
    await s.charge('ck', 'tok', 5, 7);
    t.equal(await s.windowUsed('ck', 'tok', 5), 7);
    t.equal(await s.lease('ck', 'tok', 5, 10, 10), 3, 'only the rest of the budget');
    await s.charge('ck', 'tok', 5, 6);
    t.equal(await s.windowUsed('ck', 'tok', 5), 16, 'charge may go over the limit');
    t.equal(await s.lease('ck', 'tok', 5, 1, 10), 0, 'over budget: nothing');
    await s.charge('ck', 'tok', 5, -10);
    t.equal(await s.windowUsed('ck', 'tok', 5), 6, 'negative charge refunds');
    await s.charge('ck', 'tok', 5, -100);
    t.equal(await s.windowUsed('ck', 'tok', 5), 0, 'never below 0');
    await s.charge('ck', 'tok', 5, 0);
    t.equal(await s.windowUsed('ck', 'tok', 99), 0, 'unknown window: 0');
  });
}
