import t from 'tap';
import { KeyCache } from '../../gateway/auth/key-cache.js';
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
