// Assembles one rtae instance in embedded mode: log, workers, aggregator, history and hot cache,
// the checkpoint loop that makes window state and offsets durable together, and the query facade.

import type { Config } from "./config.ts";
import { createDoor, openLogWriter, startWorkerPool, type Door, type LocalLogWriter, type WorkerPool } from "./ingest/index.ts";
import { logger, setLogLevel } from "./log.ts";
import { createMemoryHotCache, createReadCache, openSqliteHistory, type HistoryStore, type HotCache, type WindowRow } from "./store/index.ts";
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
  type Pane,
  type Res,
  type TimeseriesMetric,
  type TopBy,
} from "./window/index.ts";

const log = logger("Engine");

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
  /** running totals and offsets for /metrics; cheap, allocates only the two offset arrays */
  counters(): EngineCounters;
  /** register timing observers (metrics); returns the unsubscribe function */
  observe(observer: EngineObserver): () => void;
  stop(): Promise<void>;
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

export async function startEngine(config: Config, options: EngineOptions = {}): Promise<Engine> {
  setLogLevel(config.logLevel);
  const maxAgeMs = Math.max(config.retention["1s"], config.retention["1m"], config.retention["1h"]);
  const writer: LocalLogWriter = openLogWriter(config.dataDir, config.partitions);
  const store = openSqliteHistory(config.dataDir);
  const hot = createMemoryHotCache();
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
  const cp = await store.loadCheckpoint();
  agg.restore(cp);
  log.info("restored checkpoint", {
    partitions: config.partitions,
    openWindows: cp.openWindows.length,
    sessions: cp.sessions.length,
    offsets: Object.fromEntries(cp.offsets),
  });

  let deadLetters = 0;
  let lateMerged = 0;
  let lateDropped = 0;
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
      writer.deadLetter(rows);
      deadLetters += rows.length;
    },
    onError: (message) => log.error("worker error", { message }),
  });

  const appended = new Float64Array(config.partitions); // end offsets after our appends
  for (let p = 0; p < config.partitions; p++) appended[p] = writer.endOffset(p);

  const door = createDoor({
    sink: {
      partitions: config.partitions,
      append(byPartition, maxTime) {
        const results = writer.append(byPartition, maxTime);
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
    try {
      const windows: WindowRow[] = [];
      for (const w of c.flushed)
        for (const f of encodePane(w.pane, agg.dict))
          windows.push({ family: f.family, res: w.res, start: w.start, partition: w.partition, value: f.value });
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
        const stored = await store.readWindows([...families], res, start, start + 1);
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
            windows.push({ family: f.family, res, start, partition: corr.partition, value: f.value });
        }
      }
      const batch = {
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
      // Between a durable commit and agg.committed() a reader would count pending corrections twice
      // (in the stored rows and in memory); a synchronous commit leaves no such gap.
      // TODO(distributed): async stores need a commit epoch that readers compare against.
      const commitStarted = performance.now();
      if (store.commitSync) store.commitSync(batch);
      else await store.commit(batch);
      emitStoreOp("commit", commitStarted);
      reader.written(windows);
      agg.committed(c);
      pool.committed(c.offsets);
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
      agg.failed(c);
      log.error("checkpoint failed; state kept for the next attempt", { message: (err as Error).message });
      throw err;
    }
    // the log is only needed from the lowest offset that a restart would replay or dedupe would rescan
    for (let p = 0; p < config.partitions; p++) writer.truncateBefore(p, pool.neededFrom(p));
  }

  function checkpoint(): Promise<void> {
    if (!checkpointing)
      checkpointing = runCheckpoint().finally(() => {
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

  const retained = () => {
    const now = Date.now();
    return { sec: now - config.retention["1s"], min: now - config.retention["1m"] };
  };

  async function merged(from: number, to: number, families: readonly Family[]) {
    return (await collect(agg, reader, from, to, families, undefined, retained())).get(0) ?? createPane();
  }

  async function summary(from: number, to: number) {
    return summaryOf(await merged(from, to, ["core", "users", "sessions"]), from, to, agg.watermark.value);
  }

  let stopped = false;
  const engine: Engine = {
    config,
    door,
    aggregator: agg,
    hot,
    store,
    ready: () => !stopped,
    summary,
    async timeseries(metric, typeIndex, step, from, to) {
      const buckets = await collect(agg, reader, from, to, familiesFor(metric), step);
      const points: Array<{ t: string; value: number }> = [];
      const start = Math.floor(from / step) * step;
      const end = Math.ceil(to / step) * step;
      for (let t = start; t < end; t += step)
        points.push({ t: new Date(t).toISOString(), value: pointValue(buckets.get(t), metric, typeIndex) });
      return points;
    },
    async eventCounts(step, from, to) {
      const buckets = await collect(agg, reader, from, to, ["core"], step);
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
    async top(by, limit, from, to) {
      return topProducts(await merged(from, to, ["products"]), agg.dict, by, limit);
    },
    async funnel(from, to) {
      return funnelOf(await merged(from, to, ["funnel"]));
    },
    async performance(from, to) {
      return performanceOf(await merged(from, to, ["load"]));
    },
    async campaigns(from, to) {
      return campaignsOfPane(await merged(from, to, ["campaigns"]), agg.dict);
    },
    async inventory(lowStock, limit, from, to) {
      return inventoryOf(agg, await merged(from, to, ["products"]), lowStock, limit);
    },
    checkpoint,
    async caughtUp(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        let behind = false;
        for (let p = 0; p < config.partitions; p++) if ((agg.applied.get(p) ?? 0) < appended[p]) behind = true;
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
        watermark: agg.watermark.value,
        checkpoints,
        lastCheckpointMs,
        door: door.stats,
      };
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
      clearInterval(cpTimer);
      clearInterval(pruneTimer);
      clearInterval(liveTimer);
      await pool.stop();
      await checkpointing?.catch(() => {});
      await checkpoint().catch(() => {});
      writer.close();
      await store.close();
      await hot.close();
    },
  };
  return engine;
}
