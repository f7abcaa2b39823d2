// Revocations published while an instance's subscriber connection is away are caught up from
// the revocation log when it is back; when the store cannot tell what it missed, onResync.
import t, { type Test } from 'tap';
import { Redis } from 'ioredis';
import { once } from 'node:events';
import { RedisKeyStore, type RedisStoreOptions } from '../../gateway/store/index.js';
import { startRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/gateway.js';

const redis = await startRedis(t);
const admin = new Redis(redis.url);
t.teardown(() => admin.disconnect());

function open(t: Test, opts: RedisStoreOptions = {}): RedisKeyStore {
  // A short reconnect backoff: the subscriber is back soon after it is let in again.
  const s = new RedisKeyStore(redis.url, { maxBackoffMs: 100, ...opts });
  t.teardown(() => s.close());
  return s;
}

/**
 * Kills every subscriber connection and, in the same transaction, lets no new connection in
 * (maxclients at what is left), so that what follows happens while they are away, whatever the
 * scheduling. Resolves once the given stores have seen their subscriber connection close;
 * returns the function that lets them back in.
 */
async function killSubscribers(t: Test, ...stores: RedisKeyStore[]): Promise<() => Promise<void>> {
  const pubsub = String(await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub'))
    .split('\n')
    .filter((l) => l.trim() !== '').length;
  const connected = Number(/connected_clients:(\d+)/.exec(await admin.info('clients'))![1]);
  const closed = stores.map((s) => once(s.sub, 'close'));
  const res = await admin
    .multi()
    .config('SET', 'maxclients', String(connected - pubsub))
    .call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    .exec();
  for (const [err] of res!) if (err) throw err;
  t.equal(Number(res![1]![1]), pubsub, `${pubsub} subscriber connections killed`);
  await Promise.all(closed);
  return async () => {
    await admin.config('SET', 'maxclients', '10000');
  };
}

t.test('a revocation published while the subscriber is away is delivered once it is back', async (t) => {
  const a = open(t);
  const b = open(t);
  await Promise.all([a.ready(), b.ready()]);
  const seen: string[] = [];
  a.onRevoked((ev) => seen.push(ev.id));
  const { key: before } = await b.createKey({ name: 'before' });
  const { key } = await b.createKey({ name: 'revoked-while-away' });
  // Live: delivered by pub/sub.
  await b.revokeKey(before.id);
  t.ok(await waitFor(() => seen.includes(before.id)), 'a revocation reaches the other instance while connected');

  const letIn = await killSubscribers(t, a);
  t.not(a.sub.status, 'ready', "a's subscriber is down");
  await b.revokeKey(key.id);
  t.notOk(seen.includes(key.id), 'not delivered while away');
  await letIn();
  t.ok(await waitFor(() => a.sub.status === 'ready', 5000), "a's subscriber reconnected");
  t.ok(await waitFor(() => seen.includes(key.id), 2000), 'the missed revocation is delivered after the reconnect');
  t.equal(seen.filter((id) => id === key.id).length, 1, 'once');

  // Still live afterwards (the catch-up left the subscription in order).
  const { key: after } = await b.createKey({ name: 'after' });
  await b.revokeKey(after.id);
  t.ok(await waitFor(() => seen.includes(after.id)), 'live delivery after the catch-up');
});

t.test('the log no longer reaches back to the last revocation seen: onResync', async (t) => {
  // b trims the log to 2 entries: 4 revocations while a is away push its last seq out.
  const a = open(t);
  const b = open(t, { revocationLogSize: 2 });
  await Promise.all([a.ready(), b.ready()]);
  const seen: string[] = [];
  let resyncs = 0;
  a.onRevoked((ev) => seen.push(ev.id));
  a.onResync(() => resyncs++);
  const keys: { id: string }[] = [];
  for (let i = 0; i < 4; i++) keys.push((await b.createKey({ name: `trim-${i}` })).key);
  const letIn = await killSubscribers(t, a);
  for (const k of keys) await b.revokeKey(k.id);
  t.equal(await admin.zcard('sluice:revoked'), 2, 'the log holds 2');
  await letIn();
  t.ok(await waitFor(() => resyncs > 0, 5000), 'onResync called');
  t.equal(resyncs, 1, 'once');
  t.ok(await waitFor(() => seen.includes(keys[3]!.id) && seen.includes(keys[2]!.id)), 'what the log still holds is delivered');
});

t.test('a close that does not lose anything: no resync', async (t) => {
  const a = open(t);
  const b = open(t);
  await Promise.all([a.ready(), b.ready()]);
  let resyncs = 0;
  a.onResync(() => resyncs++);
  const seen: string[] = [];
  a.onRevoked((ev) => seen.push(ev.id));
  const { key } = await b.createKey({ name: 'plain-reconnect' });
  const letIn = await killSubscribers(t, a);
  await letIn();
  t.ok(await waitFor(() => a.sub.status === 'ready', 5000), 'reconnected');
  await b.revokeKey(key.id);
  t.ok(await waitFor(() => seen.includes(key.id)), 'delivered');
  t.equal(resyncs, 0, 'no resync after a reconnect that missed nothing');
});

t.test('the catch-up read keeps failing: onResync, and the revocation once it succeeds', async (t) => {
  const a = open(t);
  const b = open(t);
  await Promise.all([a.ready(), b.ready()]);
  let resyncs = 0;
  const seen: string[] = [];
  a.onResync(() => resyncs++);
  a.onRevoked((ev) => seen.push(ev.id));
  const { key } = await b.createKey({ name: 'unreadable-log' });
  const letIn = await killSubscribers(t, a);
  await b.revokeKey(key.id);
  // The read of the log fails (a value of the wrong type) until it is put right.
  const trimmed = await admin.get('sluice:revocations:trimmed');
  await admin.del('sluice:revocations:trimmed');
  await admin.hset('sluice:revocations:trimmed', 'not', 'a number');
  await letIn();
  t.ok(await waitFor(() => resyncs > 0, 10_000), 'onResync after repeated failures');
  t.notOk(seen.includes(key.id), 'not delivered while the log cannot be read');
  await admin.del('sluice:revocations:trimmed');
  if (trimmed !== null) await admin.set('sluice:revocations:trimmed', trimmed);
  t.ok(await waitFor(() => seen.includes(key.id), 5000), 'delivered once the read succeeds');
  t.equal(resyncs, 1, 'one resync for the episode');
});

// Last: it restarts the server (no persistence: the data, the log and its epoch are gone).
t.test('Redis lost its data while the subscriber was away: onResync', async (t) => {
  const a = open(t);
  await a.ready();
  let resyncs = 0;
  a.onResync(() => resyncs++);
  await a.createKey({ name: 'gone' });
  await redis.restart();
  t.ok(await waitFor(() => resyncs > 0, 10_000), 'onResync after the restart');
});
