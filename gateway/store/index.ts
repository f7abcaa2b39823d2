export * from './types.js';
export { SqliteKeyStore, MIGRATIONS, type SqliteStoreOptions } from './sqlite.js';
export { RedisKeyStore, REVOCATION_CHANNEL, type RedisStoreOptions } from './redis.js';
