// Public surface of the stores: contracts plus the embedded implementations.
export * from "./types.ts";
export { openSqliteHistory } from "./sqlite-history.ts";
export { createMemoryHotCache } from "./memory-hot-cache.ts";
export { createReadCache, type ReadCache } from "./read-cache.ts";
export { createCircuitBreaker, type CircuitBreaker, type BreakerState } from "./circuit-breaker.ts";
export { createRedisHotCache, type RedisHotCache, type RedisHotCacheOptions } from "./redis-hot-cache.ts";
export { openCassandraHistory, migrateCassandra, CassandraStoreError } from "./cassandra-history.ts";
