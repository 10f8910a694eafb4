// Command line and RTAE_* environment configuration (DESIGN §6): one option table drives parsing, validation and --help.
// Every value, defaults included, is a string that goes through the same parser; Config is plain frozen data so it can cross into Workers.

import { isIP } from "node:net";
import { availableParallelism } from "node:os";

/** Invalid command line or environment; `issues` holds one line per problem, secrets never included. */
export class ConfigError extends Error {
  readonly code = "config_invalid";
  readonly issues: readonly string[];
  constructor(issues: readonly string[]) {
    super(
      issues.length === 1
        ? issues[0]
        : `${issues.length} configuration problems:\n${issues.map((i) => `  - ${i}`).join("\n")}`,
    );
    this.name = "ConfigError";
    this.issues = Object.freeze([...issues]);
  }
}

export type Command = "serve" | "produce" | "migrate" | "version" | "help";
export type LogLevel = "debug" | "info" | "warn" | "error";
/** How long windows of each resolution are kept, in ms. */
export interface Retention {
  readonly "1s": number;
  readonly "1m": number;
  readonly "1h": number;
}

/** Shape of synthetic traffic: `serve --demo-rate` and `produce`. */
export interface TrafficConfig {
  readonly products: number;
  readonly users: number;
  readonly bursts: boolean;
  readonly diurnal: boolean;
}

export interface ProduceConfig {
  /** base URL of an rtae (no trailing slash), or "-" for NDJSON on stdout */
  readonly target: string;
  /** events per second */
  readonly rate: number;
  /** stop after this many events; null = unlimited */
  readonly count: number | null;
  /** stop after this long; null = unlimited */
  readonly durationMs: number | null;
  readonly batchSize: number;
  /** bearer token; secret */
  readonly ingestKey: string | null;
}

/** The whole configuration; durations in ms, sizes in bytes. Log it through `describeConfig`. */
export interface Config {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly workers: number;
  readonly partitions: number;
  readonly outOfOrdernessMs: number;
  readonly allowedLatenessMs: number;
  readonly sessionGapMs: number;
  readonly retention: Retention;
  readonly currency: string;
  /** synthetic events/s generated inside `serve`; 0 = off */
  readonly demoRate: number;
  /** null = embedded local log */
  readonly kafkaBrokers: readonly string[] | null;
  /** null = in-memory hot cache; may carry a password */
  readonly redisUrl: string | null;
  /** null = embedded bun:sqlite history */
  readonly cassandraContactPoints: readonly string[] | null;
  readonly kafkaTopic: string;
  readonly consumerGroup: string;
  readonly cassandraKeyspace: string;
  /** consistency of every Cassandra read and write */
  readonly cassandraConsistency: "LOCAL_ONE" | "LOCAL_QUORUM" | "QUORUM" | "ONE" | "ALL";
  /** CQL replication map used by `migrate` when it creates the keyspace */
  readonly cassandraReplication: string;
  readonly cassandraDatacenter: string;
  readonly redisPrefix: string;
  /** empty = ingest needs no key; secret */
  readonly ingestKeys: readonly string[];
  /** empty = reads need no token; secret */
  readonly readTokens: readonly string[];
  /** secret */
  readonly adminToken: string | null;
  /** JSON file of alert rules (--alert-rules); null = no rules from a file */
  readonly alertRulesPath: string | null;
  /** webhook of alert rules that name none; may carry a secret in its path or query */
  readonly alertWebhookUrl: string | null;
  /** alert webhooks may target loopback, link-local and private addresses (off: SSRF guard) */
  readonly alertAllowPrivate: boolean;
  readonly checkpointIntervalMs: number;
  readonly idleTimeoutMs: number;
  readonly dedupeHorizonMs: number;
  readonly maxBodyBytes: number;
  /** bytes all request bodies being received at once may hold together */
  readonly maxInflightBodyBytes: number;
  /** take the client address from X-Forwarded-For (only behind a proxy that sets it) */
  readonly trustProxy: boolean;
  readonly maxEventsPerRequest: number;
  readonly logLevel: LogLevel;
  /** uint32; random per run unless given */
  readonly seed: number;
  readonly traffic: TrafficConfig;
  readonly produce: ProduceConfig;
}

/** Injectable machine facts, so defaults are testable. */
export interface ConfigContext {
  cpuCount?: number;
  /** uniform in [0, 1); picks the seed when none is given */
  random?: () => number;
}

export interface ParseResult {
  command: Command;
  config: Config;
  /** problems that do not stop the start (unknown RTAE_* variables, idle workers, ignored options) */
  warnings: string[];
}

const REDACTED = "<redacted>";
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const UINT32_MAX = 4_294_967_295;

// ---------------------------------------------------------------------------------------------
// Value parsers. They throw Invalid with a phrase that reads after the quoted value:
// `"80a" is not a port number (1-65535)`, so the caller adds the flag, env var and value.

class Invalid extends Error {}
function fail(phrase: string): never {
  throw new Invalid(phrase);
}

/** Whole number with optional `_` separators (as in `100_000`), or undefined if it is not one. */
function wholeOf(raw: string): number | undefined {
  if (!/^\+?\d+(?:_\d+)*$/.test(raw)) return undefined;
  return Number(raw.replace(/[_+]/g, ""));
}

function intIn(min: number, max: number): (raw: string) => number {
  const range = max >= Number.MAX_SAFE_INTEGER ? `at least ${min}` : `${min}-${max}`;
  return (raw) => {
    const n = wholeOf(raw);
    if (n === undefined) fail(`is not a whole number (expected ${range})`);
    if (!Number.isSafeInteger(n) || n < min || n > max) fail(`is out of range (expected ${range})`);
    return n;
  };
}

function optionalIntIn(min: number, max: number): (raw: string) => number | null {
  const parse = intIn(min, max);
  return (raw) => (raw.toLowerCase() === "unlimited" ? null : parse(raw));
}

function rateIn(min: number, max: number, minInclusive: boolean): (raw: string) => number {
  const range = `${minInclusive ? "at least" : "more than"} ${min} and at most ${max} events/s`;
  return (raw) => {
    if (!/^\+?\d+(?:_\d+)*(?:\.\d+)?$/.test(raw)) fail(`is not a rate (expected a number of events/s, ${range})`);
    const n = Number(raw.replace(/[_+]/g, ""));
    if (minInclusive ? n < min : n <= min) fail(`is out of range (expected ${range})`);
    if (n > max) fail(`is out of range (expected ${range})`);
    return n;
  };
}

function portOf(raw: string): number {
  const n = wholeOf(raw);
  if (n === undefined || n < 1 || n > 65535) fail("is not a port number (1-65535)");
  return n;
}

function boolOf(raw: string): boolean {
  const v = raw.toLowerCase();
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  return fail("is not a boolean (expected true, false, 1 or 0)");
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: SECOND, m: MINUTE, h: HOUR, d: DAY };
const DURATION_EXAMPLE = "expected e.g. 250ms, 5s, 30m, 24h, 400d, or whole milliseconds";

function durationOf(raw: string): number {
  const s = raw.trim();
  if (s.startsWith("-")) fail(`is negative (${DURATION_EXAMPLE})`);
  const plain = wholeOf(s);
  if (plain !== undefined) {
    if (!Number.isSafeInteger(plain)) fail("is too large");
    return plain;
  }
  // One or more number+unit parts ("1h30m"); fractions must land on whole milliseconds.
  const part = /\s*(\d+)(?:\.(\d{1,6}))?\s*(ms|s|m|h|d)\s*/y;
  if (s.length === 0) fail(`is not a duration (${DURATION_EXAMPLE})`);
  let total = 0;
  let at = 0;
  while (at < s.length) {
    part.lastIndex = at;
    const m = part.exec(s);
    if (m === null) fail(`is not a duration (${DURATION_EXAMPLE})`);
    const unit = DURATION_UNITS[m[3]];
    const frac = m[2] ?? "";
    const fracScaled = frac === "" ? 0 : Number(frac) * unit;
    const fracDiv = 10 ** frac.length;
    if (fracScaled % fracDiv !== 0) fail("is finer than a millisecond");
    total += Number(m[1]) * unit + fracScaled / fracDiv;
    at = part.lastIndex;
  }
  if (!Number.isSafeInteger(total)) fail("is too large");
  return total;
}

function durationIn(min: number, max: number): (raw: string) => number {
  const range =
    max >= Number.MAX_SAFE_INTEGER ? `at least ${formatDuration(min)}` : `${formatDuration(min)} to ${formatDuration(max)}`;
  return (raw) => {
    const ms = durationOf(raw);
    if (ms < min || ms > max) fail(`is out of range (expected ${range})`);
    return ms;
  };
}

function optionalDurationIn(min: number, max: number): (raw: string) => number | null {
  const parse = durationIn(min, max);
  return (raw) => (raw.toLowerCase() === "unlimited" ? null : parse(raw));
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

function sizeOf(raw: string): number {
  const m = /^(\d+(?:_\d+)*)(?:\.(\d{1,6}))?\s*([a-zA-Z]*)$/.exec(raw.trim());
  if (m === null) {
    if (raw.trim().startsWith("-")) fail("is negative (expected a size like 16MiB, 1MB or 4096)");
    fail("is not a size (expected e.g. 16MiB, 512KiB, 1MB, or a number of bytes)");
  }
  const unit = SIZE_UNITS[m[3].toLowerCase()];
  if (unit === undefined) fail(`has an unknown unit "${m[3]}" (expected B, KB, MB, GB, KiB, MiB or GiB)`);
  const frac = m[2] ?? "";
  // Sizes round down to whole bytes; "1.1KiB" is a fine way to say 1126.
  const bytes = Number(m[1].replace(/_/g, "")) * unit + Math.floor((Number(frac || "0") * unit) / 10 ** frac.length);
  if (!Number.isSafeInteger(bytes)) fail("is too large");
  return bytes;
}

function sizeIn(min: number, max: number): (raw: string) => number {
  return (raw) => {
    const n = sizeOf(raw);
    if (n < min || n > max) fail(`is out of range (expected ${formatSize(min)} to ${formatSize(max)})`);
    return n;
  };
}

const RESOLUTION_MS: Retention = { "1s": SECOND, "1m": MINUTE, "1h": HOUR };
const DEFAULT_RETENTION: Retention = { "1s": 24 * HOUR, "1m": 30 * DAY, "1h": 400 * DAY };
type Resolution = keyof Retention;

function retentionOf(raw: string): Retention {
  const out: Record<Resolution, number> = { ...DEFAULT_RETENTION };
  const seen = new Set<string>();
  for (const piece of raw.split(",")) {
    const entry = piece.trim();
    if (entry === "") fail("has an empty entry (expected e.g. 1s=24h,1m=30d,1h=400d)");
    const eq = entry.indexOf("=");
    if (eq < 0) fail(`has "${entry}" without "=" (expected resolution=duration, e.g. 1s=24h)`);
    const res = entry.slice(0, eq).trim();
    const dur = entry.slice(eq + 1).trim();
    if (!Object.hasOwn(RESOLUTION_MS, res)) fail(`has an unknown resolution "${res}" (expected 1s, 1m or 1h)`);
    if (seen.has(res)) fail(`gives the ${res} retention twice`);
    seen.add(res);
    let ms: number;
    try {
      ms = durationOf(dur);
    } catch (e) {
      if (e instanceof Invalid) fail(`has a ${res} retention "${dur}" that ${e.message}`);
      throw e;
    }
    const r = res as Resolution;
    if (ms < RESOLUTION_MS[r]) fail(`keeps ${res} windows for ${dur}, less than one ${res} window`);
    out[r] = ms;
  }
  // Queries fall back to coarser rollups for older ranges, so coarser data must outlive finer data.
  if (out["1s"] > out["1m"] || out["1m"] > out["1h"]) {
    fail(
      `keeps 1s=${formatDuration(out["1s"])}, 1m=${formatDuration(out["1m"])}, 1h=${formatDuration(out["1h"])}; ` +
        "each coarser resolution must be kept at least as long as the finer ones",
    );
  }
  return out;
}

const HOSTNAME = /^(?=.{1,253}\.?$)[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?(?:\.[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?)*\.?$/;

function isHost(h: string): boolean {
  return isIP(h) !== 0 || HOSTNAME.test(h);
}

function hostOf(raw: string): string {
  const h = raw.startsWith("[") && raw.endsWith("]") ? raw.slice(1, -1) : raw;
  if (h.includes("://")) fail("is a URL; give only the host (e.g. 0.0.0.0) and the port in --port");
  if (/^[^:]+:\d+$/.test(h)) fail("includes a port; give the port in --port");
  if (!isHost(h)) fail("is not a host name or IP address (e.g. 0.0.0.0, 127.0.0.1, ::, localhost)");
  return h;
}

/** "host:port" or "[v6]:port"; brackets are required for IPv6 so the port is unambiguous. */
function endpointOf(entry: string, example: string, portRequired: boolean): string {
  let host: string;
  let port: string | undefined;
  if (entry.startsWith("[")) {
    const end = entry.indexOf("]");
    if (end < 0) fail(`has "${entry}" with an unclosed "[" (expected e.g. [::1]:${example.split(":")[1]})`);
    host = entry.slice(1, end);
    const rest = entry.slice(end + 1);
    if (rest !== "" && !rest.startsWith(":")) fail(`has "${entry}", which is not host:port`);
    if (rest !== "") port = rest.slice(1);
    if (isIP(host) !== 6) fail(`has "${entry}", whose bracketed part is not an IPv6 address`);
  } else {
    const colons = entry.split(":").length - 1;
    if (colons > 1) fail(`has "${entry}"; write IPv6 addresses in brackets, e.g. [::1]:${example.split(":")[1]}`);
    [host, port] = colons === 1 ? (entry.split(":") as [string, string]) : [entry, undefined];
    if (!isHost(host)) fail(`has "${entry}", which is not host:port (e.g. ${example})`);
  }
  if (port === undefined) {
    if (portRequired) fail(`has "${entry}" without a port (expected host:port, e.g. ${example})`);
  } else {
    const n = wholeOf(port);
    if (n === undefined || n < 1 || n > 65535) fail(`has "${entry}" with an invalid port (expected 1-65535)`);
  }
  return entry;
}

function listOf<T>(raw: string, item: (entry: string, index: number, count: number) => T): T[] {
  const entries = raw.split(",").map((e) => e.trim());
  return entries.map((e, i) => {
    if (e === "") fail(`has an empty entry (entry ${i + 1} of ${entries.length})`);
    return item(e, i, entries.length);
  });
}

function endpointsOf(example: string, portRequired: boolean): (raw: string) => string[] {
  return (raw) => [...new Set(listOf(raw, (e) => endpointOf(e, example, portRequired)))];
}

const MIN_SECRET = 16;
const MAX_SECRET = 256;

/** Secrets travel in Authorization headers: printable ASCII, no spaces, no commas (they separate keys). */
function secretProblem(s: string): string | undefined {
  if (s.length < MIN_SECRET) return `shorter than ${MIN_SECRET} characters`;
  if (s.length > MAX_SECRET) return `longer than ${MAX_SECRET} characters`;
  if (!/^[\x21-\x7e]+$/.test(s)) return "not printable ASCII without spaces";
  return undefined;
}
const SECRET_RULE = `${MIN_SECRET}-${MAX_SECRET} printable ASCII characters, no spaces`;

function secretListOf(raw: string): string[] {
  const keys = listOf(raw, (k, i, n) => {
    const problem = secretProblem(k);
    if (problem !== undefined) fail(`has a key that is ${problem} (key ${i + 1} of ${n}; each key needs ${SECRET_RULE})`);
    return k;
  });
  return [...new Set(keys)];
}

function secretOf(raw: string): string {
  const problem = secretProblem(raw);
  if (problem !== undefined) fail(`is ${problem} (expected ${SECRET_RULE})`);
  return raw;
}

function maskUrl(raw: string): string {
  return raw.replace(/^([a-zA-Z][\w+.-]*:\/\/)([^@/?#]*)@/, (_, scheme: string, user: string) => {
    const colon = user.indexOf(":");
    return `${scheme}${colon < 0 ? REDACTED : `${user.slice(0, colon)}:${REDACTED}`}@`;
  });
}

function redisUrlOf(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return fail("is not a URL (expected redis://host:6379 or rediss://host:6380)");
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") fail("is not a redis:// or rediss:// URL");
  if (u.hostname === "") fail("has no host (expected redis://host:6379)");
  if (u.pathname !== "" && u.pathname !== "/" && wholeOf(u.pathname.slice(1)) === undefined) {
    fail("has a path that is not a database number (expected e.g. redis://host:6379/0)");
  }
  return raw;
}

function targetOf(raw: string): string {
  if (raw === "-") return "-";
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return fail("is not a URL (expected e.g. http://127.0.0.1:8080, or - for NDJSON on stdout)");
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    if (/^[\w.-]+:\d+/.test(raw)) fail(`is missing the scheme (expected e.g. http://${raw})`);
    fail("is not an http:// or https:// URL (or - for NDJSON on stdout)");
  }
  if (u.username !== "" || u.password !== "") fail("carries credentials; pass the key with --ingest-key");
  if (u.search !== "" || u.hash !== "") fail("has a query or fragment; give the base URL of an rtae");
  // Accept the endpoint pasted whole: the producer appends /api/events itself.
  let path = u.pathname.replace(/\/+$/, "");
  if (path.endsWith("/api/events")) path = path.slice(0, -"/api/events".length);
  return `${u.protocol}//${u.host}${path}`;
}

function currencyOf(raw: string): string {
  if (!/^[a-zA-Z]{3}$/.test(raw)) fail("is not a currency code (expected 3 letters, e.g. USD, EUR)");
  return raw.toUpperCase();
}

const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
const CONSISTENCIES = ["LOCAL_ONE", "LOCAL_QUORUM", "QUORUM", "ONE", "ALL"] as const;
function consistencyOf(raw: string): (typeof CONSISTENCIES)[number] {
  const v = raw.toUpperCase() as (typeof CONSISTENCIES)[number];
  if (!CONSISTENCIES.includes(v)) fail(`is not a consistency level (expected ${CONSISTENCIES.join(", ")})`);
  return v;
}

function replicationOf(raw: string): string {
  const v = raw.trim();
  // passed into CREATE KEYSPACE as it is: a single CQL map literal, nothing else
  if (!/^\{[^;{}]*'class'\s*:\s*'[A-Za-z.]+'[^;{}]*\}$/.test(v))
    fail("is not a CQL replication map (expected e.g. {'class': 'NetworkTopologyStrategy', 'dc1': 3})");
  return v;
}

function datacenterOf(raw: string): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(raw)) fail("is not a data center name (letters, digits, _ . -)");
  return raw;
}

function logLevelOf(raw: string): LogLevel {
  const v = raw.toLowerCase() as LogLevel;
  if (!LOG_LEVELS.includes(v)) fail("is not a log level (expected debug, info, warn or error)");
  return v;
}

function dataDirOf(raw: string): string {
  if (raw.includes("\0")) fail("contains a NUL character");
  return raw;
}

function kafkaTopicOf(raw: string): string {
  // The dead-letter topic is `<topic>.dlq`, and Kafka caps names at 249 characters.
  if (!/^[a-zA-Z0-9._-]+$/.test(raw)) fail("is not a Kafka topic name (letters, digits, '.', '_', '-')");
  if (raw === "." || raw === "..") fail("is not a Kafka topic name");
  if (raw.length > 245) fail("is longer than 245 characters (the dead-letter topic adds .dlq; Kafka allows 249)");
  return raw;
}

function consumerGroupOf(raw: string): string {
  if (!/^[\x21-\x7e]{1,255}$/.test(raw)) fail("is not a consumer group id (1-255 printable characters, no spaces)");
  return raw;
}

const CQL_RESERVED = new Set(
  ("add allow alter and apply asc authorize batch begin by columnfamily create delete desc describe drop " +
    "entries execute from full grant if in index infinity insert into is keyspace limit materialized modify nan " +
    "mbean mbeans norecursive not null of on or order primary rename replace revoke schema select set table to " +
    "token truncate unlogged unset update use using view where with").split(" "),
);

function keyspaceOf(raw: string): string {
  if (!/^[a-zA-Z][a-zA-Z0-9_]{0,47}$/.test(raw)) {
    fail("is not a CQL identifier (a letter, then up to 47 letters, digits or '_')");
  }
  // Unquoted CQL identifiers are case-insensitive; the lower-case form is the one Cassandra stores.
  const k = raw.toLowerCase();
  if (CQL_RESERVED.has(k)) fail("is a reserved CQL keyword");
  if (k === "system" || k.startsWith("system_")) fail("is a Cassandra system keyspace name");
  return k;
}

function redisPrefixOf(raw: string): string {
  // Glob characters would turn SCAN and PSUBSCRIBE patterns built from the prefix into wildcards.
  if (!/^[\x21-\x7e]{1,64}$/.test(raw)) fail("is not a key prefix (1-64 printable characters, no spaces)");
  if (/[*?[\]\\]/.test(raw)) fail("contains a glob character (* ? [ ] \\)");
  return raw;
}

function alertRulesPathOf(raw: string): string {
  if (raw.includes("\0")) fail("contains a NUL character");
  return raw;
}

function webhookUrlOf(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return fail("is not a URL (expected e.g. https://hooks.example.com/rtae)");
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") fail("is not an http:// or https:// URL");
  if (u.hash !== "") fail("has a #fragment");
  return raw;
}

// ---------------------------------------------------------------------------------------------
// The option table.

type Scope = "serve" | "migrate" | "produce";
type Section = "engine" | "common" | "traffic" | "produce";
const SECTION_SCOPES: Record<Section, readonly Scope[]> = {
  engine: ["serve", "migrate"],
  common: ["serve", "migrate", "produce"],
  traffic: ["serve", "produce"],
  produce: ["produce"],
};
const SECTION_TITLE: Record<Section, string> = {
  engine: "Engine options (serve, migrate)",
  common: "Common options (serve, migrate, produce)",
  traffic: "Synthetic traffic (serve --demo-rate, produce)",
  produce: "Producer options (produce)",
};

interface SpecInput<T> {
  /** without the leading dashes */
  flag: string;
  section: Section;
  /** commands beyond its section's that take it too */
  also?: readonly Scope[];
  /** value placeholder in help; empty for booleans */
  hint: string;
  help: string;
  /** shown in help when the default is not a fixed string */
  defaultText?: string;
  secret?: boolean;
  boolean?: boolean;
  /** an empty value ("--redis-url=") means unset, so a flag can switch an env setting back to embedded */
  emptyIsUnset?: boolean;
  parse: (raw: string) => T;
}
interface Spec<T> extends SpecInput<T> {
  readonly env: string;
  readonly defaultRaw?: string;
}
type DefaultedSpec<T> = Spec<T> & { readonly defaultRaw: string };

const envName = (flag: string): string => `RTAE_${flag.toUpperCase().replace(/-/g, "_")}`;
function withDefault<T>(defaultRaw: string, s: SpecInput<T>): DefaultedSpec<T> {
  return { ...s, env: envName(s.flag), defaultRaw };
}
function noDefault<T>(defaultText: string, s: SpecInput<T>): Spec<T> {
  return { ...s, env: envName(s.flag), defaultText };
}

const S = {
  port: withDefault("8080", {
    flag: "port", section: "engine", hint: "<port>",
    help: "HTTP port to listen on (1-65535)",
    parse: portOf,
  }),
  host: withDefault("0.0.0.0", {
    flag: "host", section: "engine", hint: "<host>",
    help: "address to listen on",
    parse: hostOf,
  }),
  dataDir: withDefault("./data", {
    flag: "data-dir", section: "engine", hint: "<dir>",
    help: "directory for the local log, history and checkpoints",
    parse: dataDirOf,
  }),
  workers: noDefault("CPUs - 1, at least 1, at most 4", {
    flag: "workers", section: "engine", hint: "<n>",
    help: "decode/validate workers (1-64)",
    parse: intIn(1, 64),
  }),
  partitions: withDefault("8", {
    flag: "partitions", section: "engine", also: ["produce"], hint: "<n>",
    help: "log partitions (1-1024)",
    parse: intIn(1, 1024),
  }),
  outOfOrderness: withDefault("5s", {
    flag: "out-of-orderness", section: "engine", hint: "<duration>",
    help: "watermark = max event time minus this (0-7d, at most --allowed-lateness)",
    parse: durationIn(0, 7 * DAY),
  }),
  allowedLateness: withDefault("60s", {
    flag: "allowed-lateness", section: "engine", hint: "<duration>",
    help: "events this far behind the watermark still update their windows (with --out-of-orderness, at most the 1s retention)",
    parse: durationIn(0, 400 * DAY),
  }),
  sessionGap: withDefault("30m", {
    flag: "session-gap", section: "engine", hint: "<duration>",
    help: "a session closes after this much event-time silence (1s-24h)",
    parse: durationIn(SECOND, DAY),
  }),
  retention: withDefault("1s=24h,1m=30d,1h=400d", {
    flag: "retention", section: "engine", hint: "<res=dur,...>",
    help: "how long windows of each resolution are kept; a partial list overrides only its resolutions",
    parse: retentionOf,
  }),
  demoRate: withDefault("0", {
    flag: "demo-rate", section: "engine", hint: "<events/s>",
    help: "synthetic traffic generated inside serve, 0 = off (at most 1000000)",
    parse: rateIn(0, 1_000_000, true),
  }),
  kafkaBrokers: noDefault("unset = embedded local log", {
    flag: "kafka-brokers", section: "engine", also: ["produce"], hint: "<host:port,...>", emptyIsUnset: true,
    help: "Kafka bootstrap brokers (produce: write to the topic directly instead of --target)",
    parse: endpointsOf("localhost:9092", true),
  }),
  redisUrl: noDefault("unset = in-memory hot cache", {
    flag: "redis-url", section: "engine", hint: "<url>", emptyIsUnset: true,
    help: "redis:// or rediss:// URL of the shared hot cache",
    parse: redisUrlOf,
  }),
  cassandraContactPoints: noDefault("unset = embedded bun:sqlite history", {
    flag: "cassandra-contact-points", section: "engine", hint: "<host[:port],...>", emptyIsUnset: true,
    help: "Cassandra contact points",
    parse: endpointsOf("localhost:9042", false),
  }),
  kafkaTopic: withDefault("rtae.events", {
    flag: "kafka-topic", section: "engine", also: ["produce"], hint: "<topic>",
    help: "event topic; dead letters go to <topic>.dlq",
    parse: kafkaTopicOf,
  }),
  consumerGroup: withDefault("rtae", {
    flag: "consumer-group", section: "engine", hint: "<id>",
    help: "Kafka consumer group shared by all instances",
    parse: consumerGroupOf,
  }),
  cassandraKeyspace: withDefault("rtae", {
    flag: "cassandra-keyspace", section: "engine", hint: "<name>",
    help: "Cassandra keyspace (a CQL identifier)",
    parse: keyspaceOf,
  }),
  cassandraConsistency: withDefault("LOCAL_QUORUM", {
    flag: "cassandra-consistency", section: "engine", hint: "<level>",
    help: "consistency of every read and write: LOCAL_ONE, LOCAL_QUORUM, QUORUM, ONE or ALL",
    parse: consistencyOf,
  }),
  cassandraReplication: withDefault("{'class': 'SimpleStrategy', 'replication_factor': 1}", {
    flag: "cassandra-replication", section: "engine", hint: "<cql map>",
    help: "replication of the keyspace migrate creates",
    parse: replicationOf,
  }),
  cassandraDatacenter: withDefault("datacenter1", {
    flag: "cassandra-datacenter", section: "engine", hint: "<name>",
    help: "local data center of the Cassandra driver",
    parse: datacenterOf,
  }),
  redisPrefix: withDefault("rtae:", {
    flag: "redis-prefix", section: "engine", hint: "<prefix>",
    help: "prefix of every Redis key and channel",
    parse: redisPrefixOf,
  }),
  ingestKeys: noDefault("unset = ingest needs no key", {
    flag: "ingest-keys", section: "engine", hint: "<key,...>", secret: true, emptyIsUnset: true,
    help: `keys accepted by POST /api/events, each at least ${MIN_SECRET} characters`,
    parse: secretListOf,
  }),
  readTokens: noDefault("unset = reads need no token", {
    flag: "read-tokens", section: "engine", hint: "<token,...>", secret: true, emptyIsUnset: true,
    help: `tokens accepted by the read API, stream and dashboard, each at least ${MIN_SECRET} characters`,
    parse: secretListOf,
  }),
  adminToken: noDefault("unset = admin endpoints off", {
    flag: "admin-token", section: "engine", hint: "<token>", secret: true, emptyIsUnset: true,
    help: `token for admin endpoints, at least ${MIN_SECRET} characters`,
    parse: secretOf,
  }),
  alertRules: noDefault("unset = no rules from a file", {
    flag: "alert-rules", section: "engine", hint: "<file.json>", emptyIsUnset: true,
    help: "JSON file of alert rules evaluated on each closed window, validated at start (rules can also be managed through /api/alerts/rules)",
    parse: alertRulesPathOf,
  }),
  alertWebhookUrl: noDefault("unset = such rules only record their alerts", {
    flag: "alert-webhook-url", section: "engine", hint: "<url>", secret: true, emptyIsUnset: true,
    help: "webhook (http or https) that alert rules without their own webhook notify",
    parse: webhookUrlOf,
  }),
  alertAllowPrivate: withDefault("false", {
    flag: "alert-allow-private", section: "engine", hint: "", boolean: true,
    help: "let alert webhooks target loopback, link-local (cloud metadata) and private network addresses, refused by default",
    parse: boolOf,
  }),
  checkpointInterval: withDefault("1s", {
    flag: "checkpoint-interval", section: "engine", hint: "<duration>",
    help: "how often window state and offsets are made durable (10ms-10m)",
    parse: durationIn(10, 10 * MINUTE),
  }),
  idleTimeout: withDefault("10s", {
    flag: "idle-timeout", section: "engine", hint: "<duration>",
    help: "a partition without events for this long stops holding the watermark back (100ms-24h)",
    parse: durationIn(100, DAY),
  }),
  dedupeHorizon: withDefault("10m", {
    flag: "dedupe-horizon", section: "engine", hint: "<duration>",
    help: "event-time span over which duplicate eventIds are dropped (10m-7d, at least out-of-orderness + allowed lateness)",
    parse: durationIn(10 * MINUTE, 7 * DAY),
  }),
  maxBodyBytes: withDefault("16MiB", {
    flag: "max-body-bytes", section: "engine", hint: "<size>",
    help: "largest accepted request body (1KiB-1GiB)",
    parse: sizeIn(1024, 1024 ** 3),
  }),
  maxInflightBodyBytes: withDefault("64MiB", {
    flag: "max-inflight-body-bytes", section: "engine", hint: "<size>",
    help: "bytes all request bodies being received at once may hold; past it a request gets 503 with Retry-After (1MiB-16GiB, at least --max-body-bytes)",
    parse: sizeIn(1024 ** 2, 16 * 1024 ** 3),
  }),
  trustProxy: withDefault("false", {
    flag: "trust-proxy", section: "engine", hint: "", boolean: true,
    help: "take the client address (rate limits) from the first X-Forwarded-For entry; only behind a proxy that sets it",
    parse: boolOf,
  }),
  maxEventsPerRequest: withDefault("100000", {
    flag: "max-events-per-request", section: "engine", hint: "<n>",
    help: "most events in one POST /api/events (1-1000000)",
    parse: intIn(1, 1_000_000),
  }),
  currency: withDefault("USD", {
    flag: "currency", section: "common", hint: "<code>",
    help: "reporting currency, 3 letters",
    parse: currencyOf,
  }),
  logLevel: withDefault("info", {
    flag: "log-level", section: "common", hint: "<level>",
    help: "debug, info, warn or error",
    parse: logLevelOf,
  }),
  seed: noDefault("random per run", {
    flag: "seed", section: "traffic", hint: "<n>",
    help: `random seed of the generator (0-${UINT32_MAX}); the same seed gives the same events`,
    parse: intIn(0, UINT32_MAX),
  }),
  products: withDefault("10000", {
    flag: "products", section: "traffic", hint: "<n>",
    help: "distinct products (1-1000000)",
    parse: intIn(1, 1_000_000),
  }),
  users: withDefault("100000", {
    flag: "users", section: "traffic", hint: "<n>",
    help: "distinct users (1-10000000)",
    parse: intIn(1, 10_000_000),
  }),
  bursts: withDefault("false", {
    flag: "bursts", section: "traffic", hint: "", boolean: true,
    help: "add flash-sale bursts",
    parse: boolOf,
  }),
  noDiurnal: withDefault("false", {
    flag: "no-diurnal", section: "traffic", hint: "", boolean: true,
    help: "flat traffic instead of a day/night cycle",
    parse: boolOf,
  }),
  target: withDefault("http://127.0.0.1:8080", {
    flag: "target", section: "produce", hint: "<url|->",
    help: "base URL of an rtae, or - for NDJSON on stdout",
    parse: targetOf,
  }),
  rate: withDefault("1000", {
    flag: "rate", section: "produce", hint: "<events/s>",
    help: "events per second (more than 0, at most 1000000)",
    parse: rateIn(0, 1_000_000, false),
  }),
  count: noDefault("unlimited", {
    flag: "count", section: "produce", hint: "<n>", emptyIsUnset: true,
    help: "stop after this many events (whichever of --count and --duration comes first)",
    parse: optionalIntIn(1, Number.MAX_SAFE_INTEGER),
  }),
  duration: noDefault("unlimited", {
    flag: "duration", section: "produce", hint: "<duration>", emptyIsUnset: true,
    help: "stop after this long",
    parse: optionalDurationIn(1, Number.MAX_SAFE_INTEGER),
  }),
  batchSize: withDefault("500", {
    flag: "batch-size", section: "produce", hint: "<n>",
    help: "events per request (1-100000)",
    parse: intIn(1, 100_000),
  }),
  ingestKey: noDefault("unset = no Authorization header", {
    flag: "ingest-key", section: "produce", hint: "<key>", secret: true, emptyIsUnset: true,
    help: "sent as a bearer token",
    parse: secretOf,
  }),
} as const;

const SPECS: readonly Spec<unknown>[] = Object.values(S);
const BY_FLAG = new Map(SPECS.map((s) => [s.flag, s]));
const BY_ENV = new Map(SPECS.map((s) => [s.env, s]));
const COMMANDS: readonly Command[] = ["serve", "produce", "migrate", "version", "help"];

const scopesOf = (spec: Spec<unknown>): readonly Scope[] => [...SECTION_SCOPES[spec.section], ...(spec.also ?? [])];
const inScope = (spec: Spec<unknown>, command: Command): boolean => (scopesOf(spec) as readonly string[]).includes(command);
const label = (spec: Spec<unknown>): string => `--${spec.flag} (${spec.env})`;

/** The options table for docs and tests: flag, env var, commands, default. */
export function listOptions(): ReadonlyArray<{
  flag: string;
  env: string;
  commands: readonly string[];
  defaultText: string;
  secret: boolean;
  boolean: boolean;
}> {
  return SPECS.map((s) => ({
    flag: `--${s.flag}`,
    env: s.env,
    commands: scopesOf(s),
    defaultText: s.defaultRaw ?? s.defaultText ?? "",
    secret: s.secret === true,
    boolean: s.boolean === true,
  }));
}

// ---------------------------------------------------------------------------------------------
// Suggestions.

/** Optimal string alignment distance: a swapped pair of letters ("prot" for "port") costs one edit. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** Closest candidate by edit distance (at most a third of the word), or a unique prefix match. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestD = Math.max(1, Math.floor(w.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  if (best !== undefined) return best;
  const prefixed = candidates.filter((c) => w.length >= 3 && c.toLowerCase().startsWith(w));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

function unknownFlag(shown: string, name: string, command: Command | undefined): string {
  const candidates = SPECS.filter((s) => command === undefined || inScope(s, command)).map((s) => s.flag);
  const guess = closest(name, [...candidates, "help", "version"]);
  return `unknown option ${shown}${guess === undefined ? "" : ` (did you mean --${guess}?)`}`;
}

// ---------------------------------------------------------------------------------------------
// Parsing.

interface RawValue {
  value: string;
  from: "flag" | "env";
}

function showValue(spec: Spec<unknown>, raw: string): string {
  if (spec.secret === true) return REDACTED;
  const masked = maskUrl(raw);
  return JSON.stringify(masked.length > 80 ? `${masked.slice(0, 77)}...` : masked);
}

function defaultWorkers(cpuCount: number): number {
  return Math.min(4, Math.max(1, cpuCount - 1));
}

/**
 * Parse `rtae <command> [options]` with the RTAE_* environment; flags win over the environment.
 * Throws ConfigError listing every problem at once. `--help`/`-h` anywhere yields command "help".
 */
export function parseCli(argv: string[], env: Record<string, string | undefined>, ctx: ConfigContext = {}): ParseResult {
  const issues: string[] = [];
  let command: Command | undefined;
  let i = 0;
  const first = argv[0];
  if (first !== undefined && !first.startsWith("-")) {
    i = 1;
    if ((COMMANDS as readonly string[]).includes(first)) command = first as Command;
    else {
      const guess = closest(first, COMMANDS);
      issues.push(`unknown command "${first}"${guess === undefined ? "" : ` (did you mean ${guess}?)`}; expected serve, produce, migrate or version`);
    }
  }

  const flags = new Map<Spec<unknown>, string>();
  let wantHelp = command === "help" || first === undefined;
  let wantVersion = false;
  let previous: Spec<unknown> | undefined; // the option whose value the last token was, for stray-argument messages
  let previousBare = false; // the last token was a boolean flag without "="
  const stray = (tok: string): string => {
    if (previous?.secret === true) return `unexpected argument ${REDACTED} after ${label(previous)}`;
    const hint = previousBare && previous !== undefined && /^(true|false|1|0)$/i.test(tok) ? ` (write --${previous.flag}=${tok})` : "";
    return `unexpected argument ${JSON.stringify(tok)}${hint}`;
  };

  for (; i < argv.length; i++) {
    const tok = argv[i];
    const next = argv[i + 1];
    if (tok === "--help" || tok === "-h") {
      wantHelp = true;
      continue;
    }
    if (tok === "--version") {
      wantVersion = true;
      continue;
    }
    if (tok === "--") {
      for (const rest of argv.slice(i + 1)) issues.push(stray(rest));
      break;
    }
    if (tok.startsWith("-") && tok.length > 1) {
      const eq = tok.indexOf("=");
      const dashed = eq < 0 ? tok : tok.slice(0, eq);
      const name = dashed.replace(/^--?/, "");
      const spec = BY_FLAG.get(name);
      const consumeGuess = (): void => {
        // The word after an unknown option is most likely its value: skip it rather than echo it, it may be a secret.
        if (eq < 0 && next !== undefined && !next.startsWith("-")) i++;
      };
      if (!tok.startsWith("--")) {
        issues.push(spec !== undefined ? `unknown option ${dashed} (did you mean --${name}?)` : unknownFlag(dashed, name, command));
        consumeGuess();
        previous = undefined;
        continue;
      }
      if (spec === undefined) {
        issues.push(unknownFlag(dashed, name, command));
        consumeGuess();
        previous = undefined;
        continue;
      }
      let value: string;
      previousBare = false;
      if (eq >= 0) value = tok.slice(eq + 1);
      else if (spec.boolean === true) {
        value = "true";
        previousBare = true;
      } else if (next !== undefined && !next.startsWith("--")) value = argv[++i];
      else {
        issues.push(`${label(spec)}: needs a value, e.g. --${spec.flag} ${spec.defaultRaw ?? spec.hint}`);
        previous = undefined;
        continue;
      }
      previous = spec;
      if (command !== undefined && !inScope(spec, command)) {
        const where = scopesOf(spec).map((c) => `rtae ${c}`).join(", ");
        issues.push(`--${spec.flag} is not an option of \`rtae ${command}\` (it belongs to ${where})`);
        continue;
      }
      flags.set(spec, value);
      continue;
    }
    issues.push(stray(tok));
    previousBare = false; // `previous` stays: every word after a secret is treated as part of it
  }

  if (wantHelp) return { command: "help", config: defaultConfig(ctx), warnings: [] };
  if (wantVersion && issues.length === 0) return { command: "version", config: defaultConfig(ctx), warnings: [] };
  if (command === undefined && issues.length === 0) issues.push("missing command; expected serve, produce, migrate or version");
  if (command === undefined) throw new ConfigError(issues);
  if (command === "version") {
    if (issues.length > 0) throw new ConfigError(issues);
    return { command, config: defaultConfig(ctx), warnings: [] };
  }

  const warnings: string[] = [];
  const config = build(command, flags, env, ctx, issues, warnings);
  if (issues.length > 0) throw new ConfigError(issues);
  return { command, config, warnings };
}

/** Defaults only, as `rtae serve` would see them with no flags and an empty environment. */
export function defaultConfig(ctx: ConfigContext = {}): Config {
  const issues: string[] = [];
  const config = build(null, new Map(), {}, ctx, issues, []);
  if (issues.length > 0) throw new Error(`rtae: invalid built-in defaults: ${issues.join("; ")}`);
  return config;
}

function build(
  command: Command | null,
  flags: ReadonlyMap<Spec<unknown>, string>,
  env: Record<string, string | undefined>,
  ctx: ConfigContext,
  issues: string[],
  warnings: string[],
): Config {
  const failed = new Set<Spec<unknown>>();
  const active = (spec: Spec<unknown>): boolean => command !== null && inScope(spec, command);

  const rawOf = (spec: Spec<unknown>): RawValue | undefined => {
    if (!active(spec)) return undefined;
    const f = flags.get(spec);
    if (f !== undefined) return { value: f, from: "flag" };
    const e = env[spec.env];
    // An empty variable counts as unset: env files and compose templates leave them behind.
    return e === undefined || e.trim() === "" ? undefined : { value: e, from: "env" };
  };

  function get<T>(spec: DefaultedSpec<T>): T;
  function get<T>(spec: Spec<T>): T | undefined;
  function get<T>(spec: Spec<T>): T | undefined {
    const fallback = (): T | undefined => (spec.defaultRaw === undefined ? undefined : spec.parse(spec.defaultRaw));
    const raw = rawOf(spec);
    if (raw === undefined) return fallback();
    const text = raw.value.trim();
    const source = raw.from === "env" ? ` [set by ${spec.env}]` : "";
    if (text === "") {
      if (spec.emptyIsUnset === true) return undefined;
      failed.add(spec);
      issues.push(`${label(spec)}: is empty; expected ${spec.hint}, e.g. --${spec.flag} ${spec.defaultRaw ?? spec.hint}${source}`);
      return fallback();
    }
    try {
      return spec.parse(text);
    } catch (e) {
      if (!(e instanceof Invalid)) throw e;
      failed.add(spec);
      issues.push(`${label(spec)}: ${showValue(spec, text)} ${e.message}${source}`);
      return fallback();
    }
  }

  const cpuCount = ctx.cpuCount ?? availableParallelism();
  const random = ctx.random ?? Math.random;
  const workersGiven = get(S.workers);
  const count = get(S.count);
  const durationMs = get(S.duration);

  const config: Config = {
    port: get(S.port),
    host: get(S.host),
    dataDir: get(S.dataDir),
    workers: workersGiven ?? defaultWorkers(cpuCount),
    partitions: get(S.partitions),
    outOfOrdernessMs: get(S.outOfOrderness),
    allowedLatenessMs: get(S.allowedLateness),
    sessionGapMs: get(S.sessionGap),
    retention: get(S.retention),
    currency: get(S.currency),
    demoRate: get(S.demoRate),
    kafkaBrokers: get(S.kafkaBrokers) ?? null,
    redisUrl: get(S.redisUrl) ?? null,
    cassandraContactPoints: get(S.cassandraContactPoints) ?? null,
    kafkaTopic: get(S.kafkaTopic),
    consumerGroup: get(S.consumerGroup),
    cassandraKeyspace: get(S.cassandraKeyspace),
    cassandraConsistency: get(S.cassandraConsistency),
    cassandraReplication: get(S.cassandraReplication),
    cassandraDatacenter: get(S.cassandraDatacenter),
    redisPrefix: get(S.redisPrefix),
    ingestKeys: get(S.ingestKeys) ?? [],
    readTokens: get(S.readTokens) ?? [],
    adminToken: get(S.adminToken) ?? null,
    alertRulesPath: get(S.alertRules) ?? null,
    alertWebhookUrl: get(S.alertWebhookUrl) ?? null,
    alertAllowPrivate: get(S.alertAllowPrivate),
    checkpointIntervalMs: get(S.checkpointInterval),
    idleTimeoutMs: get(S.idleTimeout),
    dedupeHorizonMs: get(S.dedupeHorizon),
    maxBodyBytes: get(S.maxBodyBytes),
    maxInflightBodyBytes: get(S.maxInflightBodyBytes),
    trustProxy: get(S.trustProxy),
    maxEventsPerRequest: get(S.maxEventsPerRequest),
    logLevel: get(S.logLevel),
    seed: get(S.seed) ?? Math.floor(random() * (UINT32_MAX + 1)),
    traffic: {
      products: get(S.products),
      users: get(S.users),
      bursts: get(S.bursts),
      diurnal: !get(S.noDiurnal),
    },
    produce: {
      target: get(S.target),
      rate: get(S.rate),
      count: count ?? null,
      durationMs: durationMs ?? null,
      batchSize: get(S.batchSize),
      ingestKey: get(S.ingestKey) ?? null,
    },
  };

  if (command !== null) crossCheck(command, config, (s) => active(s) && !failed.has(s), workersGiven !== undefined, issues, warnings);
  if (command !== null) {
    for (const name of Object.keys(env)) {
      if (!name.startsWith("RTAE_") || BY_ENV.has(name)) continue;
      const guess = closest(name, [...BY_ENV.keys()]);
      warnings.push(`unknown environment variable ${name} is ignored${guess === undefined ? "" : ` (did you mean ${guess}?)`}`);
    }
  }
  return deepFreeze(config);
}

/** Rules that tie options together; each names every option involved so the fix is obvious. */
function crossCheck(
  command: Command,
  c: Config,
  ok: (s: Spec<unknown>) => boolean,
  workersGiven: boolean,
  issues: string[],
  warnings: string[],
): void {
  const d = formatDuration;
  const ooo = S.outOfOrderness;
  const late = S.allowedLateness;
  if (ok(ooo) && ok(late) && c.outOfOrdernessMs > c.allowedLatenessMs) {
    issues.push(
      `${label(ooo)} is ${d(c.outOfOrdernessMs)} but ${label(late)} is ${d(c.allowedLatenessMs)}: ` +
        "out-of-orderness must not exceed allowed lateness",
    );
  }
  if (ok(S.maxBodyBytes) && ok(S.maxInflightBodyBytes) && c.maxInflightBodyBytes < c.maxBodyBytes) {
    issues.push(
      `${label(S.maxInflightBodyBytes)} is ${c.maxInflightBodyBytes} bytes but ${label(S.maxBodyBytes)} is ${c.maxBodyBytes}: ` +
        "one largest body must fit in the in-flight budget",
    );
  }
  const behind = c.outOfOrdernessMs + c.allowedLatenessMs;
  if (ok(ooo) && ok(late) && ok(S.retention) && behind > c.retention["1s"]) {
    issues.push(
      `${label(late)} is ${d(c.allowedLatenessMs)} and ${label(ooo)} is ${d(c.outOfOrdernessMs)}, together more than ` +
        `the 1s retention of ${d(c.retention["1s"])} in ${label(S.retention)}: late events must still find their 1-second windows`,
    );
  }
  if (ok(ooo) && ok(late) && ok(S.dedupeHorizon) && c.dedupeHorizonMs < behind) {
    issues.push(
      `${label(S.dedupeHorizon)} is ${d(c.dedupeHorizonMs)}, shorter than ${label(ooo)} plus ${label(late)} (${d(behind)}): ` +
        "a duplicate accepted as a late event would be counted twice",
    );
  }
  if (ok(S.adminToken) && c.adminToken !== null) {
    if (ok(S.ingestKeys) && c.ingestKeys.includes(c.adminToken)) {
      issues.push(`${label(S.adminToken)} is also one of ${label(S.ingestKeys)}: ${REDACTED}; the admin token must be a separate secret`);
    }
    if (ok(S.readTokens) && c.readTokens.includes(c.adminToken)) {
      issues.push(`${label(S.adminToken)} is also one of ${label(S.readTokens)}: ${REDACTED}; the admin token must be a separate secret`);
    }
  }
  if (ok(S.ingestKeys) && ok(S.readTokens) && c.ingestKeys.some((k) => c.readTokens.includes(k))) {
    issues.push(
      `${label(S.ingestKeys)} and ${label(S.readTokens)} share a key (${REDACTED}): ingest keys end up in browsers and must not grant read access`,
    );
  }
  if ((command === "serve" || command === "migrate") && c.workers > c.partitions && ok(S.partitions) && ok(S.workers)) {
    warnings.push(
      `${workersGiven ? label(S.workers) : "the default --workers"} is ${c.workers} but ${label(S.partitions)} is ${c.partitions}: ` +
        `${c.workers - c.partitions} worker(s) will have no partition`,
    );
  }
  if (command === "produce" && c.produce.target === "-" && c.produce.ingestKey !== null) {
    warnings.push(`${label(S.ingestKey)} is ignored when ${label(S.target)} is - (NDJSON on stdout)`);
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Public helpers.

function publicParse<T>(parse: (raw: string) => T, s: string): T {
  try {
    return parse(s.trim());
  } catch (e) {
    if (e instanceof Invalid) throw new ConfigError([`${JSON.stringify(s)} ${e.message}`]);
    throw e;
  }
}

/** "250ms" "5s" "30m" "24h" "400d", compounds like "1h30m", or whole milliseconds; throws ConfigError on junk, negatives, overflow. */
export function parseDuration(s: string): number {
  return publicParse(durationOf, s);
}

/** "1s=24h,1m=30d,1h=400d"; resolutions not named keep their defaults; throws ConfigError on unknown resolutions. */
export function parseRetention(s: string): { "1s": number; "1m": number; "1h": number } {
  return publicParse(retentionOf, s);
}

/** "16MiB" "512KiB" "1MB" (decimal) or plain bytes; case-insensitive units; throws ConfigError on junk. */
export function parseSize(s: string): number {
  return publicParse(sizeOf, s);
}

/** Shortest exact spelling: 90000 -> "1m30s", 86400000 -> "1d", 250 -> "250ms". */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  let rest = ms;
  let out = "";
  for (const [unit, size] of [["d", DAY], ["h", HOUR], ["m", MINUTE], ["s", SECOND], ["ms", 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out;
}

function formatSize(bytes: number): string {
  for (const [unit, size] of [["GiB", 1024 ** 3], ["MiB", 1024 ** 2], ["KiB", 1024]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}

/** The config as a plain object for start-up logs: secrets replaced by "<redacted>", URL passwords masked. */
export function describeConfig(config: Config): Record<string, unknown> {
  return {
    ...config,
    retention: { ...config.retention },
    kafkaBrokers: config.kafkaBrokers === null ? null : [...config.kafkaBrokers],
    cassandraContactPoints: config.cassandraContactPoints === null ? null : [...config.cassandraContactPoints],
    redisUrl: config.redisUrl === null ? null : maskUrl(config.redisUrl),
    ingestKeys: config.ingestKeys.map(() => REDACTED),
    readTokens: config.readTokens.map(() => REDACTED),
    adminToken: config.adminToken === null ? null : REDACTED,
    alertWebhookUrl: config.alertWebhookUrl === null ? null : REDACTED,
    traffic: { ...config.traffic },
    produce: { ...config.produce, ingestKey: config.produce.ingestKey === null ? null : REDACTED },
  };
}

/** Usage text listing every command and option with its default and environment variable. */
export function usage(): string {
  const lines = [
    "rtae - real-time analytics engine for e-commerce event streams",
    "",
    "Usage:",
    "  rtae serve [options]     ingest, aggregate, serve the API, stream and dashboard",
    "  rtae produce [options]   send synthetic shop traffic to an rtae, or NDJSON to stdout",
    "  rtae migrate [options]   create or upgrade the history store schema, then exit",
    "  rtae version             print the version (also --version)",
    "  rtae --help              this text (also -h)",
    "",
    "Every option is a flag (--port 8080 or --port=8080) and an environment variable",
    "(RTAE_PORT=8080); flags win over the environment, and a repeated flag keeps its last value.",
    "Durations: 250ms, 5s, 30m, 24h, 400d, 1h30m, or whole milliseconds.",
    "Sizes: 16MiB, 512KiB, 1MB (decimal), or bytes.",
    "Booleans: --flag or --flag=true|false; in the environment true, false, 1 or 0.",
  ];
  for (const section of Object.keys(SECTION_TITLE) as Section[]) {
    lines.push("", `${SECTION_TITLE[section]}:`);
    for (const s of SPECS.filter((x) => x.section === section)) {
      const head = `  --${s.flag}${s.hint === "" ? "" : ` ${s.hint}`}`;
      lines.push(`${head.padEnd(46)} ${s.env}`);
      lines.push(`      ${s.help}. Default: ${s.defaultRaw ?? s.defaultText}`);
    }
  }
  return `${lines.join("\n")}\n`;
}
