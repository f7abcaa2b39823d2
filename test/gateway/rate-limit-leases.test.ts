// A worker holds at most one rate-limit lease in flight per key and kind:
// concurrent requests wait for it and share its grant, so a worker never
// holds back more than about one batch (1% of the limit) from the others.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { KeyRecord } from '../../gateway/auth/types.js';
import { RateLimiter } from '../../gateway/limits/rate-limiter.js';
import { RedisKeyStore, SqliteKeyStore, type KeyStore } from '../../gateway/store/index.js';
import { startRedis } from '../helpers/redis.js';

const redis = await startRedis(t);

/** Each entry makes a fresh backend for a test and returns an opener of store objects on it (closed in teardown). */
const backends: Array<[string, (t: Test) => () => KeyStore]> = [
  [
    'sqlite',
    (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'sluice-leases-'));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      return () => {
        const s = new SqliteKeyStore(join(dir, 'keys.db'));
        t.teardown(() => s.close());
        return s;
      };
    },
  ],
  [
    'redis',
    (t) => () => {
      const s = new RedisKeyStore(redis.url);
      t.teardown(() => s.close());
      return s;
    },
  ],
];

let keySeq = 0;
function key(limits: { rpm?: number; tpm?: number }): KeyRecord {
  return { id: `lease-key-${process.pid}-${++keySeq}`, name: 'k', models: ['*'], ...limits };
}

/** One `now` for every call, so that all of them fall into the same window. */
function admitAll(limiter: RateLimiter, k: KeyRecord, n: number, now: number) {
  return Promise.all(Array.from({ length: n }, () => limiter.admit(k, now)));
}

for (const [kind, backend] of backends) {
  t.test(`${kind}: 100 concurrent requests, rpm 10,000: one worker leases about one batch, not the whole budget`, async (t) => {
    const store = backend(t)();
    await store.ready(5000);
    const limiter = new RateLimiter(store);
    const k = key({ rpm: 10_000 });
    const now = Date.now();
    const window = Math.floor(now / 60_000);
    const verdicts = await admitAll(limiter, k, 100, now);
    t.equal(verdicts.filter((v) => v === null).length, 100, 'all admitted');
    const used = await store.windowUsed(k.id, 'req', window);
    t.ok(used >= 100 && used <= 200, `the window shows at most two batches of 100 leased (${used})`);
  });

  t.test(`${kind}: 100 concurrent requests, tpm 10,000: the same for the token budget`, async (t) => {
    const store = backend(t)();
    await store.ready(5000);
    const limiter = new RateLimiter(store);
    const k = key({ tpm: 10_000 });
    const now = Date.now();
    const verdicts = await admitAll(limiter, k, 100, now);
    t.equal(verdicts.filter((v) => v === null).length, 100);
    const used = await store.windowUsed(k.id, 'tok', Math.floor(now / 60_000));
    t.ok(used >= 100 && used <= 200, `at most two batches leased (${used})`);
  });

  t.test(`${kind}: rpm 5, 20 concurrent requests: exactly 5 admitted, the rest limited`, async (t) => {
    const store = backend(t)();
    await store.ready(5000);
    const limiter = new RateLimiter(store);
    const k = key({ rpm: 5 });
    const now = Date.now();
    const verdicts = await admitAll(limiter, k, 20, now);
    t.equal(verdicts.filter((v) => v === null).length, 5, '5 admitted');
    t.equal(verdicts.filter((v) => v !== null && v.kind === 'requests' && v.limit === 5).length, 15, '15 refused as over the request limit');
    t.equal(await store.windowUsed(k.id, 'req', Math.floor(now / 60_000)), 5);
    const after = limiter.admit(k, now);
    t.notOk(after instanceof Promise, 'once exhausted, refused without asking the store');
    t.equal((after as { kind: string } | null)?.kind, 'requests');
  });

  t.test(`${kind}: a grant used up by earlier waiters: the next waiter leases the next batch`, async (t) => {
    const store = backend(t)();
    await store.ready(5000);
    const limiter = new RateLimiter(store);
    const k = key({ rpm: 250 }); // batch of 2: 20 requests need 10 leases, one after the other
    const now = Date.now();
    const verdicts = await admitAll(limiter, k, 20, now);
    t.equal(verdicts.filter((v) => v === null).length, 20, 'all admitted');
    t.equal(await store.windowUsed(k.id, 'req', Math.floor(now / 60_000)), 20, 'leased exactly what was spent');
  });

  t.test(`${kind}: two workers, 100 concurrent requests each: each holds back about one batch`, async (t) => {
    const open = backend(t);
    const a = open();
    const b = open();
    await Promise.all([a.ready(5000), b.ready(5000)]);
    const k = key({ rpm: 10_000 });
    const now = Date.now();
    const [va, vb] = await Promise.all([admitAll(new RateLimiter(a), k, 100, now), admitAll(new RateLimiter(b), k, 100, now)]);
    t.equal([...va, ...vb].filter((v) => v === null).length, 200);
    const used = await a.windowUsed(k.id, 'req', Math.floor(now / 60_000));
    t.ok(used >= 200 && used <= 400, `at most two batches per worker (${used})`);
  });
}

t.test('store unreachable: every concurrent request is admitted (fail open), as before', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-leases-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = new SqliteKeyStore(join(dir, 'keys.db'));
  await store.close(); // every lease now rejects
  const errors: unknown[] = [];
  const limiter = new RateLimiter(store, (err) => errors.push(err));
  const k = key({ rpm: 10, tpm: 10 });
  const verdicts = await admitAll(limiter, k, 20, Date.now());
  t.equal(verdicts.filter((v) => v === null).length, 20, 'all admitted');
  t.ok(errors.length >= 1, 'the store error is reported');
});
