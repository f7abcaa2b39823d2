export * from './types.js';
export { SqliteKeyStore, MIGRATIONS, type SqliteStoreOptions } from './sqlite.js';
export { RedisKeyStore, REVOCATION_CHANNEL, type RedisStoreOptions } from './redis.js';
export { NotAppliedError, USAGE_BATCH_TTL_S, USAGE_BATCH_MAX_AGE_MS } from './common.js';
