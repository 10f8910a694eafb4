// Tests of the CLI/env configuration: every option by flag, by `--x=y` and by env, every error path, help text.
// Expected values are written out by hand from DESIGN §6 and the task brief, never derived from the module's own table.

import { describe, expect, it } from "bun:test";
import {
  ConfigError,
  defaultConfig,
  describeConfig,
  formatDuration,
  listOptions,
  parseCli,
  parseDuration,
  parseRetention,
  parseSize,
  usage,
  type Config,
} from "./config.ts";

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;
const FIXED = { cpuCount: 3, random: () => 0.5 };

/** The env var a flag maps to, spelled out independently of the module. */
const envOf = (flag: string): string => `RTAE_${flag.replace(/-/g, "_").toUpperCase()}`;

function parse(argv: string[], env: Record<string, string | undefined> = {}): Config {
  return parseCli(argv, env, FIXED).config;
}

function errorOf(argv: string[], env: Record<string, string | undefined> = {}): ConfigError {
  try {
    parseCli(argv, env, FIXED);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(argv)} ${JSON.stringify(env)}`);
}

const KEY_A = "ik_live_0123456789abcdef";
const KEY_B = "ik_live_fedcba9876543210";
const TOKEN_R = "rt_0123456789abcdefXYZ";
const TOKEN_ADMIN = "adm_0123456789abcdefQRS";

// Every option of the brief, by name (independent of listOptions()).
const ALL_FLAGS = [
  "port", "host", "data-dir", "workers", "partitions", "out-of-orderness", "allowed-lateness", "session-gap",
  "retention", "currency", "demo-rate", "kafka-brokers", "redis-url", "cassandra-contact-points", "kafka-topic",
  "consumer-group", "cassandra-keyspace", "redis-prefix", "ingest-keys", "read-tokens", "admin-token",
  "checkpoint-interval", "idle-timeout", "dedupe-horizon", "max-body-bytes", "max-events-per-request", "log-level",
  "seed", "target", "rate", "count", "duration", "batch-size", "ingest-key", "products", "users", "bursts", "no-diurnal",
  "alert-rules", "alert-webhook-url", "alert-allow-private", "max-inflight-body-bytes", "trust-proxy", "cassandra-consistency", "cassandra-replication", "cassandra-datacenter",
];
const SECRET_FLAGS = new Set(["ingest-keys", "read-tokens", "admin-token", "ingest-key", "alert-webhook-url"]);
const BOOLEAN_FLAGS = new Set(["bursts", "no-diurnal", "alert-allow-private", "trust-proxy"]);
const PRODUCE_ONLY = new Set(["target", "rate", "count", "duration", "batch-size", "ingest-key"]);
const commandFor = (flag: string): "serve" | "produce" => (PRODUCE_ONLY.has(flag) ? "produce" : "serve");

describe("defaults", () => {
  it("gives every option its documented default when nothing is set", () => {
    const { command, config, warnings } = parseCli(["serve"], {}, FIXED);
    expect(command).toBe("serve");
    expect(warnings).toEqual([]);
    expect({ ...config }).toEqual({
      port: 8080,
      host: "0.0.0.0",
      dataDir: "./data",
      workers: 2,
      partitions: 8,
      outOfOrdernessMs: 5 * S,
      allowedLatenessMs: 60 * S,
      sessionGapMs: 30 * M,
      retention: { "1s": 24 * H, "1m": 30 * D, "1h": 400 * D },
      currency: "USD",
      demoRate: 0,
      kafkaBrokers: null,
      redisUrl: null,
      cassandraContactPoints: null,
      kafkaTopic: "rtae.events",
      consumerGroup: "rtae",
      cassandraKeyspace: "rtae",
      cassandraConsistency: "LOCAL_QUORUM",
      cassandraReplication: "{'class': 'SimpleStrategy', 'replication_factor': 1}",
      cassandraDatacenter: "datacenter1",
      redisPrefix: "rtae:",
      ingestKeys: [],
      readTokens: [],
      adminToken: null,
      alertRulesPath: null,
      alertWebhookUrl: null,
      alertAllowPrivate: false,
      checkpointIntervalMs: 1 * S,
      idleTimeoutMs: 10 * S,
      dedupeHorizonMs: 10 * M,
      maxBodyBytes: 16 * 1024 * 1024,
      maxInflightBodyBytes: 64 * 1024 * 1024,
      trustProxy: false,
      maxEventsPerRequest: 100_000,
      logLevel: "info",
      seed: 2_147_483_648,
      traffic: { products: 10_000, users: 100_000, bursts: false, diurnal: true },
      produce: {
        target: "http://127.0.0.1:8080",
        rate: 1000,
        count: null,
        durationMs: null,
        batchSize: 500,
        ingestKey: null,
      },
    });
  });

  it("defaults workers to CPUs minus one, at least 1 and at most 4", () => {
    for (const [cpus, want] of [[1, 1], [2, 1], [3, 2], [4, 3], [5, 4], [6, 4], [64, 4]]) {
      expect(parseCli(["serve"], {}, { cpuCount: cpus }).config.workers).toBe(want);
    }
  });

  it("picks a random seed per run unless one is given", () => {
    const a = parseCli(["serve"], {}, { random: () => 0 }).config.seed;
    const b = parseCli(["serve"], {}, { random: () => 0.999 }).config.seed;
    expect(a).toBe(0);
    expect(b).toBe(Math.floor(0.999 * 4_294_967_296));
    expect(parseCli(["serve", "--seed", "7"], {}, { random: () => 0.999 }).config.seed).toBe(7);
  });

  it("returns the same defaults from defaultConfig()", () => {
    expect(defaultConfig(FIXED)).toEqual(parse(["serve"]));
  });

  it("returns a deeply frozen config", () => {
    const c = parse(["serve", "--ingest-keys", KEY_A]);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.retention)).toBe(true);
    expect(Object.isFrozen(c.ingestKeys)).toBe(true);
    expect(Object.isFrozen(c.produce)).toBe(true);
  });

  it("survives structuredClone, so it can be posted to a Worker", () => {
    const c = parse(["serve", "--kafka-brokers", "k1:9092"]);
    expect(structuredClone(c)).toEqual(c);
  });
});

interface ValueCase {
  flag: string;
  raw: string;
  pick: (c: Config) => unknown;
  want: unknown;
}

const VALUE_CASES: ValueCase[] = [
  { flag: "alert-rules", raw: "/etc/rtae/alerts.json", pick: (c) => c.alertRulesPath, want: "/etc/rtae/alerts.json" },
  { flag: "alert-webhook-url", raw: "https://hooks.example.com/rtae", pick: (c) => c.alertWebhookUrl, want: "https://hooks.example.com/rtae" },
  { flag: "alert-allow-private", raw: "true", pick: (c) => c.alertAllowPrivate, want: true },
  { flag: "max-inflight-body-bytes", raw: "128MiB", pick: (c) => c.maxInflightBodyBytes, want: 128 * 1024 * 1024 },
  { flag: "trust-proxy", raw: "true", pick: (c) => c.trustProxy, want: true },
  { flag: "port", raw: "9090", pick: (c) => c.port, want: 9090 },
  { flag: "host", raw: "127.0.0.1", pick: (c) => c.host, want: "127.0.0.1" },
  { flag: "host", raw: "[::1]", pick: (c) => c.host, want: "::1" },
  { flag: "data-dir", raw: "/var/lib/rtae", pick: (c) => c.dataDir, want: "/var/lib/rtae" },
  { flag: "workers", raw: "3", pick: (c) => c.workers, want: 3 },
  { flag: "partitions", raw: "16", pick: (c) => c.partitions, want: 16 },
  { flag: "out-of-orderness", raw: "2s", pick: (c) => c.outOfOrdernessMs, want: 2000 },
  { flag: "allowed-lateness", raw: "2m", pick: (c) => c.allowedLatenessMs, want: 120_000 },
  { flag: "session-gap", raw: "45m", pick: (c) => c.sessionGapMs, want: 2_700_000 },
  { flag: "retention", raw: "1s=12h", pick: (c) => c.retention, want: { "1s": 12 * H, "1m": 30 * D, "1h": 400 * D } },
  { flag: "currency", raw: "eur", pick: (c) => c.currency, want: "EUR" },
  { flag: "demo-rate", raw: "200", pick: (c) => c.demoRate, want: 200 },
  { flag: "demo-rate", raw: "0.5", pick: (c) => c.demoRate, want: 0.5 },
  { flag: "kafka-brokers", raw: "k1:9092, k2:9093", pick: (c) => c.kafkaBrokers, want: ["k1:9092", "k2:9093"] },
  { flag: "kafka-brokers", raw: "[::1]:9092", pick: (c) => c.kafkaBrokers, want: ["[::1]:9092"] },
  { flag: "redis-url", raw: "rediss://:pw@cache:6380/2", pick: (c) => c.redisUrl, want: "rediss://:pw@cache:6380/2" },
  { flag: "cassandra-contact-points", raw: "c1,c2:9043", pick: (c) => c.cassandraContactPoints, want: ["c1", "c2:9043"] },
  { flag: "kafka-topic", raw: "shop.events", pick: (c) => c.kafkaTopic, want: "shop.events" },
  { flag: "consumer-group", raw: "analytics-eu", pick: (c) => c.consumerGroup, want: "analytics-eu" },
  { flag: "cassandra-keyspace", raw: "Shop_Metrics", pick: (c) => c.cassandraKeyspace, want: "shop_metrics" },
  { flag: "cassandra-consistency", raw: "quorum", pick: (c) => c.cassandraConsistency, want: "QUORUM" },
  { flag: "cassandra-replication", raw: "{'class': 'NetworkTopologyStrategy', 'dc1': 3}", pick: (c) => c.cassandraReplication, want: "{'class': 'NetworkTopologyStrategy', 'dc1': 3}" },
  { flag: "cassandra-datacenter", raw: "eu-west-1", pick: (c) => c.cassandraDatacenter, want: "eu-west-1" },
  { flag: "redis-prefix", raw: "shop:", pick: (c) => c.redisPrefix, want: "shop:" },
  { flag: "ingest-keys", raw: `${KEY_A},${KEY_B}`, pick: (c) => c.ingestKeys, want: [KEY_A, KEY_B] },
  { flag: "read-tokens", raw: TOKEN_R, pick: (c) => c.readTokens, want: [TOKEN_R] },
  { flag: "admin-token", raw: TOKEN_ADMIN, pick: (c) => c.adminToken, want: TOKEN_ADMIN },
  { flag: "checkpoint-interval", raw: "500ms", pick: (c) => c.checkpointIntervalMs, want: 500 },
  { flag: "idle-timeout", raw: "30s", pick: (c) => c.idleTimeoutMs, want: 30_000 },
  { flag: "dedupe-horizon", raw: "1h", pick: (c) => c.dedupeHorizonMs, want: H },
  { flag: "max-body-bytes", raw: "1MB", pick: (c) => c.maxBodyBytes, want: 1_000_000 },
  { flag: "max-body-bytes", raw: "65536", pick: (c) => c.maxBodyBytes, want: 65_536 },
  { flag: "max-events-per-request", raw: "5000", pick: (c) => c.maxEventsPerRequest, want: 5000 },
  { flag: "log-level", raw: "DEBUG", pick: (c) => c.logLevel, want: "debug" },
  { flag: "seed", raw: "42", pick: (c) => c.seed, want: 42 },
  { flag: "products", raw: "500", pick: (c) => c.traffic.products, want: 500 },
  { flag: "users", raw: "2000", pick: (c) => c.traffic.users, want: 2000 },
  { flag: "bursts", raw: "true", pick: (c) => c.traffic.bursts, want: true },
  { flag: "no-diurnal", raw: "1", pick: (c) => c.traffic.diurnal, want: false },
  { flag: "target", raw: "http://rtae.internal:9000/", pick: (c) => c.produce.target, want: "http://rtae.internal:9000" },
  { flag: "target", raw: "https://x.example/rtae/api/events", pick: (c) => c.produce.target, want: "https://x.example/rtae" },
  { flag: "target", raw: "-", pick: (c) => c.produce.target, want: "-" },
  { flag: "rate", raw: "2500", pick: (c) => c.produce.rate, want: 2500 },
  { flag: "count", raw: "10_000", pick: (c) => c.produce.count, want: 10_000 },
  { flag: "duration", raw: "5m", pick: (c) => c.produce.durationMs, want: 300_000 },
  { flag: "batch-size", raw: "100", pick: (c) => c.produce.batchSize, want: 100 },
  { flag: "ingest-key", raw: KEY_A, pick: (c) => c.produce.ingestKey, want: KEY_A },
];

describe("every option by flag, by --x=y and by environment variable", () => {
  it("has a value case for every option of the brief", () => {
    expect([...new Set(VALUE_CASES.map((c) => c.flag))].sort()).toEqual([...ALL_FLAGS].sort());
    expect(listOptions().map((o) => o.flag.slice(2)).sort()).toEqual([...ALL_FLAGS].sort());
  });

  for (const c of VALUE_CASES) {
    const cmd = commandFor(c.flag);
    it(`reads --${c.flag} ${c.raw} in all three forms`, () => {
      const defaultValue = c.pick(parse([cmd]));
      expect(defaultValue).not.toEqual(c.want); // otherwise the case could not fail
      if (!BOOLEAN_FLAGS.has(c.flag)) expect(c.pick(parse([cmd, `--${c.flag}`, c.raw]))).toEqual(c.want);
      expect(c.pick(parse([cmd, `--${c.flag}=${c.raw}`]))).toEqual(c.want);
      expect(c.pick(parse([cmd], { [envOf(c.flag)]: c.raw }))).toEqual(c.want);
    });
  }

  it("lets a flag win over its environment variable", () => {
    const env = { RTAE_PORT: "9000", RTAE_DATA_DIR: "/env", RTAE_RETENTION: "1h=500d", RTAE_BURSTS: "true" };
    const c = parse(["serve", "--port", "9001", "--data-dir=/flag", "--retention", "1h=600d", "--bursts=false"], env);
    expect(c.port).toBe(9001);
    expect(c.dataDir).toBe("/flag");
    expect(c.retention["1h"]).toBe(600 * D);
    expect(c.traffic.bursts).toBe(false);
    // and the environment still applies where no flag is given
    expect(parse(["serve", "--port", "9001"], env).dataDir).toBe("/env");
  });

  it("keeps the last value of a repeated flag", () => {
    expect(parse(["serve", "--port", "1000", "--port=2000"]).port).toBe(2000);
  });

  it("accepts boolean flags bare, with =true|false, and env true|false|1|0", () => {
    expect(parse(["serve", "--bursts"]).traffic.bursts).toBe(true);
    expect(parse(["serve", "--bursts=TRUE"]).traffic.bursts).toBe(true);
    expect(parse(["serve", "--bursts=0"]).traffic.bursts).toBe(false);
    expect(parse(["serve", "--no-diurnal"]).traffic.diurnal).toBe(false);
    expect(parse(["serve", "--no-diurnal=false"]).traffic.diurnal).toBe(true);
    for (const [v, want] of [["true", true], ["false", false], ["1", true], ["0", false]] as const) {
      expect(parse(["produce"], { RTAE_BURSTS: v }).traffic.bursts).toBe(want);
    }
  });

  it("treats an empty environment variable as unset", () => {
    expect(parse(["serve"], { RTAE_PORT: "", RTAE_KAFKA_BROKERS: "  " })).toEqual(parse(["serve"]));
  });

  it("lets an empty flag switch an external service from the environment back to embedded", () => {
    const env = { RTAE_REDIS_URL: "redis://cache:6379", RTAE_KAFKA_BROKERS: "k:9092" };
    const c = parse(["serve", "--redis-url=", "--kafka-brokers="], env);
    expect(c.redisUrl).toBeNull();
    expect(c.kafkaBrokers).toBeNull();
  });

  it("accepts 'unlimited' for --count and --duration", () => {
    const c = parse(["produce", "--count", "5", "--duration", "1m"], { RTAE_COUNT: "7" });
    expect([c.produce.count, c.produce.durationMs]).toEqual([5, 60_000]);
    const u = parse(["produce", "--count=unlimited"], { RTAE_DURATION: "unlimited", RTAE_COUNT: "7" });
    expect([u.produce.count, u.produce.durationMs]).toEqual([null, null]);
  });

  it("takes a value that starts with a single dash, such as - for stdout", () => {
    expect(parse(["produce", "--target", "-"]).produce.target).toBe("-");
  });

  it("ignores environment variables of options that belong to another command", () => {
    expect(parse(["serve"], { RTAE_RATE: "not-a-rate", RTAE_TARGET: "ftp://x" }).produce.rate).toBe(1000);
    expect(parse(["produce"], { RTAE_PORT: "not-a-port", RTAE_WORKERS: "0" }).port).toBe(8080);
    expect(parse(["migrate"], { RTAE_SEED: "x", RTAE_BURSTS: "maybe" }).port).toBe(8080);
  });
});

interface ErrorCase {
  flag: string;
  raw: string;
  says: string;
  /** the value as the message should show it, when it is masked */
  shown?: string;
}

const ERROR_CASES: ErrorCase[] = [
  { flag: "alert-rules", raw: "rules\u0000.json", says: "contains a NUL character" },
  { flag: "alert-webhook-url", raw: "ftp://hooks.example.com/x", says: "is not an http:// or https:// URL" },
  { flag: "alert-webhook-url", raw: "not a url", says: "is not a URL" },
  { flag: "alert-allow-private", raw: "yes", says: "is not a boolean (expected true, false, 1 or 0)" },
  { flag: "trust-proxy", raw: "maybe", says: "is not a boolean (expected true, false, 1 or 0)" },
  { flag: "max-inflight-body-bytes", raw: "1KiB", says: "out of range (expected 1MiB to 16GiB)" },
  { flag: "port", raw: "80a", says: "is not a port number (1-65535)" },
  { flag: "port", raw: "0", says: "is not a port number (1-65535)" },
  { flag: "port", raw: "65536", says: "is not a port number (1-65535)" },
  { flag: "host", raw: "http://x", says: "is a URL" },
  { flag: "host", raw: "db:5432", says: "includes a port" },
  { flag: "host", raw: "bad host!", says: "is not a host name or IP address" },
  { flag: "data-dir", raw: "a\u0000b", says: "contains a NUL character" },
  { flag: "workers", raw: "0", says: "is out of range (expected 1-64)" },
  { flag: "workers", raw: "65", says: "is out of range (expected 1-64)" },
  { flag: "workers", raw: "two", says: "is not a whole number (expected 1-64)" },
  { flag: "partitions", raw: "1025", says: "is out of range (expected 1-1024)" },
  { flag: "out-of-orderness", raw: "-1s", says: "is negative" },
  { flag: "out-of-orderness", raw: "soon", says: "is not a duration" },
  { flag: "out-of-orderness", raw: "8d", says: "is out of range (expected 0s to 7d)" },
  { flag: "allowed-lateness", raw: "5 sec", says: "is not a duration" },
  { flag: "session-gap", raw: "0s", says: "is out of range (expected 1s to 1d)" },
  { flag: "retention", raw: "1d=5d", says: 'has an unknown resolution "1d" (expected 1s, 1m or 1h)' },
  { flag: "retention", raw: "1s=48h,1m=1d", says: "each coarser resolution must be kept at least as long" },
  { flag: "retention", raw: "1s=forever", says: 'has a 1s retention "forever" that is not a duration' },
  { flag: "currency", raw: "US", says: "is not a currency code (expected 3 letters" },
  { flag: "currency", raw: "U$D", says: "is not a currency code" },
  { flag: "demo-rate", raw: "-1", says: "is not a rate" },
  { flag: "demo-rate", raw: "2000000", says: "is out of range (expected at least 0 and at most 1000000 events/s)" },
  { flag: "kafka-brokers", raw: "k1", says: 'has "k1" without a port' },
  { flag: "kafka-brokers", raw: "k1:99999", says: 'has "k1:99999" with an invalid port' },
  { flag: "kafka-brokers", raw: "::1:9092", says: "write IPv6 addresses in brackets" },
  { flag: "kafka-brokers", raw: "a:1,,b:2", says: "has an empty entry (entry 2 of 3)" },
  { flag: "redis-url", raw: "http://cache:6379", says: "is not a redis:// or rediss:// URL" },
  { flag: "redis-url", raw: "redis://", says: "has no host" },
  { flag: "redis-url", raw: "redis://cache/db", says: "is not a database number" },
  { flag: "redis-url", raw: "no url here", says: "is not a URL" },
  { flag: "redis-url", raw: "redis://user:hunter2hunter2@cache/x", says: "database number", shown: "redis://user:<redacted>@cache/x" },
  { flag: "cassandra-contact-points", raw: "c1:abc", says: 'has "c1:abc" with an invalid port' },
  { flag: "kafka-topic", raw: "bad topic", says: "is not a Kafka topic name" },
  { flag: "kafka-topic", raw: "t".repeat(246), says: "is longer than 245 characters", shown: `${"t".repeat(77)}...` },
  { flag: "consumer-group", raw: "has space", says: "is not a consumer group id" },
  { flag: "cassandra-keyspace", raw: "9lives", says: "is not a CQL identifier" },
  { flag: "cassandra-consistency", raw: "SERIAL", says: "is not a consistency level" },
  { flag: "cassandra-replication", raw: "{'class': 'SimpleStrategy'}; DROP KEYSPACE rtae", says: "is not a CQL replication map" },
  { flag: "cassandra-datacenter", raw: "dc 1", says: "is not a data center name" },
  { flag: "cassandra-keyspace", raw: "Select", says: "is a reserved CQL keyword" },
  { flag: "cassandra-keyspace", raw: "system_auth", says: "is a Cassandra system keyspace name" },
  { flag: "redis-prefix", raw: "rtae:*", says: "contains a glob character" },
  { flag: "redis-prefix", raw: "has space", says: "is not a key prefix" },
  { flag: "ingest-keys", raw: "short-key", says: "has a key that is shorter than 16 characters (key 1 of 1" },
  { flag: "ingest-keys", raw: `${KEY_A},tooshort`, says: "(key 2 of 2" },
  { flag: "read-tokens", raw: `${TOKEN_R},tok\u00e9n_0123456789abc`, says: "not printable ASCII" },
  { flag: "admin-token", raw: "short-admin", says: "is shorter than 16 characters" },
  { flag: "checkpoint-interval", raw: "1ms", says: "is out of range (expected 10ms to 10m)" },
  { flag: "idle-timeout", raw: "50ms", says: "is out of range (expected 100ms to 1d)" },
  { flag: "dedupe-horizon", raw: "5m", says: "is out of range (expected 10m to 7d)" },
  { flag: "max-body-bytes", raw: "16XB", says: 'has an unknown unit "XB"' },
  { flag: "max-body-bytes", raw: "100", says: "is out of range (expected 1KiB to 1GiB)" },
  { flag: "max-body-bytes", raw: "2GiB", says: "is out of range (expected 1KiB to 1GiB)" },
  { flag: "max-events-per-request", raw: "0", says: "is out of range (expected 1-1000000)" },
  { flag: "log-level", raw: "verbose", says: "is not a log level (expected debug, info, warn or error)" },
  { flag: "seed", raw: "4294967296", says: "is out of range (expected 0-4294967295)" },
  { flag: "seed", raw: "abc", says: "is not a whole number" },
  { flag: "products", raw: "0", says: "is out of range (expected 1-1000000)" },
  { flag: "users", raw: "many", says: "is not a whole number" },
  { flag: "bursts", raw: "yes", says: "is not a boolean (expected true, false, 1 or 0)" },
  { flag: "no-diurnal", raw: "maybe", says: "is not a boolean" },
  { flag: "target", raw: "ftp://x", says: "is not an http:// or https:// URL" },
  { flag: "target", raw: "localhost:8080", says: "is missing the scheme (expected e.g. http://localhost:8080)" },
  { flag: "target", raw: "http://u:secretpw@x", says: "carries credentials", shown: "http://u:<redacted>@x" },
  { flag: "target", raw: "http://x/?a=1", says: "has a query or fragment" },
  { flag: "rate", raw: "0", says: "is out of range (expected more than 0" },
  { flag: "count", raw: "1.5", says: "is not a whole number (expected at least 1)" },
  { flag: "duration", raw: "forever", says: "is not a duration" },
  { flag: "duration", raw: "0s", says: "is out of range (expected at least 1ms)" },
  { flag: "batch-size", raw: "100001", says: "is out of range (expected 1-100000)" },
  { flag: "ingest-key", raw: "tiny-key", says: "is shorter than 16 characters" },
];

describe("validation errors", () => {
  it("has at least one error case for every option", () => {
    expect([...new Set(ERROR_CASES.map((c) => c.flag))].sort()).toEqual([...ALL_FLAGS].sort());
  });

  for (const c of ERROR_CASES) {
    const cmd = commandFor(c.flag);
    const label = `--${c.flag} (${envOf(c.flag)})`;
    it(`rejects --${c.flag} ${JSON.stringify(c.raw).slice(0, 40)} naming the flag, the env var and the value`, () => {
      const fromFlag = errorOf([cmd, `--${c.flag}=${c.raw}`]);
      const fromEnv = errorOf([cmd], { [envOf(c.flag)]: c.raw });
      for (const e of [fromFlag, fromEnv]) {
        expect(e.code).toBe("config_invalid");
        expect(e.issues).toHaveLength(1);
        expect(e.message.startsWith(`${label}: `)).toBe(true);
        expect(e.message).toContain(c.says);
        if (SECRET_FLAGS.has(c.flag)) {
          expect(e.message).toContain("<redacted>");
          expect(e.message).not.toContain(c.raw);
          for (const part of c.raw.split(",")) expect(e.message).not.toContain(part);
        } else {
          expect(e.message).toContain(JSON.stringify(c.shown ?? c.raw));
        }
      }
      expect(fromFlag.message).not.toContain("[set by");
      expect(fromEnv.message).toContain(`[set by ${envOf(c.flag)}]`);
    });
  }

  it("reads the brief's example message word for word", () => {
    expect(errorOf(["serve", "--port", "80a"]).message).toBe('--port (RTAE_PORT): "80a" is not a port number (1-65535)');
  });

  it("reports every problem at once", () => {
    const e = errorOf(["serve", "--port", "x", "--workers", "0"], { RTAE_CURRENCY: "dollars" });
    expect(e.issues).toHaveLength(3);
    expect(e.message).toContain("3 configuration problems");
    for (const f of ["--port (RTAE_PORT)", "--workers (RTAE_WORKERS)", "--currency (RTAE_CURRENCY)"]) {
      expect(e.message).toContain(f);
    }
  });

  it("names the flag when its value is missing or empty", () => {
    expect(errorOf(["serve", "--port"]).message).toBe("--port (RTAE_PORT): needs a value, e.g. --port 8080");
    expect(errorOf(["serve", "--port", "--host", "x"]).message).toContain("--port (RTAE_PORT): needs a value");
    expect(errorOf(["serve", "--host="]).message).toContain("--host (RTAE_HOST): is empty");
  });

  it("never echoes a secret, even as a stray argument after it", () => {
    const e = errorOf(["serve", "--admin-token", TOKEN_ADMIN, "oops-second-part"]);
    expect(e.message).toContain("<redacted>");
    expect(e.message).not.toContain("oops-second-part");
    expect(e.message).not.toContain(TOKEN_ADMIN);
  });

  it("does not echo the value of an unknown option, which may be a misspelt secret", () => {
    const e = errorOf(["serve", "--admin-tokn", TOKEN_ADMIN]);
    expect(e.message).toBe("unknown option --admin-tokn (did you mean --admin-token?)");
    const eq = errorOf(["serve", `--admin-tokn=${TOKEN_ADMIN}`]);
    expect(eq.message).not.toContain(TOKEN_ADMIN);
  });

  it("masks the password of a Redis URL in its error", () => {
    const e = errorOf(["serve"], { RTAE_REDIS_URL: "http://:s3cretpass@cache:6379" });
    expect(e.message).not.toContain("s3cretpass");
    expect(e.message).toContain('"http://:<redacted>@cache:6379"');
  });

  it("suggests the boolean form when a value follows a bare boolean flag", () => {
    expect(errorOf(["serve", "--bursts", "false"]).message).toBe('unexpected argument "false" (write --bursts=false)');
  });

  it("shortens very long values in messages", () => {
    const e = errorOf(["serve", "--host", "x".repeat(300) + "!"]);
    expect(e.message.length).toBeLessThan(250);
  });
});

describe("cross-field rules", () => {
  it("rejects out-of-orderness above allowed lateness, naming both", () => {
    const e = errorOf(["serve", "--out-of-orderness", "2m", "--allowed-lateness", "1m"]);
    expect(e.message).toBe(
      "--out-of-orderness (RTAE_OUT_OF_ORDERNESS) is 2m but --allowed-lateness (RTAE_ALLOWED_LATENESS) is 1m: " +
        "out-of-orderness must not exceed allowed lateness",
    );
  });

  it("rejects allowed lateness beyond the 1s retention", () => {
    const e = errorOf(["serve", "--allowed-lateness", "2h", "--retention", "1s=1h", "--dedupe-horizon", "3h"]);
    expect(e.issues).toHaveLength(1);
    for (const f of ["--allowed-lateness (RTAE_ALLOWED_LATENESS)", "--retention (RTAE_RETENTION)", "1s retention of 1h"]) {
      expect(e.message).toContain(f);
    }
  });

  it("counts out-of-orderness in the lateness the 1s retention must cover", () => {
    // 59m + 2m = 61m reaches further back than 1h of 1-second windows
    const e = errorOf(["serve", "--allowed-lateness", "59m", "--out-of-orderness", "2m", "--retention", "1s=1h", "--dedupe-horizon", "2h"]);
    expect(e.message).toContain("1s retention of 1h");
    expect(parse(["serve", "--allowed-lateness", "58m", "--out-of-orderness", "2m", "--retention", "1s=1h", "--dedupe-horizon", "2h"]).allowedLatenessMs).toBe(58 * M);
  });

  it("rejects a dedupe horizon shorter than out-of-orderness plus allowed lateness", () => {
    const e = errorOf(["serve", "--allowed-lateness", "15m"]);
    expect(e.message).toContain("--dedupe-horizon (RTAE_DEDUPE_HORIZON) is 10m");
    expect(e.message).toContain("(15m5s)");
    expect(parse(["serve", "--allowed-lateness", "15m", "--dedupe-horizon", "16m"]).dedupeHorizonMs).toBe(16 * M);
  });

  it("rejects an admin token that is also an ingest key or read token, without showing it", () => {
    const e = errorOf(["serve", "--admin-token", KEY_A, "--ingest-keys", `${KEY_B},${KEY_A}`, "--read-tokens", KEY_A]);
    expect(e.message).toContain("--admin-token (RTAE_ADMIN_TOKEN) is also one of --ingest-keys (RTAE_INGEST_KEYS)");
    expect(e.message).toContain("--admin-token (RTAE_ADMIN_TOKEN) is also one of --read-tokens (RTAE_READ_TOKENS)");
    expect(e.message).toContain("--ingest-keys (RTAE_INGEST_KEYS) and --read-tokens (RTAE_READ_TOKENS) share a key");
    expect(e.message).not.toContain(KEY_A);
    expect(e.message).not.toContain(KEY_B);
  });

  it("skips a rule whose inputs already failed, so one mistake is reported once", () => {
    const e = errorOf(["serve", "--allowed-lateness", "soon"]);
    expect(e.issues).toHaveLength(1);
  });

  it("warns when more workers than partitions are asked for", () => {
    const r = parseCli(["serve", "--workers", "6", "--partitions", "4"], {}, FIXED);
    expect(r.warnings).toEqual([
      "--workers (RTAE_WORKERS) is 6 but --partitions (RTAE_PARTITIONS) is 4: 2 worker(s) will have no partition",
    ]);
  });

  it("warns that an ingest key is unused when producing to stdout", () => {
    const r = parseCli(["produce", "--target", "-", "--ingest-key", KEY_A], {}, FIXED);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toContain("--ingest-key (RTAE_INGEST_KEY) is ignored");
    expect(r.warnings[0]).not.toContain(KEY_A);
  });
});

describe("commands and unknown options", () => {
  it("recognises each command", () => {
    for (const cmd of ["serve", "produce", "migrate", "version"] as const) {
      expect(parseCli([cmd], {}, FIXED).command).toBe(cmd);
    }
  });

  it("answers help for no arguments, help, --help and -h anywhere, even beside bad values", () => {
    for (const argv of [[], ["help"], ["--help"], ["-h"], ["serve", "--port", "x", "-h"], ["bogus", "--help"]]) {
      expect(parseCli(argv, { RTAE_PORT: "nope" }, FIXED).command).toBe("help");
    }
  });

  it("answers version for --version", () => {
    expect(parseCli(["--version"], {}, FIXED).command).toBe("version");
    expect(parseCli(["serve", "--version"], {}, FIXED).command).toBe("version");
  });

  it("does not validate the environment for version", () => {
    expect(parseCli(["version"], { RTAE_PORT: "nope" }, FIXED).command).toBe("version");
  });

  it("suggests the closest command", () => {
    expect(errorOf(["serv"]).message).toBe('unknown command "serv" (did you mean serve?); expected serve, produce, migrate or version');
    expect(errorOf(["prodcue"]).message).toContain("did you mean produce?");
    expect(errorOf(["launch"]).message).not.toContain("did you mean");
  });

  it("asks for a command when options come first", () => {
    expect(errorOf(["--port", "8080"]).message).toBe("missing command; expected serve, produce, migrate or version");
  });

  it("suggests the closest option for typos, swaps and prefixes", () => {
    const cases: [string, string][] = [
      ["--prot", "--port"],
      ["--allowed-latness", "--allowed-lateness"],
      ["--datadir", "--data-dir"],
      ["--out-of-order", "--out-of-orderness"],
      ["--kafka-broker", "--kafka-brokers"],
      ["--ingest-keyz", "--ingest-keys"],
    ];
    for (const [typo, want] of cases) {
      expect(errorOf(["serve", typo, "1"]).message).toBe(`unknown option ${typo} (did you mean ${want}?)`);
    }
    expect(errorOf(["serve", "--zzzzzz"]).message).toBe("unknown option --zzzzzz");
  });

  it("points a single-dash long option to its double-dash form", () => {
    expect(errorOf(["serve", "-port", "80"]).message).toBe("unknown option -port (did you mean --port?)");
  });

  it("rejects an option of another command and says where it belongs", () => {
    expect(errorOf(["serve", "--rate", "10"]).message).toBe("--rate is not an option of `rtae serve` (it belongs to rtae produce)");
    expect(errorOf(["produce", "--port", "1"]).message).toContain("--port is not an option of `rtae produce`");
    expect(errorOf(["version", "--port", "1"]).message).toContain("--port is not an option of `rtae version`");
  });

  it("rejects stray arguments", () => {
    expect(errorOf(["serve", "extra"]).message).toBe('unexpected argument "extra"');
    expect(errorOf(["serve", "--", "--port"]).message).toBe('unexpected argument "--port"');
  });

  it("warns about unknown RTAE_ variables with a suggestion", () => {
    const r = parseCli(["serve"], { RTAE_PROT: "1", RTAE_WHATEVER_ELSE: "x", PATH: "/bin" }, FIXED);
    expect(r.warnings).toEqual([
      "unknown environment variable RTAE_PROT is ignored (did you mean RTAE_PORT?)",
      "unknown environment variable RTAE_WHATEVER_ELSE is ignored",
    ]);
  });
});

describe("parseDuration", () => {
  it("parses units, compounds, fractions and plain milliseconds", () => {
    const cases: [string, number][] = [
      ["250ms", 250], ["5s", 5000], ["30m", 1_800_000], ["24h", 86_400_000], ["400d", 34_560_000_000],
      ["1500", 1500], ["0", 0], ["0s", 0], ["1h30m", 5_400_000], ["1m30s", 90_000], ["1.5s", 1500],
      ["0.25h", 900_000], [" 5s ", 5000], ["2 m", 120_000], ["1_000", 1000],
    ];
    for (const [s, ms] of cases) expect([s, parseDuration(s)]).toEqual([s, ms]);
  });

  it("rejects junk, negatives, sub-millisecond fractions and overflow", () => {
    const cases: [string, string][] = [
      ["", "is not a duration"], ["abc", "is not a duration"], ["5x", "is not a duration"], ["5S", "is not a duration"],
      ["1e3", "is not a duration"], ["5s junk", "is not a duration"], ["s", "is not a duration"], ["1.5", "is not a duration"],
      ["-5s", "is negative"], ["-1", "is negative"], ["1.0005s", "finer than a millisecond"],
      ["300000000000d", "is too large"], ["99999999999999999999", "is too large"],
    ];
    for (const [s, phrase] of cases) {
      let err: unknown;
      try {
        parseDuration(s);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message.startsWith(`${JSON.stringify(s)} `)).toBe(true);
      expect((err as ConfigError).message).toContain(phrase);
    }
  });

  it("round-trips through formatDuration", () => {
    for (const ms of [0, 1, 999, 1000, 61_000, 90 * M, D, 400 * D + 3 * H + 7]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
    expect(formatDuration(90 * M)).toBe("1h30m");
  });
});

describe("parseRetention", () => {
  it("parses the full default spec", () => {
    expect(parseRetention("1s=24h,1m=30d,1h=400d")).toEqual({ "1s": 86_400_000, "1m": 2_592_000_000, "1h": 34_560_000_000 });
  });

  it("lets a partial spec override only the resolutions it names", () => {
    expect(parseRetention("1h=500d")).toEqual({ "1s": 24 * H, "1m": 30 * D, "1h": 500 * D });
    expect(parseRetention(" 1m = 60d , 1s=2h ")).toEqual({ "1s": 2 * H, "1m": 60 * D, "1h": 400 * D });
  });

  it("rejects unknown resolutions, repeats, missing '=', empty entries, bad durations and inverted ordering", () => {
    const cases: [string, string][] = [
      ["1d=5d", 'unknown resolution "1d"'],
      ["1s=1h,1s=2h", "gives the 1s retention twice"],
      ["1s", 'without "="'],
      ["1s=24h,", "has an empty entry"],
      ["", "has an empty entry"],
      ["1s=-1h", 'has a 1s retention "-1h" that is negative'],
      ["1m=30s", "less than one 1m window"],
      ["1h=10d", "each coarser resolution must be kept at least as long"],
    ];
    for (const [s, phrase] of cases) {
      expect(() => parseRetention(s)).toThrow(ConfigError);
      expect(() => parseRetention(s)).toThrow(phrase);
    }
  });
});

describe("parseSize", () => {
  it("parses binary and decimal units and plain bytes", () => {
    const cases: [string, number][] = [
      ["16MiB", 16 * 1024 * 1024], ["1MB", 1_000_000], ["4096", 4096], ["512kib", 512 * 1024], ["1.5KiB", 1536],
      ["2 GB", 2_000_000_000], ["1GiB", 1024 ** 3], ["10B", 10], ["1_048_576", 1_048_576],
    ];
    for (const [s, bytes] of cases) expect([s, parseSize(s)]).toEqual([s, bytes]);
  });

  it("rejects junk, negatives and unknown units", () => {
    for (const [s, phrase] of [["16XB", 'unknown unit "XB"'], ["abc", "is not a size"], ["-1", "is negative"], ["", "is not a size"], ["1.2.3MB", "is not a size"]]) {
      expect(() => parseSize(s)).toThrow(ConfigError);
      expect(() => parseSize(s)).toThrow(phrase);
    }
  });
});

describe("describeConfig", () => {
  it("masks every secret and the Redis password, and keeps everything else", () => {
    const redis = "rediss://admin:hunter2hunter2@cache:6380/1";
    const { config } = parseCli(
      ["serve", "--ingest-keys", `${KEY_A},${KEY_B}`, "--read-tokens", TOKEN_R, "--admin-token", TOKEN_ADMIN, "--redis-url", redis],
      {},
      FIXED,
    );
    const d = describeConfig(config);
    const text = JSON.stringify(d);
    for (const secret of [KEY_A, KEY_B, TOKEN_R, TOKEN_ADMIN, "hunter2hunter2"]) expect(text).not.toContain(secret);
    expect(d.ingestKeys).toEqual(["<redacted>", "<redacted>"]);
    expect(d.readTokens).toEqual(["<redacted>"]);
    expect(d.adminToken).toBe("<redacted>");
    expect(d.redisUrl).toBe("rediss://admin:<redacted>@cache:6380/1");
    expect(d.port).toBe(8080);
    expect(d.retention).toEqual({ "1s": 24 * H, "1m": 30 * D, "1h": 400 * D });
    // the config itself keeps the real values for the server to use
    expect(config.adminToken).toBe(TOKEN_ADMIN);
    expect(config.redisUrl).toBe(redis);
  });

  it("masks the producer's ingest key and leaves unset secrets null", () => {
    const d = describeConfig(parse(["produce", "--ingest-key", KEY_A]));
    expect((d.produce as { ingestKey: unknown }).ingestKey).toBe("<redacted>");
    expect(JSON.stringify(d)).not.toContain(KEY_A);
    expect(describeConfig(parse(["serve"])).adminToken).toBeNull();
  });
});

describe("usage", () => {
  const text = usage();

  it("lists every option with its environment variable and default", () => {
    const lines = text.split("\n");
    for (const flag of ALL_FLAGS) {
      const at = lines.findIndex((l) => l.trimStart().startsWith(`--${flag} `));
      expect([flag, at >= 0]).toEqual([flag, true]);
      expect(lines[at]).toContain(envOf(flag));
      expect(lines[at + 1]).toContain("Default: ");
    }
  });

  it("shows the documented defaults", () => {
    for (const d of ["Default: 8080", "Default: 0.0.0.0", "Default: ./data", "Default: 5s", "Default: 60s", "Default: 30m",
      "Default: 1s=24h,1m=30d,1h=400d", "Default: USD", "Default: rtae.events", "Default: rtae:", "Default: 16MiB",
      "Default: 100000", "Default: info", "Default: http://127.0.0.1:8080", "Default: 1000", "Default: 500",
      "Default: 10000", "Default: 100000", "Default: 10m", "Default: 10s", "Default: 1s", "Default: random per run"]) {
      expect(text).toContain(d);
    }
  });

  it("lists the commands", () => {
    for (const c of ["rtae serve", "rtae produce", "rtae migrate", "rtae version", "--help"]) expect(text).toContain(c);
  });

  it("shows defaults that parse to the values actually used", () => {
    const base = parse(["serve"]);
    const produce = parse(["produce"]);
    for (const o of listOptions()) {
      if (o.defaultText === "" || /unset|unlimited|random|CPUs/.test(o.defaultText)) continue;
      const cmd = commandFor(o.flag.slice(2));
      const withFlag = parse([cmd, `${o.flag}=${o.defaultText}`]);
      expect([o.flag, withFlag]).toEqual([o.flag, cmd === "serve" ? base : produce]);
    }
  });
});
