import t from 'tap';
import Database from 'better-sqlite3';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MIGRATIONS, openStore, SqliteKeyStore } from '../../gateway/store/index.js';
import { runSuite } from './suite.js';

const dir = t.testdir({});
const path = join(dir, 'nested', 'deeper', 'sluice.db');

runSuite(t, {
  cfg: { kind: 'sqlite', path },
  open: () => openStore({ kind: 'sqlite', path }),
  dump: async () => Buffer.concat([path, path + '-wal', path + '-shm'].filter((p) => existsSync(p)).map((p) => readFileSync(p))),
  crossInstanceRevocations: false,
});

t.test('sqlite: parent directory created, WAL mode, schema version', async (t) => {
  const p = join(t.testdir({}), 'a', 'b', 'c.db');
  const s = new SqliteKeyStore(p);
  t.teardown(() => s.close());
  t.ok(existsSync(p), 'file and parents created');
  const db = new Database(p, { readonly: true });
  t.teardown(() => db.close());
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
  t.same(tables, ['keys', 'rate_windows', 'usage']);
});

t.test('sqlite: migrations are idempotent (reopen keeps data, version unchanged)', async (t) => {
  const p = join(t.testdir({}), 'm.db');
  const s1 = openStore({ kind: 'sqlite', path: p });
  const { key, secret } = await s1.createKey({ name: 'kept' });
  await s1.addUsage([{ keyId: key.id, model: 'm', requests: 1, promptTokens: 2, completionTokens: 3 }]);
  // Open a second one while the first is still open, then reopen after closing.
  const s2 = openStore({ kind: 'sqlite', path: p });
  t.same(await s2.getKey(key.id), key);
  await s1.close();
  await s2.close();
  const s3 = openStore({ kind: 'sqlite', path: p });
  t.teardown(() => s3.close());
  t.same(await s3.getKey(key.id), key);
  t.equal((await s3.lookup(key.sha256))?.id, key.id);
  t.same(await s3.usage(key.id), [{ keyId: key.id, model: 'm', requests: 1, promptTokens: 2, completionTokens: 3, estimatedRequests: 0 }]);
  const db = new Database(p, { readonly: true });
  t.teardown(() => db.close());
  t.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
  t.notOk(readFileSync(p).includes(secret));
});

t.test('sqlite: lookup rejects (not null) when the store is unusable', async (t) => {
  const p = join(t.testdir({}), 'closed.db');
  const s = openStore({ kind: 'sqlite', path: p });
  const { key } = await s.createKey({ name: 'x' });
  await s.close();
  await t.rejects(s.lookup(key.sha256));
  await t.rejects(s.ready());
});

t.test('sqlite: old rate windows are dropped', async (t) => {
  const p = join(t.testdir({}), 'sweep.db');
  const a = openStore({ kind: 'sqlite', path: p });
  t.teardown(() => a.close());
  t.equal(await a.lease('k', 'req', 1, 3, 10), 3);
  const db = new Database(p);
  db.prepare('UPDATE rate_windows SET created_at = ?').run(Date.now() - 10 * 60_000);
  db.close();
  const b = openStore({ kind: 'sqlite', path: p });
  t.teardown(() => b.close());
  t.equal(await b.lease('k', 'req', 2, 1, 10), 1, 'a lease in a new window sweeps');
  t.equal(await b.windowUsed('k', 'req', 1), 0, 'the old window is gone');
  t.equal(await b.windowUsed('k', 'req', 2), 1, 'the current one stays');
});

t.test('sqlite: revokedSince finds keys revoked by any process from a time on, through the index', async (t) => {
  const p = join(t.testdir({}), 'r.db');
  const s = new SqliteKeyStore(p);
  t.teardown(() => s.close());
  const a = (await s.createKey({ name: 'a' })).key;
  const b = (await s.createKey({ name: 'b' })).key;
  const before = Date.now();
  t.same(s.revokedSince(before - 60_000), [], 'nothing revoked yet');
  // Revoked through another connection to the file, as another process would.
  const other = new SqliteKeyStore(p);
  await other.revokeKey(b.id);
  await other.close();
  t.same(s.revokedSince(before), [{ id: b.id, sha256: b.sha256 }], 'the revoked key, not the live one');
  t.same(s.revokedSince(Date.now() + 1000), [], 'nothing revoked after now');
  t.notOk(s.revokedSince(before).some((k) => k.id === a.id));
  const db = new Database(p, { readonly: true });
  t.teardown(() => db.close());
  const plan = (db.prepare('EXPLAIN QUERY PLAN SELECT id, sha256 FROM keys WHERE revoked_at IS NOT NULL AND revoked_at >= ?').all(0) as { detail: string }[])
    .map((r) => r.detail)
    .join(' ');
  t.match(plan, /keys_revoked/, 'the partial index is used, not a table scan');
});

t.test('sqlite: a database at schema version 1 is migrated to the current version', async (t) => {
  const p = join(t.testdir({}), 'v1.db');
  const db = new Database(p);
  db.exec(MIGRATIONS[0]!);
  db.pragma('user_version = 1');
  db.close();
  const s = new SqliteKeyStore(p);
  t.teardown(() => s.close());
  const check = new Database(p, { readonly: true });
  t.teardown(() => check.close());
  t.equal(check.pragma('user_version', { simple: true }), MIGRATIONS.length);
  t.ok(check.prepare("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'keys_revoked'").get(), 'the new index exists');
});

for (const v of [1, 2]) {
  t.test(`sqlite: a file made at schema version ${v} (fixtures/sluice-v${v}.db) opens, keeps its data and counts estimated requests`, async (t) => {
    const p = join(t.testdir({}), `v${v}.db`);
    copyFileSync(new URL(`./fixtures/sluice-v${v}.db`, import.meta.url), p);
    const s = new SqliteKeyStore(p);
    t.teardown(() => s.close());
    t.same(
      (await s.listKeys()).map((k) => [k.id, k.name, k.rpm]),
      [[`key_old${v}`, `old-v${v}`, 60]],
      'its keys are there',
    );
    t.same(await s.usage(), [{ keyId: `key_old${v}`, model: 'm', requests: 7, promptTokens: 70, completionTokens: 35, estimatedRequests: 0 }], 'its usage, none estimated');
    await s.addUsage([{ keyId: `key_old${v}`, model: 'm', requests: 2, promptTokens: 1, completionTokens: 1, estimatedRequests: 2 }]);
    t.same(await s.usage(`key_old${v}`), [{ keyId: `key_old${v}`, model: 'm', requests: 9, promptTokens: 71, completionTokens: 36, estimatedRequests: 2 }]);
    const check = new Database(p, { readonly: true });
    t.teardown(() => check.close());
    t.equal(check.pragma('user_version', { simple: true }), MIGRATIONS.length, 'migrated to the current version');
  });
}
