// Redis stalls (SIGSTOP, then SIGCONT): commands time out on the client and run later in Redis.
// Usage, leases and charges must still count exactly once.
import t, { type Test } from 'tap';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { RedisKeyStore, type RedisStoreOptions } from '../../gateway/store/index.js';
import { UsageAccumulator } from '../../gateway/usage/accumulator.js';
import { startRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/gateway.js';

const redis = await startRedis(t);
const admin = new Redis(redis.url);
t.teardown(() => admin.disconnect());
const pid = Number(/process_id:(\d+)/.exec(await admin.info('server'))![1]);

/** Stops redis-server (SIGSTOP) until the returned function resumes it; resumed at teardown in any case. */
function stall(t: Test): () => void {
  process.kill(pid, 'SIGSTOP');
  let stopped = true;
  const resume = () => {
    if (stopped) process.kill(pid, 'SIGCONT');
    stopped = false;
  };
  t.teardown(resume);
  return resume;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Charges the store still has to retry. */
const chargesPending = (s: RedisKeyStore): number => (s as unknown as { pendingCharges?: unknown[] }).pendingCharges?.length ?? 0;

function open(t: Test, opts: RedisStoreOptions = {}): RedisKeyStore {
  const s = new RedisKeyStore(redis.url, opts);
  t.teardown(() => s.close());
  return s;
}

t.test('usage: a 5 s stall under a steady stream of add()s is counted exactly once', async (t) => {
  // The gateway's settings: 2 s command timeout; flushes more often than its 1 s, for more of them in the stall.
  const store = open(t);
  await store.ready();
  const acc = new UsageAccumulator(store);
  acc.start(200);
  const key = 'stall-' + Math.random().toString(36).slice(2);
  const models = ['m1', 'm2', 'm3'];
  const want = new Map(models.map((m) => [m, { requests: 0, promptTokens: 0, completionTokens: 0, estimatedRequests: 0 }]));
  let i = 0;
  const adder = setInterval(() => {
    for (let j = 0; j < 5; j++) {
      const m = models[i % 3]!;
      const p = 1 + (i % 17);
      const c = 1 + (i % 29);
      const est = i % 7 === 0;
      acc.add(key, m, p, c, est);
      const w = want.get(m)!;
      w.requests++;
      w.promptTokens += p;
      w.completionTokens += c;
      if (est) w.estimatedRequests++;
      i++;
    }
  }, 2);
  t.teardown(() => clearInterval(adder));

  await sleep(1000);
  const resume = stall(t);
  await sleep(5000);
  resume();
  await sleep(1500);
  clearInterval(adder);
  await acc.stop();

  const rows = await store.usage(key);
  t.same(
    rows,
    models.map((m) => ({ keyId: key, model: m, ...want.get(m)! })),
    `Redis totals equal what was added (${i} adds)`,
  );
});

t.test('lease: a lease that timed out but ran later is refunded by the next lease on the window', async (t) => {
  const s = open(t, { commandTimeoutMs: 300 });
  await s.ready();
  const key = 'lease-' + Math.random().toString(36).slice(2);
  const w = 4242;
  let granted = await s.lease(key, 'req', w, 3, 100);
  t.equal(granted, 3);
  const resume = stall(t);
  await t.rejects(s.lease(key, 'req', w, 5, 100), 'times out while Redis is stopped');
  resume();
  // The timed-out lease runs in Redis now, before anything sent after it on the connection.
  granted += await s.lease(key, 'req', w, 2, 100);
  t.equal(granted, 5, 'the callers got 3 + 2');
  t.equal(await s.windowUsed(key, 'req', w), granted, 'the window counts only what callers got: nothing taken for the lost reply');
  t.equal(await s.lease(key, 'req', w, 200, 100), 95, 'the rest of the budget is still there');
});

t.test('lease: a lost lease that has not run when the next one settles it takes nothing when it does', async (t) => {
  const s = open(t);
  await s.ready();
  const key = 'void-' + Math.random().toString(36).slice(2);
  const w = 77;
  const counter = `sluice:rl:${key}:req:${w}`;
  const log = `sluice:rlog:${key}:req:${w}`;
  // As if a lease 'late-1' had timed out without reaching Redis yet (e.g. stuck on an old connection).
  (s as unknown as { rememberLost(c: string, w: number, id: string): void }).rememberLost(counter, w, 'late-1');
  t.equal(await s.lease(key, 'req', w, 4, 10), 4);
  // Now it arrives.
  const late = (s.redis as unknown as { sluiceLease(...a: (string | number)[]): Promise<number> }).sluiceLease(counter, log, 6, 10, 120, 'late-1');
  t.equal(Number(await late), 0, 'the voided lease grants nothing');
  t.equal(await s.windowUsed(key, 'req', w), 4, 'and takes nothing');
  t.equal(await s.lease(key, 'req', w, 10, 10), 6, 'the budget is intact');
});

t.test('charge: a charge that could not be sent is applied once Redis is back', async (t) => {
  const s = open(t);
  await s.ready();
  const key = 'charge-down-' + Math.random().toString(36).slice(2);
  const id = Number(await s.redis.client('ID'));
  const closed = once(s.redis, 'close');
  await admin.client('KILL', 'ID', String(id));
  await closed;
  await t.rejects(s.charge(key, 'tok', 9, 40), 'rejects while the connection is down');
  t.ok(await waitFor(async () => (await admin.get(`sluice:rl:${key}:tok:9`)) === '40', 5000), 'applied after the reconnect');
  t.ok(await waitFor(() => chargesPending(s) === 0), 'nothing left to retry');
  t.equal(await s.windowUsed(key, 'tok', 9), 40, 'once');
});

t.test('charge: a charge that timed out and ran later is not applied again by its retry', async (t) => {
  const s = open(t, { commandTimeoutMs: 300 });
  await s.ready();
  const key = 'charge-stall-' + Math.random().toString(36).slice(2);
  const resume = stall(t);
  await t.rejects(s.charge(key, 'tok', 9, 25), 'times out while Redis is stopped');
  resume();
  t.ok(await waitFor(() => chargesPending(s) === 0, 5000), 'the retry went through');
  t.equal(await s.windowUsed(key, 'tok', 9), 25, 'applied once');
  await s.charge(key, 'tok', 9, -5);
  t.equal(await s.windowUsed(key, 'tok', 9), 20, 'a refund still applies');
});
