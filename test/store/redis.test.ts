import t from 'tap';
import { Redis } from 'ioredis';
import { openStore, RedisKeyStore } from '../../gateway/store/index.js';
import { startRedis } from '../helpers/redis.js';
import { runSuite } from './suite.js';
import { waitFor } from '../helpers/gateway.js';

const redis = await startRedis(t);

async function dumpRedis(url: string): Promise<Buffer> {
  const c = new Redis(url, { lazyConnect: true });
  await c.connect();
  try {
    const parts: string[] = [];
    for (const k of await c.keys('*')) {
      parts.push(k);
      const type = await c.type(k);
      if (type === 'string') parts.push((await c.get(k)) ?? '');
      else if (type === 'hash') parts.push(JSON.stringify(await c.hgetall(k)));
      else if (type === 'set') parts.push(...(await c.smembers(k)));
      else parts.push(`<${type}>`);
    }
    return Buffer.from(parts.join('\n'));
  } finally {
    c.disconnect();
  }
}

runSuite(t, {
  cfg: { kind: 'redis', url: redis.url },
  open: () => openStore({ kind: 'redis', url: redis.url }),
  dump: () => dumpRedis(redis.url),
  crossInstanceRevocations: true,
});

t.test('redis: window keys expire', async (t) => {
  const s = new RedisKeyStore(redis.url);
  t.teardown(() => s.close());
  await s.ready();
  await s.lease('ttl', 'req', 1, 1, 10);
  await s.charge('ttl', 'tok', 1, 5);
  const ttl1 = await s.redis.ttl('sluice:rl:ttl:req:1');
  const ttl2 = await s.redis.ttl('sluice:rl:ttl:tok:1');
  t.ok(ttl1 > 60 && ttl1 <= 120, `lease window ttl ${ttl1}`);
  t.ok(ttl2 > 60 && ttl2 <= 120, `charge window ttl ${ttl2}`);
});

t.test('redis: ready(timeout) rejects when nothing listens', async (t) => {
  const s = openStore({ kind: 'redis', url: 'redis://127.0.0.1:1' }, { connectTimeoutMs: 300 });
  t.teardown(() => s.close());
  const t0 = Date.now();
  await t.rejects(s.ready(300));
  // Before the first connection, commands wait up to the connect timeout, then reject.
  await t.rejects(s.lookup('00'), 'lookup rejects while unreachable');
  t.ok(Date.now() - t0 < 1500, `rejected in ${Date.now() - t0} ms`);
});

// Last: it kills and restarts the shared server.
t.test('redis killed: lookup rejects quickly; restarted: works again without reopening', async (t) => {
  const s = openStore({ kind: 'redis', url: redis.url });
  const other = openStore({ kind: 'redis', url: redis.url });
  t.teardown(() => Promise.all([s.close(), other.close()]));
  await Promise.all([s.ready(), other.ready()]);
  const { key } = await s.createKey({ name: 'survivor' });
  t.equal((await s.lookup(key.sha256))?.id, key.id);

  await redis.stop();
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    await t.rejects(s.lookup(key.sha256), `lookup #${i} rejects while redis is down`);
    t.ok(Date.now() - t0 < 2500, `rejected in ${Date.now() - t0} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await t.rejects(s.lease('x', 'req', 1, 1, 10), 'lease rejects too');

  await redis.restart();
  t.ok(
    await waitFor(async () => {
      try {
        await s.lookup(key.sha256);
        return true;
      } catch {
        return false;
      }
    }, 8000),
    'lookup resolves again after the restart',
  );
  // The restarted server has no persistence: the key is gone, new ones work.
  t.equal(await s.lookup(key.sha256), null);
  const { key: k2 } = await s.createKey({ name: 'after' });
  t.equal((await s.lookup(k2.sha256))?.id, k2.id);

  // Pub/sub resubscribed: revocations reach the other instance again.
  const seen: string[] = [];
  other.onRevoked((ev) => seen.push(ev.id));
  await other.ready(5000);
  let delivered = false;
  for (let i = 0; i < 20 && !delivered; i++) {
    await s.revokeKey(k2.id);
    delivered = await waitFor(() => seen.includes(k2.id), 250);
  }
  t.ok(delivered, 'revocation delivered to another instance after the restart');
});
