// Live topics for the streams: recomputes each topic from the engine's query methods, keeps the full
// value in the hot cache and publishes only the changed top-level keys on channel "live" (one seq per message).

import type { Engine } from "../engine.ts";
import { HOUR, MIN, SEC, TYPES } from "../window/index.ts";

export const LIVE_CHANNEL = "live";
export const TOPICS = ["overview", "products", "funnel", "performance", "campaigns", "inventory"] as const;
export type Topic = (typeof TOPICS)[number];
export type LiveKind = "snapshot" | "delta" | "correction";

/** One message on the "live" channel, as published (JSON). */
export interface LiveMessage {
  topic: Topic;
  seq: number;
  kind: LiveKind;
  value: Record<string, unknown>;
}

export interface LiveSnapshot {
  seq: number;
  topics: Record<string, unknown>;
}

export interface LiveOptions {
  /** overview rate/series/freshness period when the aggregator changed (default 25 ms) */
  fastMs?: number;
  /** period of the last-hour summary and the other topics (default 1000 ms) */
  slowMs?: number;
  /** processing-time clock: "now" of the sliding ranges */
  clock?: () => number;
}

export interface LiveStats {
  ticks: number;
  published: number;
  /** duration of the last fast / slow computation, ms */
  lastFastMs: number;
  lastSlowMs: number;
  /** cost of the latest last-hour summary, ms (decides whether fast ticks may recompute it) */
  summaryMs: number;
  failures: number;
}

export interface LiveTopics {
  stop(): void;
  /** Full values of the given topics and the seq they include (every message with seq <= it). */
  snapshot(topics: readonly string[]): LiveSnapshot;
  /** seq of the latest published message */
  readonly seq: number;
  /** resolves once every topic has been computed and published once */
  ready(): Promise<void>;
  stats(): LiveStats;
}

type Value = Record<string, unknown>;

const round2 = (v: number) => Math.round(v * 100) / 100;
const iso = (t: number) => new Date(t).toISOString();

/**
 * Start recomputing the live topics. Seq numbers start at the start time in microseconds, so they
 * keep increasing across restarts and a Last-Event-ID from an earlier process can never be mistaken
 * for a recent one.
 */
export function startLiveTopics(engine: Engine, opts: LiveOptions = {}): LiveTopics {
  // 25 ms keeps event-to-delta latency low; ticks without new data return at once
  const fastMs = opts.fastMs ?? 25;
  const slowMs = opts.slowMs ?? 1000;
  const clock = opts.clock ?? Date.now;
  let seq = Date.now() * 1000;

  const prev = new Map<Topic, Map<string, string>>(); // topic -> key -> JSON of the last published value
  const pendingCorrection = new Set<Topic>();
  const stats: LiveStats = { ticks: 0, published: 0, lastFastMs: 0, lastSlowMs: 0, summaryMs: 0, failures: 0 };
  const { promise: readyPromise, resolve: resolveReady } = Promise.withResolvers<void>();

  let lastVersion = -1;
  let lastSlow = -Infinity;
  let lastLateMerged = -1;
  let summary: Value | null = null;
  // the cheapest of the last few summaries: one cold or contended call must not keep fast ticks off it
  const recentSummaryMs: number[] = [];
  let lastSummaryAt = -Infinity;
  const summaryCost = () => (recentSummaryMs.length < 3 ? 0 : Math.min(...recentSummaryMs));
  let busy = false;
  let stopped = false;

  /** Diff against the last published value and publish the changed keys (all of them the first time). */
  function publish(topic: Topic, value: Value): void {
    const before = prev.get(topic);
    const now = new Map<string, string>();
    const changed: Value = {};
    let n = 0;
    for (const k of Object.keys(value)) {
      const j = JSON.stringify(value[k]);
      now.set(k, j);
      if (!before || before.get(k) !== j) {
        changed[k] = value[k];
        n++;
      }
    }
    if (before) for (const k of before.keys()) if (!now.has(k)) (changed[k] = null), n++;
    const correction = pendingCorrection.delete(topic);
    if (before && n === 0) return;
    prev.set(topic, now);
    const kind: LiveKind = !before ? "snapshot" : correction ? "correction" : "delta";
    engine.hot.set(`topic:${topic}`, value);
    seq++;
    stats.published++;
    const msg: LiveMessage = { topic, seq, kind, value: before ? changed : value };
    engine.hot.publish(LIVE_CHANNEL, JSON.stringify(msg));
  }

  // --- processing lag: age of the oldest accepted-but-unapplied event, from door and aggregator counters.
  // Log end = base + door.accepted, with base calibrated once the engine has caught up; sampled each fast
  // tick, so the answer is accurate to about fastMs. null until calibrated.
  let logBase: number | null = null;
  const lagT: number[] = [];
  const lagEnd: number[] = [];
  const appliedTotal = () => {
    let s = 0;
    for (const v of engine.aggregator.applied.values()) s += v;
    return s;
  };
  engine
    .caughtUp(30_000)
    .then((ok) => {
      if (ok) logBase = appliedTotal() - engine.door.stats.accepted;
    })
    .catch(() => {});
  function processingLag(now: number): number | null {
    if (logBase === null) return null;
    const end = logBase + engine.door.stats.accepted;
    const applied = appliedTotal();
    if (lagEnd.length === 0 || lagEnd[lagEnd.length - 1] !== end) {
      lagT.push(now);
      lagEnd.push(end);
    }
    // samples whose events are all applied are no longer needed; keep the array bounded regardless
    while (lagEnd.length > 1 && lagEnd[1] <= applied) {
      lagT.shift();
      lagEnd.shift();
    }
    while (lagEnd.length > 600) {
      lagT.shift();
      lagEnd.shift();
    }
    if (applied >= end) return 0;
    // the first sample whose log end exceeds what is applied holds the oldest unapplied events
    for (let i = 0; i < lagEnd.length; i++) if (lagEnd[i] > applied) return Math.max(0, now - lagT[i]);
    return 0;
  }

  async function computeSummary(now: number): Promise<void> {
    const t0 = performance.now();
    const s = (await engine.summary(now - HOUR, now)) as unknown as Value;
    const ms = performance.now() - t0;
    stats.summaryMs = ms;
    recentSummaryMs.push(ms);
    if (recentSummaryMs.length > 3) recentSummaryMs.shift();
    const merged = (s.late as { merged: number }).merged;
    // a window that had fired took a late event: whatever changes next is a correction
    if (lastLateMerged >= 0 && merged > lastLateMerged) for (const t of TOPICS) pendingCorrection.add(t);
    lastLateMerged = merged;
    summary = s;
  }

  async function overview(now: number): Promise<Value> {
    // the current second is included (partially filled) so an ingest shows up in the next tick
    const end = Math.floor(now / SEC) * SEC + SEC;
    // one pass over the last 60 s gives the series and the 10 s rates by type
    const counts = await engine.eventCounts(SEC, end - 60 * SEC, end);
    const series = counts.map((c) => ({ t: iso(c.t), value: c.total }));
    const rate: Record<string, number> = {};
    let total = 0;
    const recent = counts.slice(-10);
    for (let i = 0; i < TYPES.length; i++) {
      let n = 0;
      for (const c of recent) n += c.byType[i];
      rate[TYPES[i]] = round2(n / 10);
      total += n;
    }
    rate.total = round2(total / 10);
    const wm = engine.stats().watermark;
    const watermark = typeof wm === "number" && Number.isFinite(wm) ? wm : null;
    return {
      summary,
      rate,
      freshness: {
        watermark: watermark === null ? null : iso(watermark),
        eventLagMs: watermark === null ? null : Math.max(0, now - watermark),
        processingLagMs: processingLag(now),
      },
      series,
    };
  }

  // per-minute percentiles; minutes that can no longer change (behind watermark - lateness) are cached
  const minuteCache = new Map<number, { t: string; p50: number | null; p95: number | null; p99: number | null }>();
  async function performanceTopic(now: number): Promise<Value> {
    const whole = await engine.performance(now - HOUR, now);
    const cur = Math.floor(now / MIN) * MIN;
    const wm = engine.stats().watermark;
    const finalBefore = typeof wm === "number" && Number.isFinite(wm) ? wm - engine.config.allowedLatenessMs - SEC : -Infinity;
    const series: Array<{ t: string; p50: number | null; p95: number | null; p99: number | null }> = [];
    for (let m = cur - 59 * MIN; m <= cur; m += MIN) {
      let point = minuteCache.get(m);
      if (!point) {
        const l = (await engine.performance(m, m + MIN)).loadTimeMs;
        point = { t: iso(m), p50: l.p50, p95: l.p95, p99: l.p99 };
        if (m + MIN <= finalBefore) minuteCache.set(m, point);
      }
      series.push(point);
    }
    for (const m of minuteCache.keys()) if (m < cur - 59 * MIN) minuteCache.delete(m);
    return { loadTimeMs: whole.loadTimeMs, series };
  }

  async function products(now: number): Promise<Value> {
    const from = now - HOUR;
    return {
      views: await engine.top("views", 10, from, now),
      carts: await engine.top("carts", 10, from, now),
      units: await engine.top("units", 10, from, now),
      revenue: await engine.top("revenue", 10, from, now),
    };
  }

  async function tick(): Promise<void> {
    if (busy || stopped) return;
    busy = true;
    stats.ticks++;
    try {
      const now = clock();
      const version = engine.aggregator.version;
      const slow = now - lastSlow >= slowMs;
      if (!slow && version === lastVersion) return;
      lastVersion = version;
      const t0 = performance.now();
      // the last-hour summary rides on fast ticks at most every 100 ms, spaced to 20x its cost (so it takes
      // at most ~5 % of the main thread): a cheap one refreshes every 100 ms, a 20 ms one every 400 ms, and
      // a large history falls back to the slow tick without a cliff at some cost
      if (slow || summary === null || now - lastSummaryAt >= Math.max(100, 20 * summaryCost())) {
        await computeSummary(now);
        lastSummaryAt = now;
      }
      publish("overview", await overview(now));
      const t1 = performance.now();
      stats.lastFastMs = t1 - t0;
      if (!slow) return;
      lastSlow = now;
      publish("products", await products(now));
      publish("funnel", (await engine.funnel(now - HOUR, now)) as unknown as Value);
      publish("performance", await performanceTopic(now));
      publish("campaigns", (await engine.campaigns(now - HOUR, now)) as unknown as Value);
      publish("inventory", (await engine.inventory(10, 100, now - HOUR, now)) as unknown as Value);
      stats.lastSlowMs = performance.now() - t0;
      resolveReady();
    } catch (err) {
      // a failed query (e.g. the store closing during shutdown) skips this tick only
      stats.failures++;
      if (!stopped) console.error(JSON.stringify({ level: "warn", ns: "Live", msg: "live tick failed", message: String(err) }));
    } finally {
      busy = false;
    }
  }

  const timer = setInterval(() => void tick(), fastMs);
  void tick();

  return {
    stop() {
      stopped = true;
      clearInterval(timer);
      resolveReady();
    },
    snapshot(topics) {
      const out: Record<string, unknown> = {};
      for (const t of topics) out[t] = engine.hot.get(`topic:${t}`) ?? null;
      return { seq, topics: out };
    },
    get seq() {
      return seq;
    },
    ready: () => readyPromise,
    stats: () => ({ ...stats }),
  };
}
