import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { KeyCache } from '../../gateway/auth/key-cache.js';
import { sha256Hex } from '../../gateway/auth/key-hash.js';
import { SqliteKeyStore } from '../../gateway/store/sqlite.js';
import type { KeyRecord, KeySource } from '../../gateway/auth/types.js';

/** A store that knows every key and counts its lookups: a cache hit is a lookup not made. */
function countingSource(): KeySource & { lookups: number } {
  const src = {
    lookups: 0,
    async lookup(sha256: string): Promise<KeyRecord | null> {
      src.lookups++;
      return { id: sha256.slice(0, 12), name: 'k', models: ['*'] };
    },
  };
  return src;
}

for (const capacity of [2, 3, 10]) {
  t.test(`capacity ${capacity}: a key used since it was cached outlives an older unused one (LRU, not FIFO)`, async (t) => {
    const src = countingSource();
    const cache = new KeyCache(new Map(), src, { maxEntries: capacity, ttlMs: 60_000, negativeTtlMs: 2_000 });
    const secrets = Array.from({ length: capacity + 1 }, (_, i) => `sk-lru-${i}`);
    for (const s of secrets.slice(0, capacity)) t.ok('key' in (await cache.authenticate(s)));
    t.equal(src.lookups, capacity, 'one lookup per new key');
    t.ok('key' in (await cache.authenticate(secrets[0]!)), 'the oldest key is used again');
    t.equal(src.lookups, capacity, 'from the cache');
    await cache.authenticate(secrets[capacity]!); // one key more than fits: evicts the least recently used
    t.equal(src.lookups, capacity + 1);
    await cache.authenticate(secrets[0]!);
    t.equal(src.lookups, capacity + 1, 'the key used last is still cached');
    await cache.authenticate(secrets[1]!);
    t.equal(src.lookups, capacity + 2, 'the least recently used key was the one evicted');
  });
}

/** A key source whose lookups the test answers by hand, in the order they were made. */
interface HandLookup {
  hash: string;
  resolve(k: KeyRecord | null): void;
  reject(err: Error): void;
}
function handSource(): KeySource & { lookups: number; next(): Promise<HandLookup | undefined> } {
  const pending: HandLookup[] = [];
  const src = {
    lookups: 0,
    lookup(hash: string): Promise<KeyRecord | null> {
      src.lookups++;
      return new Promise<KeyRecord | null>((resolve, reject) => pending.push({ hash, resolve, reject }));
    },
    /** The next lookup made, or undefined if none is made within a few turns of the event loop. */
    async next(): Promise<HandLookup | undefined> {
      for (let i = 0; i < 50 && pending.length === 0; i++) await new Promise((r) => setImmediate(r));
      return pending.shift();
    },
  };
  return src;
}

const REC: KeyRecord = { id: 'key-1', name: 'k', models: ['*'] };
const SECRET = 'sk-race';

const revocations: Array<[string, (c: KeyCache) => void]> = [
  ['evictHash', (c) => c.evictHash(sha256Hex(SECRET))],
  ['evictId', (c) => c.evictId(REC.id)],
  ['clear', (c) => c.clear()],
];

for (const [name, revoke] of revocations) {
  t.test(`${name} while the lookup is in flight: the pre-revocation answer is not cached, the key is looked up again`, async (t) => {
    const src = handSource();
    const cache = new KeyCache(new Map(), src);
    const p = cache.authenticate(SECRET);
    t.ok(p instanceof Promise, 'not cached yet: a lookup starts');
    const first = await src.next();
    t.ok(first, 'the lookup reached the source');
    revoke(cache); // the revocation lands while the store's answer is on its way
    first!.resolve(REC); // read before the revocation: still live
    const again = await src.next();
    t.ok(again, 'looked up again after the revocation');
    again?.resolve({ ...REC, revokedAt: Date.now() });
    t.same(await p, { error: 'invalid' }, 'the answer reflects the revocation');
    const later = await cache.authenticate(SECRET);
    t.same(later, { error: 'invalid' }, 'the revoked key is not served from the cache');
    t.equal(src.lookups, 2);
  });
}

t.test('every request that joined a raced lookup gets the answer after the revocation', async (t) => {
  const src = handSource();
  const cache = new KeyCache(new Map(), src);
  const p1 = cache.authenticate(SECRET);
  const first = await src.next();
  cache.evictHash(sha256Hex(SECRET));
  const p2 = cache.authenticate(SECRET); // arrives after the revocation, joins the lookup in flight
  first!.resolve(REC);
  (await src.next())?.resolve({ ...REC, revokedAt: Date.now() });
  t.same(await p1, { error: 'invalid' });
  t.same(await p2, { error: 'invalid' });
  t.equal(src.lookups, 2);
});

t.test('a revocation during the second lookup too: that answer is given once, not cached', async (t) => {
  const src = handSource();
  const cache = new KeyCache(new Map(), src);
  const p = cache.authenticate(SECRET);
  const first = await src.next();
  cache.evictHash(sha256Hex(SECRET));
  first!.resolve(REC);
  const second = await src.next();
  cache.evictHash(sha256Hex(SECRET));
  second!.resolve(REC);
  t.ok('key' in (await p));
  t.ok(cache.authenticate(SECRET) instanceof Promise, 'not cached: the next request asks the store');
  (await src.next())?.resolve({ ...REC, revokedAt: Date.now() });
  t.equal(src.lookups, 3);
});

t.test('a revocation of another key does not stop a lookup from being cached', async (t) => {
  const src = handSource();
  const cache = new KeyCache(new Map(), src);
  const p = cache.authenticate(SECRET);
  const first = await src.next();
  cache.evictHash(sha256Hex('sk-someone-else'));
  cache.evictId('key-2');
  first!.resolve(REC);
  t.same(await p, { key: REC });
  t.same(cache.authenticate(SECRET), { key: REC }, 'cached: answered synchronously');
  t.equal(src.lookups, 1);
});

t.test('store down after a revocation in flight: the stale entry is not used to keep the revoked key working', async (t) => {
  const src = handSource();
  const cache = new KeyCache(new Map(), src);
  const p0 = cache.authenticate(SECRET);
  (await src.next())!.resolve(REC);
  t.same(await p0, { key: REC });
  // Past the TTL: the entry is stale, the key is looked up again.
  const p = cache.authenticate(SECRET, Date.now() + 120_000);
  const l = await src.next();
  cache.evictHash(sha256Hex(SECRET));
  l!.reject(new Error('store unreachable'));
  t.same(await p, { error: 'unavailable' }, 'not the stale (revoked) key');
  const q = cache.authenticate(SECRET);
  t.ok(q instanceof Promise, 'the revoked key was not cached');
  (await src.next())?.reject(new Error('store unreachable'));
  t.same(await q, { error: 'unavailable' });
});

t.test('store down, no revocation: a stale key keeps working (unchanged)', async (t) => {
  const src = handSource();
  const cache = new KeyCache(new Map(), src);
  const p0 = cache.authenticate(SECRET);
  (await src.next())!.resolve(REC);
  await p0;
  const p = cache.authenticate(SECRET, Date.now() + 120_000);
  (await src.next())!.reject(new Error('store unreachable'));
  t.same(await p, { key: REC });
});

t.test('SqliteKeyStore: a key revoked while its lookup is in flight is not cached', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-keycache-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = new SqliteKeyStore(join(dir, 'keys.db'));
  t.teardown(() => store.close());
  const { key, secret } = await store.createKey({ name: 'race' });
  // The store is real; only the moment its answer arrives is held back, so
  // the revocation lands between the read and the answer.
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let reads = 0;
  let firstRead!: () => void;
  const read = new Promise<void>((r) => (firstRead = r));
  const src: KeySource = {
    async lookup(hash) {
      const rec = await store.lookup(hash);
      if (reads++ === 0) {
        firstRead();
        await held;
      }
      return rec;
    },
  };
  const cache = new KeyCache(new Map(), src);
  const p = cache.authenticate(secret);
  await read;
  const revoked = await store.revokeKey(key.id);
  cache.evictHash(revoked!.sha256); // what the admin API and the revocation listener do
  release();
  t.same(await p, { error: 'invalid' });
  t.same(await cache.authenticate(secret), { error: 'invalid' }, 'not served from the cache as live');
  t.equal(reads, 2);
});

/** A store that knows one key; `down` makes every lookup reject. */
function oneKeySource(secret: string): KeySource & { lookups: number; down: boolean } {
  const hash = sha256Hex(secret);
  const src = {
    lookups: 0,
    down: false,
    async lookup(h: string): Promise<KeyRecord | null> {
      src.lookups++;
      if (src.down) throw new Error('store unreachable');
      return h === hash ? REC : null;
    },
  };
  return src;
}

for (const [label, opts, flood] of [
  ['small bounds', { maxEntries: 1_000, ttlMs: 60_000, negativeTtlMs: 2_000, negativeMaxEntries: 100 }, 1_500],
  ['default bounds', undefined, 110_001],
] as const) {
  t.test(`${label}: a flood of bad secrets does not evict a valid key`, async (t) => {
    const src = oneKeySource('sk-valid');
    const cache = new KeyCache(new Map(), src, opts);
    t.same(await cache.authenticate('sk-valid'), { key: REC });
    for (let i = 0; i < flood; i++) {
      const r = await cache.authenticate(`sk-bad-${i}`);
      if ('key' in r) throw new Error('a bad secret was accepted');
    }
    src.down = true;
    const lookups = src.lookups;
    t.same(cache.authenticate('sk-valid'), { key: REC }, 'served from the cache (synchronously) with the store down');
    t.equal(src.lookups, lookups, 'no lookup');
    t.same(cache.authenticate(`sk-bad-${flood - 1}`), { error: 'invalid' }, 'the newest bad secret is still cached as bad');
    t.same(await cache.authenticate('sk-bad-0'), { error: 'unavailable' }, 'the oldest bad secret was evicted from the negative cache (bounded)');
  });
}
