// Assembles one rtae instance: log (embedded file log or Kafka), workers, aggregator, history (bun:sqlite
// or Cassandra) and hot cache (memory, plus Redis for partials shared between instances), the checkpoint
// loop that makes window state and offsets durable together, and the query facade.

import type { Config } from "./config.ts";
import { lockDataDir, type DataDirLock } from "./data-dir-lock.ts";
import { failureReason, unreachable } from "./errors.ts";
import { KafkaError, createDoor, openLogWriter, startWorkerPool, type Door, type LocalLogWriter, type WorkerPool } from "./ingest/index.ts";
import { logger, setLogLevel } from "./log.ts";
import { hostname } from "node:os";
import { createKafkaSink, type KafkaSink } from "./ingest/kafka-sink.ts";
import { createTopicEnds, ensureTopics } from "./ingest/kafka-admin.ts";
import type { PartitionStart } from "./ingest/worker-protocol.ts";
import {
  createMemoryHotCache,
  createReadCache,
  createRedisHotCache,
  openCassandraHistory,
  openSqliteHistory,
  CassandraStoreError,
  type HistoryStore,
  type HotCache,
  type RedisHotCache,
  type WindowRow,
} from "./store/index.ts";
import { createPartials, type Partials } from "./store/partials.ts";
import {
  C_LATE_MERGED,
  HOUR,
  MIN,
  SEC,
  campaignsOfPane,
  collect,
  createAggregator,
  createPane,
  encodePane,
  familiesFor,
  funnelOf,
  inventoryOf,
  mergeEncoded,
  mergePane,
  performanceOf,
  pointValue,
  summaryOf,
  topProducts,
  type Aggregator,
  type CheckpointCapture,
  type Family,
  type InventoryEntry,
  type Pane,
  type Res,
  type TimeseriesMetric,
  type TopBy,
} from "./window/index.ts";

const log = logger("Engine");
/** a store failing this long makes the engine stop applying records until a checkpoint succeeds */
const HOLD_BACK_AFTER_MS = 5000;
/** how long start waits for Redis before giving up on it */
const READY_TIMEOUT_MS = 10_000;

/** Families a correction pane carries (corrections never hold sketches or product tables). */
function touchedFamilies(p: Pane): Family[] {
  const out: Family[] = [];
  if (p.core.some((v) => v !== 0)) out.push("core");
  if (p.funnel.some((v) => v !== 0)) out.push("funnel");
  if (p.campaigns && p.campaigns.index.size > 0) out.push("campaigns");
  if (p.users) out.push("users");
  if (p.sessions) out.push("sessions");
  if (p.load) out.push("load");
  if (p.products) out.push("products");
  return out;
}

export interface Engine {
  readonly config: Config;
  readonly door: Door;
  readonly aggregator: Aggregator;
  readonly hot: HotCache;
  readonly store: HistoryStore;
  /** Kafka mode: this instance's name in the consumer group and the partition owners table */
  readonly instanceId: string;
  /** "embedded" or what runs distributed, e.g. "kafka+cassandra+redis" */
  readonly mode: string;
  ready(): boolean;
  summary(from: number, to: number): Promise<ReturnType<typeof summaryOf>>;
  timeseries(metric: TimeseriesMetric, typeIndex: number, step: Res, from: number, to: number): Promise<Array<{ t: string; value: number }>>;
  /** events per bucket by type (EVENT_TYPES order) and in total, in one pass: what live views poll */
  eventCounts(step: Res, from: number, to: number): Promise<Array<{ t: number; byType: number[]; total: number }>>;
  top(by: TopBy, limit: number, from: number, to: number): Promise<Array<{ productId: string; value: number }>>;
  funnel(from: number, to: number): Promise<ReturnType<typeof funnelOf>>;
  performance(from: number, to: number): Promise<ReturnType<typeof performanceOf>>;
  campaigns(from: number, to: number): Promise<ReturnType<typeof campaignsOfPane>>;
  inventory(lowStock: number | null, limit: number, from: number, to: number): Promise<ReturnType<typeof inventoryOf>>;
  /** force a checkpoint now (tests, shutdown) */
  checkpoint(): Promise<void>;
  /** resolves once every event appended so far has been applied by the aggregator */
  caughtUp(timeoutMs?: number): Promise<boolean>;
  stats(): Record<string, unknown>;
  /** what readiness reports: can this instance take events, and how are its stores */
  health(): EngineHealth;
  /** running totals and offsets for /metrics; cheap, allocates only the two offset arrays */
  counters(): EngineCounters;
  /** register timing observers (metrics); returns the unsubscribe function */
  observe(observer: EngineObserver): () => void;
  stop(): Promise<void>;
}

export interface EngineHealth {
  /** not_ready: stopping, or the log cannot take events; degraded: a store fails but events are still accepted */
  status: "ready" | "degraded" | "not_ready";
  log: "ok" | "unreachable";
  history: "ok" | "failing";
  hot: "ok" | "degraded";
  /** partitions this instance consumes */
  partitions: number[];
  stopping: boolean;
}

/** Monotonic totals since this process started, plus per-partition offsets. */
export interface EngineCounters {
  /** late events merged into a window, counted when their 1 s window becomes final (checkpointed) */
  lateMerged: number;
  /** late events dropped, counted when the checkpoint that keeps them commits */
  lateDropped: number;
  /** records the workers sent to the dead-letter table */
  deadLetters: number;
  checkpoints: number;
  /** next log offset per partition after this process's appends */
  logEnd: number[];
  /** next offset per partition the aggregator has applied */
  applied: number[];
}

/** Callbacks for durations the engine measures anyway; errors thrown by observers are ignored. */
export interface EngineObserver {
  /** a checkpoint committed after `seconds` (capture, encode, commit) */
  checkpoint?(seconds: number): void;
  /** one history store operation took `seconds` */
  storeOp?(op: "commit" | "read", seconds: number): void;
}

export interface EngineOptions {
  /** processing-time clock for the aggregator (tests) */
  clock?: () => number;
  /** worker script override (the compiled binary passes its embedded path) */
  workerUrl?: string | URL;
}

/**
 * Starts one instance on `config.dataDir`, which it locks first (one process per data dir, DESIGN §5) and
 * releases in stop(). Throws StartError when the dir is in use or a configured service does not answer; the
 * message is one line for `rtae serve` to print. Whatever was opened before a failure is closed again.
 */
export async function startEngine(config: Config, options: EngineOptions = {}): Promise<Engine> {
  setLogLevel(config.logLevel);
  const lock = lockDataDir(config.dataDir); // before anything opens a file there
  const opened: Array<() => unknown> = [];
  try {
    return await assemble(config, options, lock, opened);
  } catch (err) {
    for (const close of opened.reverse()) {
      try {
        await close();
      } catch {
        // closing what a failed start opened is best effort; the start error is what matters
      }
    }
    lock.release();
    throw err;
  }
}

/** Where a Redis URL points, without its credentials. */
function redisAddress(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || "6379"}`;
  } catch {
    return "the configured address";
  }
}

async function assemble(config: Config, options: EngineOptions, lock: DataDirLock, opened: Array<() => unknown>): Promise<Engine> {
  const maxAgeMs = Math.max(config.retention["1s"], config.retention["1m"], config.retention["1h"]);
  const instanceId = `${hostname()}-${process.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const brokers = config.kafkaBrokers ? [...config.kafkaBrokers] : null;
  const mode =
    [brokers && "kafka", config.cassandraContactPoints && "cassandra", config.redisUrl && "redis"].filter(Boolean).join("+") || "embedded";
  let sink: KafkaSink | null = null;
  let topicEnds: ReturnType<typeof createTopicEnds> | null = null;
  if (brokers) {
    const conn = { brokers, clientId: `rtae-${instanceId}`, logLevel: "error" as const };
    // kafkajs' own lines about each retry would only repeat, out of order, what the start error says
    await ensureTopics({ ...conn, logLevel: "nothing", topic: config.kafkaTopic, partitions: config.partitions }).catch((err: unknown) => {
      if (err instanceof KafkaError && err.code === "kafka_unavailable" && err.cause !== undefined) {
        const cause = err.cause as { message?: string };
        throw unreachable("Kafka", brokers.join(","), "kafka-brokers", failureReason(cause.message), err);
      }
      throw err;
    });
    sink = createKafkaSink({ ...conn, topic: config.kafkaTopic, partitions: config.partitions });
    topicEnds = createTopicEnds({ ...conn, topic: config.kafkaTopic });
    const [s, t] = [sink, topicEnds];
    opened.push(() => s.close(), () => t.close());
  }
  const writer: LocalLogWriter | null = brokers ? null : openLogWriter(config.dataDir, config.partitions);
  if (writer) opened.push(() => writer.close());
  const contactPoints = config.cassandraContactPoints;
  const store: HistoryStore = contactPoints
    ? await openCassandraHistory({
        contactPoints: [...contactPoints],
        keyspace: config.cassandraKeyspace,
        consistency: config.cassandraConsistency,
        localDataCenter: config.cassandraDatacenter,
        writerId: brokers ? `engine:${instanceId}` : "engine",
      }).catch((err: unknown) => {
        if (err instanceof CassandraStoreError && err.code === "store_unavailable") {
          const reason = failureReason(err.message.replace(/^cassandra open: /, ""));
          throw unreachable("Cassandra", contactPoints.join(","), "cassandra-contact-points", reason, err);
        }
        throw err;
      })
    : openSqliteHistory(config.dataDir);
  opened.push(() => store.close());
  // live views are computed per instance from the global state, so their channel stays local; Redis
  // carries what instances share: open-window partials and which stored windows changed
  const hot = createMemoryHotCache();
  let shared: RedisHotCache | null = null;
  if (config.redisUrl) {
    const cache = createRedisHotCache({ url: config.redisUrl, prefix: config.redisPrefix, instanceId, readyTimeoutMs: READY_TIMEOUT_MS });
    shared = cache;
    opened.push(() => cache.close());
    // unreachable at start is a setup problem to report; an outage later is ridden out on local values
    const url = config.redisUrl;
    await cache.ready().catch((err: Error) => {
      const reason = failureReason(cache.stats().lastError) ?? `no answer within ${Math.round(READY_TIMEOUT_MS / 1000)} s`;
      throw unreachable("Redis", redisAddress(url), "redis-url", reason, err);
    });
  }
  const agg = createAggregator({
    partitions: config.partitions,
    outOfOrdernessMs: config.outOfOrdernessMs,
    allowedLatenessMs: config.allowedLatenessMs,
    sessionGapMs: config.sessionGapMs,
    idleTimeoutMs: config.idleTimeoutMs,
    clock: options.clock,
  });
  const observers = new Set<EngineObserver>();
  const emitStoreOp = (op: "commit" | "read", started: number) => {
    const seconds = (performance.now() - started) / 1000;
    for (const o of observers) {
      try {
        o.storeOp?.(op, seconds);
      } catch {
        // an observer must never break a read or a checkpoint
      }
    }
  };
  // queries read through a timed view of the store; the store itself is untouched
  const timedStore: HistoryStore = Object.assign(Object.create(store) as HistoryStore, {
    async readWindows(...args: Parameters<HistoryStore["readWindows"]>) {
      const started = performance.now();
      try {
        return await store.readWindows(...args);
      } finally {
        emitStoreOp("read", started);
      }
    },
  });
  const reader = createReadCache(timedStore, agg.dict);
  /** Correction rows of failed commits, by key: written again as they are until a commit succeeds. */
  const retryRows = new Map<string, WindowRow>();
  function rowKey(r: { family: string; res: number; start: number; partition: number }): string {
    return `${r.family}|${r.res}|${r.start}|${r.partition}`;
  }
  /** partitions gone to another owner: their unwritten corrections are its to replay, not ours to write */
  function forgetRetries(gone: Set<number>): void {
    const dropped: WindowRow[] = [];
    for (const [k, r] of retryRows)
      if (gone.has(r.partition)) {
        retryRows.delete(k);
        dropped.push(r);
      }
    reader.abandoned(dropped);
  }

  if (brokers) {
    // partitions arrive with the group's assignments; until then none holds the watermark back
    for (let p = 0; p < config.partitions; p++) agg.watermark.forget(p);
  } else {
    const cp = await store.loadCheckpoint();
    agg.restore(cp);
    // embedded: this instance owns every partition from the start
    for (let p = 0; p < config.partitions; p++) if (!agg.applied.has(p)) agg.applied.set(p, 0);
    log.info("restored checkpoint", {
      partitions: config.partitions,
      openWindows: cp.openWindows.length,
      sessions: cp.sessions.length,
      offsets: Object.fromEntries(cp.offsets),
    });
  }
  const partials: Partials | null = shared ? createPartials({ cache: shared, agg, owner: instanceId, partitions: config.partitions }) : null;
  const remote = partials ? () => partials.remote() : undefined;
  const unsubWritten = shared?.subscribe("written", (m) => {
    try {
      reader.invalidate(JSON.parse(m) as Array<{ res: number; start: number }>);
    } catch {
      // a malformed notice only costs a cache miss later
    }
  });

  /** Kafka mode: the group gave this instance partitions; their durable state replaces anything in memory. */
  // Checkpoints and partition adoption take turns: a partition moving between two workers of this instance
  // must be loaded after the checkpoint in flight (which may still write it) is durable, never before.
  let turn: Promise<unknown> = Promise.resolve();
  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = turn.then(fn, fn);
    turn = run.catch(() => {});
    return run;
  }

  function adopt(parts: number[], drain: () => void, dedupeFrom: (p: number) => number | undefined): Promise<PartitionStart[]> {
    return exclusive(() => adoptNow(parts, drain, dedupeFrom));
  }

  async function adoptNow(parts: number[], drain: () => void, dedupeFrom: (p: number) => number | undefined): Promise<PartitionStart[]> {
    // A partition moving between two workers of this instance keeps its state in memory: the old worker's
    // records of it are all in its ring (a member rejoins only after its batch), so once drained, memory
    // covers exactly the offsets below applied(p) and the new worker continues from there, with no replay
    // against a watermark the other partitions have moved on. Only when the store still names this
    // instance as the owner: a round trip through another instance means memory is stale.
    const held = parts.filter((p) => agg.applied.has(p));
    const lost = new Set(held.length > 0 && store.lostOwnership ? await store.lostOwnership(instanceId, held) : []);
    await store.claim?.(instanceId, parts);
    // after the awaits: the old worker's revoke may have dropped a partition meanwhile
    drain();
    const kept = held.filter((p) => !lost.has(p) && agg.applied.has(p));
    const load = parts.filter((p) => !kept.includes(p));
    const kept0 = kept.map((p) => ({ partition: p, from: agg.applied.get(p)!, dedupeFrom: Math.min(dedupeFrom(p) ?? agg.applied.get(p)!, agg.applied.get(p)!) }));
    if (load.length === 0) {
      log.info("partitions moved between workers", { partitions: kept, offsets: Object.fromEntries(kept0.map((s) => [s.partition, s.from])) });
      return kept0;
    }
    parts = load;
    const cp = await store.loadCheckpoint(parts);
    drain();
    agg.dropPartitions(parts.filter((p) => agg.applied.has(p)));
    const partitionMeta = new Map(cp.partitionMeta ?? []);
    const offsets = new Map(cp.offsets);
    for (const p of parts) {
      if (!partitionMeta.has(p)) partitionMeta.set(p, JSON.stringify({ maxTime: null, floor: null }));
      if (!offsets.has(p)) offsets.set(p, 0);
    }
    const mine = (r: { partition: number }) => parts.includes(r.partition);
    agg.restore({
      offsets,
      openWindows: cp.openWindows.filter(mine),
      sessions: cp.sessions.filter(mine),
      inventory: cp.inventory.filter(mine),
      meta: null,
      partitionMeta,
    });
    log.info("partitions assigned", { partitions: parts, offsets: Object.fromEntries(offsets), moved: kept });
    return kept0.concat(
      parts.map((p) => {
        const from = offsets.get(p)!;
        const m = JSON.parse(partitionMeta.get(p)!) as { dedupeFrom?: number };
        return { partition: p, from, dedupeFrom: typeof m.dedupeFrom === "number" ? Math.min(m.dedupeFrom, from) : from };
      }),
    );
  }

  let failingSince: number | null = null; // first failed checkpoint since the last good one
  let deadLetters = 0;
  let lateMerged = 0;
  let lateDropped = 0;
  // Kafka mode: dead letters go to <topic>.dlq; a checkpoint waits for them, so no offset past a poison
  // record is committed before its dead letter is stored
  let dlqWrites: Promise<void> = Promise.resolve();
  let dlqRetry: Array<{ partition: number; offset: number; value: string; reason: string }> = [];
  const sendDeadLetters = (rows: typeof dlqRetry) => {
    dlqWrites = dlqWrites.then(() =>
      sink!.deadLetter(rows).catch((err: Error) => {
        log.warn("dead letters not stored yet; retried at the next checkpoint", { rows: rows.length, message: err.message });
        dlqRetry.push(...rows);
      }),
    );
  };
  const pool: WorkerPool = await startWorkerPool({
    workers: config.workers,
    partitions: config.partitions,
    dataDir: config.dataDir,
    currency: config.currency,
    maxAgeMs,
    dedupeHorizonMs: config.dedupeHorizonMs,
    aggregator: agg,
    workerUrl: options.workerUrl,
    onDeadLetters: (rows) => {
      if (writer) writer.deadLetter(rows);
      else sendDeadLetters(rows);
      deadLetters += rows.length;
    },
    onError: (message) => log.error("worker error", { message }),
    // with the store failing for a while, stop applying: memory stays bounded and consumption pauses
    holdBack: () => failingSince !== null && Date.now() - failingSince > HOLD_BACK_AFTER_MS,
    kafka: brokers
      ? {
          brokers,
          clientId: `rtae-${instanceId}`,
          topic: config.kafkaTopic,
          groupId: config.consumerGroup,
          logLevel: "error",
          onAssigned: adopt,
          onRevoked: (parts) => {
            agg.dropPartitions(parts);
            forgetRetries(new Set(parts));
            log.info("partitions revoked", { partitions: parts });
          },
          onWarn: (message) => log.warn("ingest worker", { message }),
        }
      : undefined,
  });
  opened.push(() => pool.stop());

  // end offsets: after our own appends (embedded), or the topic's as last polled (Kafka: lag and catch-up)
  const appended = new Float64Array(config.partitions);
  if (writer) for (let p = 0; p < config.partitions; p++) appended[p] = writer.endOffset(p);
  let endsOkAt = Date.now(); // last time the broker answered (Kafka mode readiness)
  async function pollEnds(): Promise<void> {
    if (!topicEnds) return;
    for (const [p, end] of await topicEnds.fetch()) if (p < appended.length) appended[p] = end;
    endsOkAt = Date.now();
  }
  const endsTimer = topicEnds
    ? setInterval(() => pollEnds().catch((err: Error) => log.debug("end offsets unavailable", { message: err.message })), 1000)
    : null;

  const door = createDoor({
    sink: sink ?? {
      partitions: config.partitions,
      append(byPartition, maxTime) {
        const results = writer!.append(byPartition, maxTime);
        for (const r of results) appended[r.partition] = r.baseOffset + r.count;
      },
    },
    context: () => ({ now: Date.now(), maxAgeMs, currency: config.currency }),
    maxEvents: config.maxEventsPerRequest,
    onAppended: () => pool.notify(),
  });

  let checkpointing: Promise<void> | null = null;
  let checkpoints = 0;
  let lastCheckpointMs = 0;

  async function runCheckpoint(): Promise<void> {
    const started = performance.now();
    // every 300th checkpoint rewrites the open sessions whole, so the session log stays short
    const c: CheckpointCapture = agg.capture(checkpoints % 300 === 0);
    let windows: WindowRow[] = [];
    let flushedRows: WindowRow[] = [];
    let correctionRows: WindowRow[] = [];
    let writing = false;
    try {
      if (store.lostOwnership && c.offsets.size > 0) {
        // a partition another instance claimed since (a rebalance this one has not heard of yet) is never
        // written again from here: its new owner replays it from the last checkpoint
        const lost = new Set(await store.lostOwnership(instanceId, [...c.offsets.keys()]));
        if (lost.size > 0) {
          log.warn("partitions claimed by another instance; not writing them", { partitions: [...lost] });
          excludePartitions(c, lost);
          forgetRetries(lost);
        }
      }
      if (!writer) {
        // dead letters up to these offsets must be stored before the offsets move
        if (dlqRetry.length > 0) {
          const rows = dlqRetry;
          dlqRetry = [];
          sendDeadLetters(rows);
        }
        await dlqWrites;
        if (dlqRetry.length > 0) throw new Error(`${dlqRetry.length} dead letters not stored`);
      }
      for (const w of c.flushed)
        for (const f of encodePane(w.pane, agg.dict))
          flushedRows.push({ family: f.family, res: w.res, start: w.start, partition: w.partition, value: f.value });
      // read-modify-write of stored windows; each partition's rows have a single writer. Only the
      // families a correction touches are read and rewritten (funnel/campaign/late counters, never
      // the sketches or product tables), and each stored window is read once for all its partitions.
      const byWindow = new Map<string, typeof c.corrections>();
      for (const corr of c.corrections) {
        const k = `${corr.res}:${corr.start}`;
        const list = byWindow.get(k);
        if (list) list.push(corr);
        else byWindow.set(k, [corr]);
      }
      for (const list of byWindow.values()) {
        const { res, start } = list[0];
        const families = new Set<Family>();
        for (const corr of list) for (const f of touchedFamilies(corr.pane)) families.add(f);
        // rows of a failed commit are the truth for their keys (the store may hold them or not)
        const stored = (await store.readWindows([...families], res, start, start + 1)).filter((r) => !retryRows.has(rowKey(r)));
        for (const r of retryRows.values()) if (r.res === res && r.start === start && families.has(r.family as Family)) stored.push(r);
        for (const corr of list) {
          const mine = touchedFamilies(corr.pane);
          const existing = stored.filter((r) => r.partition === corr.partition && mine.includes(r.family as Family));
          const pane = createPane();
          for (const r of existing) mergeEncoded(pane, r.family as Family, r.value, agg.dict);
          mergePane(pane, corr.pane);
          const encoded = encodePane(pane, agg.dict).filter((e) => mine.includes(e.family));
          for (const r of existing) {
            // counters may return to zero; the stored row must say so rather than keep its old value
            if (!encoded.some((e) => e.family === r.family))
              encoded.push({ family: r.family as Family, value: new Uint8Array(r.value.length) });
          }
          for (const f of encoded)
            correctionRows.push({ family: f.family, res, start, partition: corr.partition, value: f.value });
        }
      }
      // a failed commit's correction rows not rewritten above go again, as they are (absolute values)
      const recomputed = new Set(correctionRows.map(rowKey));
      for (const [k, r] of retryRows) if (!recomputed.has(k)) correctionRows.push(r);
      windows = flushedRows.concat(correctionRows);
      const partitionMeta = new Map<number, string>();
      for (const [p, m] of c.partitionMeta) {
        const dedupeFrom = pool.dedupeFrom(p);
        partitionMeta.set(p, dedupeFrom === undefined ? m : JSON.stringify({ ...JSON.parse(m), dedupeFrom }));
      }
      const batch = {
        partitionMeta,
        windows,
        openWindows: c.open,
        sessions: c.sessions,
        deletedSessions: c.deletedSessions,
        sessionsFull: c.sessionsFull,
        inventory: c.inventory,
        late: c.late,
        offsets: c.offsets,
        meta: c.meta,
      };
      // While the batch is in flight reads see its rows in place of the stored ones (an async store applies
      // it row by row) and no longer count its corrections from memory: nothing counts twice or not at all.
      reader.pending(windows);
      agg.overlaid();
      writing = true;
      const commitStarted = performance.now();
      if (store.commitSync) store.commitSync(batch);
      else await store.commit(batch);
      emitStoreOp("commit", commitStarted);
      reader.written(windows);
      agg.committed(c);
      retryRows.clear();
      pool.committed(c.offsets);
      if (failingSince !== null) log.info("checkpoints succeed again", { failedForMs: Date.now() - failingSince });
      failingSince = null;
      // the published partials still hold the windows this commit flushed: readers skip them once stored,
      // but replacing them now saves every other instance that check (and the decoding)
      if (partials && c.flushed.length > 0) partials.publish();
      if (shared && windows.length > 0) {
        const touched = new Map<string, { res: number; start: number }>();
        for (const w of windows) touched.set(`${w.res}:${w.start}`, { res: w.res, start: w.start });
        shared.publish("written", JSON.stringify([...touched.values()]));
      }
      checkpoints++;
      lastCheckpointMs = performance.now() - started;
      // merged counts live only in 1 s panes until they are final; corrections never carry them
      for (const w of c.flushed) if (w.res === SEC) lateMerged += w.pane.core[C_LATE_MERGED];
      lateDropped += c.late.length;
      for (const o of observers) {
        try {
          o.checkpoint?.(lastCheckpointMs / 1000);
        } catch {
          // an observer must never fail a checkpoint
        }
      }
    } catch (err) {
      if (writing) {
        // Some rows may be stored, others not: a correction's delta must never be applied twice, so its
        // rows are kept as computed (absolute values), stay visible to readers, and are written again.
        for (const r of correctionRows) retryRows.set(rowKey(r), r);
        reader.abandoned(flushedRows);
        agg.failed(c, { corrections: false });
      } else {
        // nothing was written: the deltas go back to the aggregator
        agg.failed(c);
      }
      failingSince ??= Date.now();
      log.error("checkpoint failed; state kept for the next attempt", { message: (err as Error).message });
      throw err;
    }
    // the log is only needed from the lowest offset that a restart would replay or dedupe would rescan
    if (writer) for (let p = 0; p < config.partitions; p++) writer.truncateBefore(p, pool.neededFrom(p));
  }

  /** Leave partitions out of a capture (they are not ours to write); their windows go back to nobody. */
  function excludePartitions(c: CheckpointCapture, lost: Set<number>): void {
    const keep = (r: { partition: number }) => !lost.has(r.partition);
    c.flushed = c.flushed.filter(keep);
    c.corrections = c.corrections.filter(keep);
    c.open = c.open.filter(keep);
    c.sessions = c.sessions.filter(keep);
    c.deletedSessions = c.deletedSessions.filter(keep);
    c.inventory = c.inventory.filter(keep);
    c.late = c.late.filter(keep);
    for (const p of lost) {
      c.offsets.delete(p);
      c.partitionMeta.delete(p);
    }
  }

  function checkpoint(): Promise<void> {
    if (!checkpointing)
      checkpointing = exclusive(runCheckpoint).finally(() => {
        checkpointing = null;
      });
    return checkpointing;
  }

  const cpTimer = setInterval(() => {
    checkpoint().catch(() => {});
  }, config.checkpointIntervalMs);
  const pruneTimer = setInterval(() => {
    store.prune(config.retention, Date.now()).catch((err) => log.warn("prune failed", { message: String(err) }));
  }, 60_000);

  // live sliding views (last 1 m / 5 m every <= 100 ms, last 1 h every second) for the streams
  let liveVersion = -1;
  let liveTicks = 0;
  let liveBusy = false;
  const liveTimer = setInterval(async () => {
    liveTicks++;
    if (agg.version === liveVersion || liveBusy) return;
    liveVersion = agg.version;
    liveBusy = true;
    const now = Date.now();
    const views: Array<readonly [string, number]> = [
      ["1m", MIN],
      ["5m", 5 * MIN],
    ];
    if (liveTicks % 10 === 0) views.push(["1h", HOUR]);
    try {
      for (const [name, span] of views) {
        const s = await summary(now - span, now);
        hot.set(`summary:${name}`, s);
        hot.publish("deltas", JSON.stringify({ topic: `summary:${name}`, value: s }));
      }
    } catch (err) {
      log.warn("live view failed", { message: String(err) });
    } finally {
      liveBusy = false;
    }
  }, 100);

  // other instances merge this one's open windows into their answers: publish them about every 200 ms
  let partialsVersion = -1;
  let partialsAt = 0;
  const partialsTimer = partials
    ? setInterval(() => {
        // unchanged values are re-published every few seconds: readers take a silent owner for a dead one;
        // an expensive publish (many open windows) is spaced out so it takes at most ~10 % of the main thread
        const since = Date.now() - partialsAt;
        if (agg.version === partialsVersion && since < 5000) return;
        if (since < 10 * partials.stats().lastPublishMs) return;
        partialsVersion = agg.version;
        partialsAt = Date.now();
        try {
          partials.publish();
        } catch (err) {
          log.warn("publishing partials failed", { message: String(err) });
        }
      }, 200)
    : null;

  const retained = () => {
    const now = Date.now();
    return { sec: now - config.retention["1s"], min: now - config.retention["1m"] };
  };

  async function merged(from: number, to: number, families: readonly Family[]) {
    return (await collect(agg, reader, from, to, families, undefined, retained(), remote)).get(0) ?? createPane();
  }

  async function summary(from: number, to: number) {
    return summaryOf(await merged(from, to, ["core", "users", "sessions"]), from, to, agg.watermark.value);
  }

  /** Answers that turn dictionary ids into strings after awaiting: none of their ids is freed until they are done. */
  async function pinned<T>(fn: () => Promise<T>): Promise<T> {
    const unpin = agg.dict.pin();
    try {
      return await fn();
    } finally {
      unpin();
    }
  }

  async function inventoryNow(lowStock: number | null, limit: number, from: number, to: number) {
    const pane = await merged(from, to, ["products"]);
    if (!brokers || !store.inventory) return inventoryOf(agg, pane, lowStock, limit);
    // other instances' partitions: their last checkpoint (at most a checkpoint interval old)
    const mine = new Set(agg.owned());
    const foreign: number[] = [];
    for (let p = 0; p < config.partitions; p++) if (!mine.has(p)) foreign.push(p);
    const latest = new Map<number, InventoryEntry>();
    for (const e of agg.inventory()) latest.set(e.product, e);
    for (const r of foreign.length > 0 ? await store.inventory(foreign) : []) {
      const product = agg.dict.intern(r.productId);
      const cur = latest.get(product);
      if (!cur || r.time > cur.time) latest.set(product, { product, partition: r.partition, stock: r.stock, time: r.time });
    }
    return inventoryOf(agg, pane, lowStock, limit, latest.values());
  }

  let stopped = false;
  const engine: Engine = {
    config,
    door,
    aggregator: agg,
    hot,
    store,
    instanceId,
    mode,
    ready: () => !stopped,
    summary,
    async timeseries(metric, typeIndex, step, from, to) {
      const buckets = await collect(agg, reader, from, to, familiesFor(metric), step, undefined, remote);
      const points: Array<{ t: string; value: number }> = [];
      const start = Math.floor(from / step) * step;
      const end = Math.ceil(to / step) * step;
      for (let t = start; t < end; t += step)
        points.push({ t: new Date(t).toISOString(), value: pointValue(buckets.get(t), metric, typeIndex) });
      return points;
    },
    async eventCounts(step, from, to) {
      const buckets = await collect(agg, reader, from, to, ["core"], step, undefined, remote);
      const out: Array<{ t: number; byType: number[]; total: number }> = [];
      const start = Math.floor(from / step) * step;
      const end = Math.ceil(to / step) * step;
      for (let t = start; t < end; t += step) {
        const core = buckets.get(t)?.core;
        const byType = [0, 0, 0, 0, 0, 0, 0];
        let total = 0;
        if (core) for (let i = 0; i < 7; i++) total += byType[i] = core[i];
        out.push({ t, byType, total });
      }
      return out;
    },
    top(by, limit, from, to) {
      return pinned(async () => topProducts(await merged(from, to, ["products"]), agg.dict, by, limit));
    },
    async funnel(from, to) {
      return funnelOf(await merged(from, to, ["funnel"]));
    },
    async performance(from, to) {
      return performanceOf(await merged(from, to, ["load"]));
    },
    campaigns(from, to) {
      return pinned(async () => campaignsOfPane(await merged(from, to, ["campaigns"]), agg.dict));
    },
    inventory(lowStock, limit, from, to) {
      return pinned(() => inventoryNow(lowStock, limit, from, to));
    },
    checkpoint,
    async caughtUp(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      if (topicEnds) await pollEnds().catch(() => {});
      for (;;) {
        let behind = false;
        // Kafka mode: the partitions this instance owns, against the topic's ends when asked
        for (let p = 0; p < config.partitions; p++)
          if ((!topicEnds || agg.applied.has(p)) && (agg.applied.get(p) ?? 0) < appended[p]) behind = true;
        if (!behind) return true;
        if (Date.now() > deadline) return false;
        await new Promise((r) => setTimeout(r, 2));
      }
    },
    stats() {
      return {
        ...agg.stats(),
        readCache: reader.stats(),
        ...pool.stats(),
        // interned strings held by the aggregator's dictionary (the workers' own: workerDictionaryIds)
        dictionaryIds: agg.dict.size,
        dictionary: agg.dict.stats(),
        watermark: agg.watermark.value,
        checkpoints,
        lastCheckpointMs,
        door: door.stats,
        mode,
        instanceId,
        owned: agg.owned(),
        // the history store's circuit: closed, failing (checkpoints retried), open (consumption held back)
        historyCircuit: failingSince === null ? "closed" : Date.now() - failingSince > HOLD_BACK_AFTER_MS ? "open" : "half-open",
        partials: partials?.stats() ?? null,
        redis: shared?.stats() ?? null,
      };
    },
    health() {
      const log = topicEnds && Date.now() - endsOkAt > 10_000 ? "unreachable" : "ok";
      const history = failingSince !== null ? "failing" : "ok";
      const hotState = shared && shared.stats().breaker !== "closed" ? "degraded" : "ok";
      const status = stopped || log !== "ok" ? "not_ready" : history !== "ok" || hotState !== "ok" ? "degraded" : "ready";
      return { status, log, history, hot: hotState, partitions: agg.owned(), stopping: stopped };
    },
    counters() {
      const applied: number[] = [];
      for (let p = 0; p < config.partitions; p++) applied.push(agg.applied.get(p) ?? 0);
      return { lateMerged, lateDropped, deadLetters, checkpoints, logEnd: Array.from(appended), applied };
    },
    observe(observer) {
      observers.add(observer);
      return () => observers.delete(observer);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await door.close();
        clearInterval(cpTimer);
        clearInterval(pruneTimer);
        clearInterval(liveTimer);
        if (partialsTimer) clearInterval(partialsTimer);
        if (endsTimer) clearInterval(endsTimer);
        if (brokers) {
          // Kafka: checkpoint while still a group member, so the final offsets are committed; records read
          // after it are replayed by the partitions' next owner. Leaving the group then revokes (drops) them.
          await checkpointing?.catch(() => {});
          await checkpoint().catch(() => {});
          await pool.stop();
        } else {
          await pool.stop();
          await checkpointing?.catch(() => {});
          await checkpoint().catch(() => {});
        }
        writer?.close();
        unsubWritten?.();
        await sink?.close().catch(() => {});
        await topicEnds?.close();
        await store.close();
        await hot.close();
        await shared?.close().catch(() => {});
      } finally {
        // last: the next engine on this dir may open its files only once ours are closed
        lock.release();
      }
    },
  };
  return engine;
}
