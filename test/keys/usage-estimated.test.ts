// `sluice keys usage` shows, per key and model, how many requests had estimated tokens; on a
// store file made before that column existed too.
import t from 'tap';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteKeyStore, RedisKeyStore } from '../../gateway/store/index.js';
import { runCli } from '../helpers/sink.js';
import { startRedis } from '../helpers/redis.js';

t.test('sqlite store', async (t) => {
  const p = join(t.testdir({}), 'u.db');
  const s = new SqliteKeyStore(p);
  await s.addUsage([
    { keyId: 'ka', model: 'm', requests: 3, promptTokens: 30, completionTokens: 9, estimatedRequests: 2 },
    { keyId: 'kb', model: 'm', requests: 1, promptTokens: 1, completionTokens: 1 },
  ]);
  await s.close();
  const out = await runCli(['keys', 'usage', '--store', p]);
  t.equal(out.code, 0, out.stderr);
  t.same(JSON.parse(out.stdout), [
    { keyId: 'ka', model: 'm', requests: 3, promptTokens: 30, completionTokens: 9, estimatedRequests: 2 },
    { keyId: 'kb', model: 'm', requests: 1, promptTokens: 1, completionTokens: 1, estimatedRequests: 0 },
  ]);
});

t.test('an old sqlite file (schema version 2) is migrated and shows 0 estimated', async (t) => {
  const p = join(t.testdir({}), 'old.db');
  copyFileSync(new URL('../store/fixtures/sluice-v2.db', import.meta.url), p);
  const out = await runCli(['keys', 'usage', '--store', p, '--key', 'key_old2']);
  t.equal(out.code, 0, out.stderr);
  t.same(JSON.parse(out.stdout), [{ keyId: 'key_old2', model: 'm', requests: 7, promptTokens: 70, completionTokens: 35, estimatedRequests: 0 }]);
});

t.test('redis store', async (t) => {
  const redis = await startRedis(t);
  const s = new RedisKeyStore(redis.url);
  t.teardown(() => s.close());
  await s.addUsage([{ keyId: 'kr', model: 'gpt|4', requests: 4, promptTokens: 8, completionTokens: 12, estimatedRequests: 1 }]);
  const out = await runCli(['keys', 'usage', '--store', redis.url, '--key', 'kr']);
  t.equal(out.code, 0, out.stderr);
  t.same(JSON.parse(out.stdout), [{ keyId: 'kr', model: 'gpt|4', requests: 4, promptTokens: 8, completionTokens: 12, estimatedRequests: 1 }]);
});
