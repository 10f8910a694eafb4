// Cassandra schema for the distributed HistoryStore: keyspace and tables (idempotent DDL), time buckets,
// per-resolution TTLs and the typed error. Every per-Kafka-partition table has partition key (partition).

import cassandra from "cassandra-driver";
import type { Resolution } from "./types.ts";

export type CassandraStoreErrorCode =
  | "store_unavailable" // no host answered, timed out or was overloaded: the same call may succeed later
  | "store_rejected" // Cassandra refused the statement for good (invalid, unauthorized, too large)
  | "not_migrated"; // the keyspace or its tables are missing: run `rtae migrate`

/** An error of the Cassandra store; `retriable` says whether the same call may succeed later. */
export class CassandraStoreError extends Error {
  readonly code: CassandraStoreErrorCode;
  readonly retriable: boolean;
  constructor(code: CassandraStoreErrorCode, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "CassandraStoreError";
    this.code = code;
    this.retriable = code === "store_unavailable";
  }
}

const { responseErrorCodes } = cassandra.types;
const TRANSIENT = new Set<number>([
  responseErrorCodes.unavailableException,
  responseErrorCodes.overloaded,
  responseErrorCodes.isBootstrapping,
  responseErrorCodes.writeTimeout,
  responseErrorCodes.readTimeout,
  responseErrorCodes.readFailure,
  responseErrorCodes.writeFailure,
  responseErrorCodes.truncateError,
  responseErrorCodes.serverError,
]);

/** Wrap whatever the driver threw: unreachable or transient failures are `store_unavailable`. */
export function toStoreError(err: unknown, what: string): CassandraStoreError {
  if (err instanceof CassandraStoreError) return err;
  const e = err as { name?: string; message?: string; code?: number };
  const msg = `${what}: ${driverMessage(err)}`;
  if (err instanceof cassandra.errors.NoHostAvailableError || err instanceof cassandra.errors.OperationTimedOutError || err instanceof cassandra.errors.BusyConnectionError)
    return new CassandraStoreError("store_unavailable", msg, err);
  if (err instanceof cassandra.errors.ResponseError) {
    if (TRANSIENT.has(err.code)) return new CassandraStoreError("store_unavailable", msg, err);
    if (/keyspace .* does not exist|unconfigured table|table .* does not exist/i.test(e.message ?? ""))
      return new CassandraStoreError("not_migrated", `${msg} (run rtae migrate)`, err);
    return new CassandraStoreError("store_rejected", msg, err);
  }
  // socket errors, DriverError ("connection closed") and our own deadline: the network, not the statement
  return new CassandraStoreError("store_unavailable", msg, err);
}

/**
 * One line for what the driver threw. NoHostAvailableError formats its first inner error into its message with
 * util.format, which prints that error's whole stack; its inner errors' own messages say the same in one line each.
 */
function driverMessage(err: unknown): string {
  if (err instanceof cassandra.errors.NoHostAvailableError) {
    const inner = Object.entries((err.innerErrors ?? {}) as Record<string, unknown>).map(
      ([host, e]) => `${host}: ${e instanceof Error ? e.message : String(e)}`.split("\n", 1)[0],
    );
    const head = (err.message ?? "").split(/[.\n]/, 1)[0] || "no host available";
    return inner.length === 0 ? head : `${head}: ${inner.join("; ")}`;
  }
  return (err as { message?: string })?.message ?? String(err);
}

/** Rejects with `store_unavailable` when `p` has not settled after `ms` (the driver's own timeouts are per host). */
export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CassandraStoreError("store_unavailable", `${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

export type RetentionMs = Readonly<Record<"1s" | "1m" | "1h", number>>;

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/**
 * Span of one windows partition per resolution: 3600 starts (1 s), 1440 (1 m), 720 (1 h) per family and
 * partition, so no Cassandra partition grows without bound (a day of 1 s rows would be 86 400 x partitions).
 */
export const BUCKET_MS: Readonly<Record<Resolution, number>> = { 1000: HOUR, 60_000: DAY, 3_600_000: 30 * DAY };
/** Late events are rare: one Cassandra partition per 30 days of event time. */
export const LATE_BUCKET_MS = 30 * DAY;

export function bucketOf(res: Resolution, start: number): number {
  const span = BUCKET_MS[res];
  return Math.floor(start / span) * span;
}

/** Cassandra refuses TTLs beyond 20 years. */
export const MAX_TTL_S = 20 * 365 * 86_400;

/** Seconds until `time + keepMs`, clamped to [1, MAX_TTL_S]: 0 would mean "never expire" to Cassandra. */
export function ttlSeconds(time: number, keepMs: number, now: number): number {
  return Math.min(MAX_TTL_S, Math.max(1, Math.ceil((time + keepMs - now) / 1000)));
}

export const SCHEMA_VERSION = "1";

export function checkKeyspace(keyspace: string): string {
  if (!/^[a-zA-Z][a-zA-Z0-9_]{0,47}$/.test(keyspace))
    throw new CassandraStoreError("store_rejected", `keyspace must match [a-zA-Z][a-zA-Z0-9_]{0,47}, got ${JSON.stringify(keyspace)}`);
  return keyspace;
}

/** Table DDL; `ks` is already validated. */
export function tableDdl(ks: string): string[] {
  return [
    // closed and corrected windows; TTL per row from the resolution's retention (USING TTL on insert)
    `CREATE TABLE IF NOT EXISTS ${ks}.windows (res int, family text, bucket bigint, start bigint, partition int,
      value blob, PRIMARY KEY ((res, family, bucket), start, partition))`,
    // per-Kafka-partition checkpoint state: the same partition key (partition int) in every table, so one
    // unlogged batch per Kafka partition is a single mutation, applied atomically with that partition's offset
    // meta: the partition's event clock and finalised watermark and where its dedupe rescan starts (JSON)
    `CREATE TABLE IF NOT EXISTS ${ks}.offsets (partition int PRIMARY KEY, next bigint, meta text)`,
    // keyspaces migrated before the column existed
    `ALTER TABLE ${ks}.offsets ADD IF NOT EXISTS meta text`,
    // which instance owns a partition now (last claim wins): a writer that lost a partition stops writing it
    `CREATE TABLE IF NOT EXISTS ${ks}.owners (partition int PRIMARY KEY, owner text, claimed_at bigint)`,
    `CREATE TABLE IF NOT EXISTS ${ks}.open_windows (partition int, res int, start bigint, value blob,
      PRIMARY KEY ((partition), res, start))`,
    `CREATE TABLE IF NOT EXISTS ${ks}.session_log (partition int, seq bigint, is_full boolean, blob blob,
      PRIMARY KEY ((partition), seq))`,
    `CREATE TABLE IF NOT EXISTS ${ks}.inventory (partition int, product text, stock bigint, time double,
      PRIMARY KEY ((partition), product))`,
    `CREATE TABLE IF NOT EXISTS ${ks}.late_events (bucket bigint, time double, partition int, offset bigint,
      type text, reason text, PRIMARY KEY ((bucket), time, partition, offset))
      WITH CLUSTERING ORDER BY (time DESC, partition ASC, offset ASC)`,
    // engine meta per writer, the retention the TTLs come from, the schema version
    `CREATE TABLE IF NOT EXISTS ${ks}.meta (k text PRIMARY KEY, v text)`,
  ];
}

export interface CassandraMigrateOptions {
  contactPoints: string[];
  keyspace: string;
  /** CQL replication map; default `{'class': 'SimpleStrategy', 'replication_factor': 1}` */
  replication?: string;
  retention: RetentionMs;
  localDataCenter?: string;
  /** bound on the whole migration (default 60 s: DDL waits for schema agreement) */
  timeoutMs?: number;
}

/** Create the keyspace and tables if missing and record retention and schema version; safe to run again. */
export async function migrateCassandra(opts: CassandraMigrateOptions): Promise<void> {
  const ks = checkKeyspace(opts.keyspace);
  const replication = (opts.replication ?? "{'class': 'SimpleStrategy', 'replication_factor': 1}").trim();
  if (!/^\{[^;]*\}$/.test(replication))
    throw new CassandraStoreError("store_rejected", `replication must be a CQL map like {'class': ...}, got ${replication}`);
  for (const k of ["1s", "1m", "1h"] as const)
    if (!(opts.retention[k] > 0)) throw new CassandraStoreError("store_rejected", `retention ${k} must be > 0 ms`);
  const client = createClient(opts.contactPoints, opts.localDataCenter, undefined);
  const run = async () => {
    await client.connect();
    await client.execute(`CREATE KEYSPACE IF NOT EXISTS ${ks} WITH replication = ${replication}`);
    for (const ddl of tableDdl(ks)) await client.execute(ddl);
    const put = `INSERT INTO ${ks}.meta (k, v) VALUES (?, ?)`;
    await client.execute(put, ["retention", JSON.stringify(opts.retention)], { prepare: true });
    await client.execute(put, ["schema", SCHEMA_VERSION], { prepare: true });
  };
  try {
    await withDeadline(run(), opts.timeoutMs ?? 60_000, "cassandra migrate");
  } catch (err) {
    throw toStoreError(err, "cassandra migrate");
  } finally {
    await client.shutdown().catch(() => {});
  }
}

/** A driver client with bounded connect and read timeouts. */
export function createClient(contactPoints: string[], localDataCenter: string | undefined, keyspace: string | undefined): cassandra.Client {
  return new cassandra.Client({
    contactPoints,
    localDataCenter: localDataCenter ?? "datacenter1",
    keyspace,
    socketOptions: { connectTimeout: 5000, readTimeout: 12_000 },
    // a down cluster should fail calls fast rather than queue them behind reconnect attempts
    policies: { reconnection: new cassandra.policies.reconnection.ExponentialReconnectionPolicy(500, 10_000, false) },
  });
}
