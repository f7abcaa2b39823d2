// UsageAccumulator.stop(): waits for a flush in flight, retries a final flush that fails, and
// logs what it could not write (per key and model) rather than drop it. Also its retry path
// over SQLite, which fails by rolling back.
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { RedisKeyStore, SqliteKeyStore, type KeyStore } from '../../gateway/store/index.js';
import { UsageAccumulator } from '../../gateway/usage/accumulator.js';
import { startRedis } from '../helpers/redis.js';

interface Logged {
  msg: string;
  fields: Record<string, unknown>;
}

/** The real store, with its addUsage calls counted. */
function counting(store: KeyStore): { store: KeyStore; calls: () => number } {
  let n = 0;
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'addUsage')
        return (...a: Parameters<KeyStore['addUsage']>) => {
          n++;
          return target.addUsage(...a);
        };
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { store: proxy, calls: () => n };
}

function openRedis(t: Test, url: string, opts: ConstructorParameters<typeof RedisKeyStore>[1] = {}): RedisKeyStore {
  const s = new RedisKeyStore(url, opts);
  t.teardown(() => s.close());
  return s;
}

t.test('stop() waits for a flush in flight', async (t) => {
  const redis = await startRedis(t);
  const admin = new Redis(redis.url);
  t.teardown(() => admin.disconnect());
  const store = openRedis(t, redis.url);
  await store.ready();
  const logged: Logged[] = [];
  const acc = new UsageAccumulator(store, { onError: (msg, fields) => logged.push({ msg, fields }) });
  acc.add('k-inflight', 'm', 10, 20);
  acc.add('k-inflight', 'm', 1, 2, true);
  // Writes (scripts) wait while clients are paused; reads go on.
  await admin.call('CLIENT', 'PAUSE', '600', 'WRITE');
  const inFlight = acc.flush();
  await acc.stop();
  // Read on another connection: the store's own would queue the read behind its paused write.
  t.same(
    await admin.hgetall('sluice:usage:k-inflight'),
    { 'm|requests': '2', 'm|prompt_tokens': '11', 'm|completion_tokens': '22', 'm|estimated_requests': '1' },
    'the write in flight had finished when stop() returned',
  );
  await inFlight;
  t.same(logged, [], 'nothing logged');
});

t.test('stop() against a dead Redis: retried, then the amounts are logged per key and model', async (t) => {
  const redis = await startRedis(t);
  const real = openRedis(t, redis.url);
  await real.ready();
  const { store, calls } = counting(real);
  const logged: Logged[] = [];
  const acc = new UsageAccumulator(store, { onError: (msg, fields) => logged.push({ msg, fields }) });
  await redis.stop();
  acc.add('k1', 'm1', 5, 7);
  acc.add('k1', 'm1', 1, 1, true);
  acc.add('k1', 'm2', 100, 0);
  acc.add('k2', 'm1', 3, 4);
  await acc.stop();
  t.equal(calls(), 4, 'four attempts');
  const lost = logged.filter((l) => l.msg === 'usage not written to the store at shutdown');
  t.equal(lost.length, 1, 'one line for what was not written');
  t.match(lost[0]!.fields, { applied: 'no' }, 'never reached Redis');
  t.same(
    lost[0]!.fields.usage,
    [
      { keyId: 'k1', model: 'm1', requests: 2, promptTokens: 6, completionTokens: 8, estimatedRequests: 1 },
      { keyId: 'k1', model: 'm2', requests: 1, promptTokens: 100, completionTokens: 0, estimatedRequests: 0 },
      { keyId: 'k2', model: 'm1', requests: 1, promptTokens: 3, completionTokens: 4, estimatedRequests: 0 },
    ],
    'the amounts, per key and model',
  );
  t.ok(
    logged.some((l) => l.msg.startsWith('usage flush failed')),
    'the failure itself is logged too',
  );
});

t.test('stop() against a stalled Redis: given up after stopTimeoutMs, logged as unconfirmed', async (t) => {
  const redis = await startRedis(t);
  const admin = new Redis(redis.url);
  t.teardown(() => admin.disconnect());
  const pid = Number(/process_id:(\d+)/.exec(await admin.info('server'))![1]);
  const store = openRedis(t, redis.url, { commandTimeoutMs: 400 });
  await store.ready();
  const logged: Logged[] = [];
  const acc = new UsageAccumulator(store, { onError: (msg, fields) => logged.push({ msg, fields }), stopTimeoutMs: 1500 });
  acc.add('k-stall', 'm', 9, 9);
  process.kill(pid, 'SIGSTOP');
  t.teardown(() => {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      /* already gone */
    }
  });
  await acc.stop();
  const lost = logged.filter((l) => l.msg === 'usage not written to the store at shutdown');
  t.equal(lost.length, 1);
  t.match(lost[0]!.fields, { applied: 'unknown', usage: [{ keyId: 'k-stall', model: 'm', requests: 1, promptTokens: 9, completionTokens: 9 }] });
});

t.test('sqlite: a flush that fails (file locked) is kept, takes in what came meanwhile, and is written once', async (t) => {
  const p = join(t.testdir({}), 'locked.db');
  const store = new SqliteKeyStore(p, { busyTimeoutMs: 20 });
  t.teardown(() => store.close());
  const logged: Logged[] = [];
  const acc = new UsageAccumulator(store, { onError: (msg, fields) => logged.push({ msg, fields }) });
  const lock = new Database(p);
  t.teardown(() => lock.close());
  lock.exec('BEGIN IMMEDIATE');
  acc.add('k', 'm', 1, 2, true);
  await acc.flush();
  acc.add('k', 'm', 10, 20);
  acc.add('k', 'm2', 5, 5);
  await acc.flush();
  t.same(await store.usage('k'), [], 'nothing written while locked');
  t.equal(logged.filter((l) => l.msg.startsWith('usage flush failed')).length, 1, 'the failure logged once');
  lock.exec('COMMIT');
  await acc.flush();
  await acc.flush();
  t.same(await store.usage('k'), [
    { keyId: 'k', model: 'm', requests: 2, promptTokens: 11, completionTokens: 22, estimatedRequests: 1 },
    { keyId: 'k', model: 'm2', requests: 1, promptTokens: 5, completionTokens: 5, estimatedRequests: 0 },
  ]);
  await acc.stop();
  t.equal(logged.length, 1, 'nothing else logged');
});
