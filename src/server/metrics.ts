// `GET /metrics` in the Prometheus text format from one prom-client registry owned by the main thread.
// Workers never create metrics (registries are per thread): their progress counts reach the main thread
// in the pool's progress messages and are read on scrape, turned into monotonic counters by differences.

import { Elysia } from "elysia";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Engine } from "../engine.ts";
import { LIVE_CHANNEL } from "./live.ts";
import * as N from "./metric-names.ts";
import { TYPES, T_ORDERS, T_REVENUE } from "../window/index.ts";
import { REJECT_REASONS } from "../ingest/door.ts";
import { streamStats } from "./streams.ts";

export interface MetricsOptions {
  /** the process registry; default a fresh one (create the plugin once per process) */
  registry?: Registry;
  /** also register prom-client's `process_*` / `nodejs_*` defaults (default true) */
  defaultMetrics?: boolean;
}

/** pending ingests awaiting a published delta, bounded so a stalled pipeline cannot grow memory */
const MAX_PENDING = 4096;

const num = (o: Record<string, unknown>, k: string): number => {
  const v = o[k];
  return typeof v === "number" ? v : 0;
};

/**
 * A counter fed from a monotonic total read at scrape time: increments by the difference, and
 * treats a smaller total (a component restarted) as a new series start rather than going backwards.
 */
function follow(counter: Counter<string>, labels: Record<string, string> | null) {
  let last = 0;
  // a labelled series exists from the first scrape, so rate() sees its first increment
  if (labels) counter.inc(labels, 0);
  return (total: number) => {
    const d = total >= last ? total - last : total;
    last = total;
    if (d > 0) {
      if (labels) counter.inc(labels, d);
      else counter.inc(d);
    }
  };
}

/** Elysia plugin serving `GET /metrics`; also counts POST /api/events responses by status. */
export function metricsPlugin(engine: Engine, opts: MetricsOptions = {}) {
  const registry = opts.registry ?? new Registry();
  if (opts.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry });
    // gauges that prom-client names like counters (promtool rejects a "_total" gauge)
    for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"])
      registry.removeSingleMetric(name);
  }
  const registers = [registry];

  // one engine snapshot per scrape, shared by every collect() callback (the age bound covers
  // registry.metrics() called from elsewhere)
  let snap: { at: number; stats: Record<string, unknown>; counters: ReturnType<Engine["counters"]> } | null = null;
  const current = () => {
    const now = performance.now();
    if (snap === null || now - snap.at > 50) snap = { at: now, stats: engine.stats(), counters: engine.counters() };
    return snap;
  };

  /** A counter following totals read at scrape time, one series per label value (or one unlabelled). */
  const followed = (name: string, help: string, series: Record<string, () => number>, label?: string) => {
    const steps: Array<[(total: number) => void, () => number]> = [];
    const counter = new Counter({
      name,
      help,
      labelNames: label ? [label] : [],
      registers,
      collect: () => {
        for (const [step, read] of steps) step(read());
      },
    });
    for (const [v, read] of Object.entries(series)) steps.push([follow(counter, label ? { [label]: v } : null), read]);
    return counter;
  };
  const stat = (k: string) => () => num(current().stats, k);
  const door = engine.door.stats;

  followed(N.INGEST_EVENTS_TOTAL, "Events received on POST /api/events, by validation result at the door.", { accepted: () => door.accepted, rejected: () => door.rejected }, "result");
  followed(
    N.INGEST_REJECTED_TOTAL,
    "Events refused at the door, by reason class (the response carries the full reason per event).",
    Object.fromEntries(REJECT_REASONS.map((r) => [r, () => door.rejectedBy[r]])),
    "reason",
  );
  const ingestRequests = new Counter({ name: N.INGEST_REQUESTS_TOTAL, help: "POST /api/events responses by HTTP status.", labelNames: ["status"], registers });
  followed(N.EVENTS_PROCESSED_TOTAL, "Log records read by the ingest workers (valid, duplicate or invalid).", { "": stat("processed") });
  followed(N.EVENTS_INVALID_TOTAL, "Log records the ingest workers found invalid.", { "": stat("invalid") });
  followed(N.DUPLICATES_TOTAL, "Events dropped as duplicates by eventId.", { "": stat("duplicates") });
  followed(N.DEAD_LETTERS_TOTAL, "Records written to the dead-letter table.", { "": () => current().counters.deadLetters });
  followed(
    N.LATE_EVENTS_TOTAL,
    "Events behind the watermark, merged into their window or dropped; counted once checkpointed (merged: once the window is final).",
    { merged: () => current().counters.lateMerged, dropped: () => current().counters.lateDropped },
    "kind",
  );
  followed(N.CHECKPOINTS_TOTAL, "Checkpoints committed (window state and offsets made durable together).", { "": () => current().counters.checkpoints });
  followed(N.STREAM_RESYNCS_TOTAL, "Snapshots sent to stream clients instead of a backlog or an unreplayable resume.", { "": () => streamStats().resyncs });
  followed(N.STREAM_DROPS_TOTAL, "Stream clients disconnected for being too slow.", { "": () => streamStats().drops });

  new Gauge({
    name: N.WATERMARK_SECONDS,
    help: "Current watermark, event time in seconds since the epoch (NaN before the first event).",
    registers,
    collect() {
      const wm = engine.aggregator.watermark.value;
      this.set(Number.isFinite(wm) ? wm / 1000 : Number.NaN);
    },
  });
  new Gauge({
    name: N.EVENT_TIME_LAG_SECONDS,
    help: "Wall clock minus the watermark, in seconds (NaN before the first event).",
    registers,
    collect() {
      const wm = engine.aggregator.watermark.value;
      this.set(Number.isFinite(wm) ? (Date.now() - wm) / 1000 : Number.NaN);
    },
  });
  new Gauge({
    name: N.CONSUMER_LAG_RECORDS,
    help: "Log end offset minus the offset the aggregator has applied, per partition this instance consumes.",
    labelNames: ["partition"],
    registers,
    collect() {
      const c = current().counters;
      const owned = current().stats.owned;
      // with Kafka an instance reports only its share: the others' partitions are their owners' lag
      const mine = Array.isArray(owned) ? new Set(owned as number[]) : null;
      this.reset();
      for (let p = 0; p < c.logEnd.length; p++)
        if (!mine || mine.has(p)) this.set({ partition: String(p) }, Math.max(0, c.logEnd[p] - (c.applied[p] ?? 0)));
    },
  });
  const freshness = new Histogram({
    name: N.FRESHNESS_SECONDS,
    help: "Time from an HTTP ingest being accepted to the first live delta published after its events were applied.",
    buckets: [...N.FRESHNESS_BUCKETS],
    registers,
  });
  const flush = new Histogram({ name: N.WINDOW_FLUSH_DURATION_SECONDS, help: "Checkpoint duration (flush of final windows, open state and offsets).", buckets: [...N.DURATION_BUCKETS], registers });
  const storeOps = new Histogram({ name: N.STORE_OPERATION_DURATION_SECONDS, help: "History store operation duration.", labelNames: ["store", "op"], buckets: [...N.DURATION_BUCKETS], registers });
  new Gauge({
    name: N.CIRCUIT_STATE,
    help: "Circuit state per store: 0 closed, 1 half-open, 2 open. history: 1 while checkpoints fail, 2 once consumption is held back; hot: the Redis breaker (always 0 in memory).",
    labelNames: ["store"],
    registers,
    collect() {
      const redis = current().stats.redis as { breaker?: string } | null | undefined;
      const history = current().stats.historyCircuit;
      this.set({ store: "history" }, history === "open" ? 2 : history === "half-open" ? 1 : 0);
      this.set({ store: "hot" }, redis?.breaker === "open" ? 2 : redis?.breaker === "half-open" ? 1 : 0);
    },
  });
  // business counters: what this instance counted into windows (sum over instances for the whole stream)
  const totals = () => engine.aggregator.totals();
  followed(
    N.EVENTS_COUNTED_TOTAL,
    "Events counted into windows (not duplicates, not late-dropped), by type, from the partitions this instance consumed.",
    Object.fromEntries(TYPES.map((t, i) => [t, () => totals()[i]])),
    "type",
  );
  followed(N.ORDERS_TOTAL, "Purchases counted into windows by this instance.", { "": () => totals()[T_ORDERS] });
  followed(
    N.REVENUE_TOTAL,
    "Revenue counted into windows by this instance, in the reporting currency's major unit.",
    { [engine.config.currency]: () => totals()[T_REVENUE] / 100 },
    "currency",
  );
  new Gauge({
    name: N.PARTITIONS_OWNED,
    help: "Log partitions this instance consumes and checkpoints (all of them embedded; its share of the group with Kafka).",
    registers,
    collect() {
      const owned = current().stats.owned;
      this.set(Array.isArray(owned) ? owned.length : 0);
    },
  });
  new Gauge({
    name: N.STREAM_CLIENTS,
    help: "Connected stream clients by transport.",
    labelNames: ["transport"],
    registers,
    collect() {
      const s = streamStats();
      this.set({ transport: "sse" }, s.sseClients);
      this.set({ transport: "ws" }, s.wsClients);
    },
  });
  new Gauge({
    name: N.RING_USED_RECORDS,
    help: "Records waiting in each worker's ring for the aggregator.",
    labelNames: ["worker"],
    registers,
    collect() {
      const used = current().stats.ringUsed;
      if (Array.isArray(used)) for (let w = 0; w < used.length; w++) this.set({ worker: String(w) }, typeof used[w] === "number" ? used[w] : 0);
    },
  });
  new Gauge({ name: N.OPEN_SESSIONS, help: "Sessions held open by the aggregator.", registers, collect() { this.set(num(current().stats, "sessions")); } });
  new Gauge({
    name: N.DICTIONARY_IDS,
    help: "Interned strings held (product ids, campaign sources), by holder; released with the state that refers to them.",
    labelNames: ["kind"],
    registers,
    collect() {
      const s = current().stats;
      this.set({ kind: "aggregator" }, num(s, "dictionaryIds"));
      this.set({ kind: "worker" }, num(s, "workerDictionaryIds"));
    },
  });
  new Gauge({ name: N.LIVE_PANES, help: "Open 1 s panes in memory.", registers, collect() { this.set(num(current().stats, "livePanes")); } });

  const unobserve = engine.observe({
    checkpoint: (s) => flush.observe(s),
    storeOp: (op, s) => storeOps.observe({ store: "history", op }, s),
  });

  // Freshness: each accepted HTTP ingest remembers when it was answered and the log end it reached;
  // the first delta published once the aggregator has applied up to that end closes it.
  const pendingAt = new Float64Array(MAX_PENDING);
  const pendingEnd = new Float64Array(MAX_PENDING);
  let head = 0;
  let size = 0;
  const sum = (a: readonly number[]) => {
    let s = 0;
    for (const v of a) s += v;
    return s;
  };
  const onPublished = () => {
    if (size === 0) return;
    const applied = sum(engine.counters().applied);
    const now = performance.now();
    while (size > 0 && pendingEnd[head] <= applied) {
      freshness.observe((now - pendingAt[head]) / 1000);
      head = (head + 1) % MAX_PENDING;
      size--;
    }
  };
  const unsubs = [engine.hot.subscribe(LIVE_CHANNEL, onPublished), engine.hot.subscribe("deltas", onPublished)];

  function ingestAnswered(status: number): void {
    ingestRequests.inc({ status: String(status) });
    if (status !== 202) return;
    if (size === MAX_PENDING) {
      // the oldest waiter is dropped unobserved rather than growing without bound
      head = (head + 1) % MAX_PENDING;
      size--;
    }
    const i = (head + size) % MAX_PENDING;
    pendingAt[i] = performance.now();
    pendingEnd[i] = sum(engine.counters().logEnd);
    size++;
  }

  // `wrap` surrounds the whole fetch handler, so routes registered before this plugin and the
  // guard's own answers (401/403/429) are counted too; an after-response hook would see neither
  return new Elysia({ name: "rtae-metrics" })
    .wrap((fn, request) => {
      if (request.method !== "POST" || !isIngestPath(request.url)) return fn;
      const handle = fn as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        const out = handle(...args);
        if (out instanceof Promise)
          return out.then((r: unknown) => {
            if (r instanceof Response) ingestAnswered(r.status);
            return r;
          });
        if (out instanceof Response) ingestAnswered(out.status);
        return out;
      };
    })
    .onStop(() => {
      unobserve();
      for (const u of unsubs) u();
    })
    .get("/metrics", async () => {
      snap = null; // every scrape reads the engine afresh, once
      const body = await registry.metrics();
      return new Response(body, { headers: { "content-type": registry.contentType, "cache-control": "no-store" } });
    }, {
      detail: { summary: "Prometheus metrics", tags: ["operations"] },
    });
}

/** True for `/api/events` with any query, without parsing the URL of every other request. */
function isIngestPath(url: string): boolean {
  const i = url.indexOf("/api/events");
  if (i < 0) return false;
  const end = i + "/api/events".length;
  return (end === url.length || url[end] === "?") && url.indexOf("/", url.indexOf("//") + 2) === i;
}
