// View models of the dashboard, built either from the live topics in the hot cache (contract of
// issue 3) or from the engine's query methods for a stored range. One model feeds one renderer.

import type { Engine } from "../engine.ts";
import { HOUR, MIN, SEC, TYPES, type Res, type Summary } from "../window/index.ts";
import type { ViewName, ViewRange } from "./range.ts";

export interface Point {
  t: number;
  v: number | null;
}
export interface Series {
  name: string;
  points: Point[];
}
export interface Item {
  productId: string;
  value: number;
}
export interface Freshness {
  watermark: string | null;
  eventLagMs: number | null;
  processingLagMs: number | null;
}

export interface OverviewModel {
  summary: Summary;
  /** events/s by type over the last 10 s (live only) */
  rate: Record<string, number> | null;
  freshness: Freshness | null;
  series: Series[];
  seriesNote: string;
}
export interface ProductsModel {
  views: Item[];
  carts: Item[];
  units: Item[];
  revenue: Item[];
}
export type FunnelModel = Awaited<ReturnType<Engine["funnel"]>>;
export interface PerformanceModel {
  loadTimeMs: { count: number; p50: number | null; p95: number | null; p99: number | null };
  series: Series[];
}
export type CampaignsModel = Awaited<ReturnType<Engine["campaigns"]>>;
export type InventoryModel = Awaited<ReturnType<Engine["inventory"]>>;

export interface ViewModels {
  overview: OverviewModel;
  products: ProductsModel;
  funnel: FunnelModel;
  performance: PerformanceModel;
  campaigns: CampaignsModel;
  inventory: InventoryModel;
}

/** Low-stock threshold of the inventory view (the live topic uses the same). */
export const LOW_STOCK = 10;
const MAX_PERF_BUCKETS = 180;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const toTime = (t: unknown): number => (typeof t === "number" ? t : typeof t === "string" ? Date.parse(t) : NaN);

/** Coarsest useful step: about 60–180 points, never finer than what retention still holds. */
export function chooseStep(engine: Engine, r: ViewRange, now = Date.now()): Res {
  const span = r.to - r.from;
  const ret = engine.config.retention;
  let step: Res = span <= 3 * MIN ? SEC : span <= 3 * HOUR ? MIN : HOUR;
  if (step === SEC && r.from < now - ret["1s"]) step = MIN;
  if (step === MIN && r.from < now - ret["1m"]) step = HOUR;
  return step;
}

const stepName = (s: Res) => (s === SEC ? "1 s" : s === MIN ? "1 min" : "1 h");

async function overviewFromQueries(engine: Engine, r: ViewRange): Promise<OverviewModel> {
  const step = chooseStep(engine, r);
  const types = TYPES.filter((t) => t !== "inventory_update");
  const [summary, ...perType] = await Promise.all([
    engine.summary(r.from, r.to),
    ...types.map((t) => engine.timeseries("events", TYPES.indexOf(t), step, r.from, r.to)),
  ]);
  // the first and last buckets hold only their part inside the range: divide by that part, not the step
  const rate = (t: number, count: number) => count / (Math.max(1000, Math.min(t + step, r.to) - Math.max(t, r.from)) / 1000);
  const series = types.map((name, i) => ({
    name,
    points: perType[i].map((p) => {
      const t = Date.parse(p.t);
      return { t, v: rate(t, p.value) };
    }),
  }));
  return { summary, rate: null, freshness: null, series, seriesNote: `average per ${stepName(step)} bucket` };
}

async function performanceFromQueries(engine: Engine, r: ViewRange): Promise<PerformanceModel> {
  let step: number = chooseStep(engine, r);
  if (step === SEC) step = MIN; // percentiles over one second are mostly noise
  while (Math.ceil(r.to / step) - Math.floor(r.from / step) > MAX_PERF_BUCKETS) step *= 2;
  const starts: number[] = [];
  for (let t = Math.floor(r.from / step) * step; t < r.to; t += step) starts.push(t);
  const [total, ...buckets] = await Promise.all([
    engine.performance(r.from, r.to),
    ...starts.map((t) => engine.performance(Math.max(t, r.from), Math.min(t + step, r.to))),
  ]);
  const pick = (k: "p50" | "p95" | "p99") => ({
    name: k,
    points: starts.map((t, i) => ({ t, v: buckets[i].loadTimeMs[k] })),
  });
  return { loadTimeMs: total.loadTimeMs, series: [pick("p50"), pick("p95"), pick("p99")] };
}

/** Builds one view's model for a stored range from the engine's query methods. */
export async function loadFromQueries<V extends ViewName>(engine: Engine, view: V, r: ViewRange): Promise<ViewModels[V]> {
  return (await loaders[view](engine, r)) as ViewModels[V];
}

const loaders: { [V in ViewName]: (engine: Engine, r: ViewRange) => Promise<ViewModels[V]> } = {
  overview: overviewFromQueries,
  async products(engine, r) {
    const [views, carts, units, revenue] = await Promise.all(
      (["views", "carts", "units", "revenue"] as const).map((by) => engine.top(by, 10, r.from, r.to)),
    );
    return { views, carts, units, revenue };
  },
  funnel: (engine, r) => engine.funnel(r.from, r.to),
  performance: performanceFromQueries,
  campaigns: (engine, r) => engine.campaigns(r.from, r.to),
  inventory: (engine, r) => engine.inventory(LOW_STOCK, 100, r.from, r.to),
};

/** Topic value in the hot cache, or undefined when absent. */
export function topicValue(engine: Engine, topic: string): unknown {
  return engine.hot.get(`topic:${topic}`);
}

/** Freshness of the overview topic, if the live publisher runs. */
export function liveFreshness(engine: Engine): Freshness | null {
  const v = topicValue(engine, "overview");
  if (!isObj(v) || !isObj(v.freshness)) return null;
  const f = v.freshness;
  const num = (x: unknown) => (typeof x === "number" && Number.isFinite(x) ? x : null);
  return { watermark: typeof f.watermark === "string" ? f.watermark : null, eventLagMs: num(f.eventLagMs), processingLagMs: num(f.processingLagMs) };
}

const items = (v: unknown): Item[] | null =>
  Array.isArray(v) ? v.filter((x): x is Item => isObj(x) && typeof x.productId === "string" && typeof x.value === "number") : null;

/**
 * Reads one view's model from its live topic; null when the topic is missing or not shaped as the
 * contract says (the caller then queries the engine, so a half-started publisher shows real data).
 */
export function modelFromTopic<V extends ViewName>(engine: Engine, view: V): ViewModels[V] | null {
  const v = topicValue(engine, view);
  if (!isObj(v)) return null;
  switch (view) {
    case "overview": {
      if (!isObj(v.summary) || !isObj((v.summary as Record<string, unknown>).events)) return null;
      const series = Array.isArray(v.series)
        ? [{ name: "total", points: v.series.filter(isObj).map((p) => ({ t: toTime(p.t), v: typeof p.value === "number" ? p.value : null })).filter((p) => Number.isFinite(p.t)) }]
        : [];
      const rate = isObj(v.rate) ? (Object.fromEntries(Object.entries(v.rate).filter(([, x]) => typeof x === "number")) as Record<string, number>) : null;
      const m: OverviewModel = { summary: v.summary as unknown as Summary, rate, freshness: liveFreshness(engine), series, seriesNote: "events per second, last 60 s" };
      return m as ViewModels[V];
    }
    case "products": {
      const [views, carts, units, revenue] = [items(v.views), items(v.carts), items(v.units), items(v.revenue)];
      if (!views || !carts || !units || !revenue) return null;
      return { views, carts, units, revenue } as ViewModels[V];
    }
    case "funnel":
      return Array.isArray(v.steps) && isObj(v.cartAbandonment) ? (v as unknown as ViewModels[V]) : null;
    case "performance": {
      if (!isObj(v.loadTimeMs)) return null;
      const rows = Array.isArray(v.series) ? v.series.filter(isObj) : [];
      const pick = (k: "p50" | "p95" | "p99") => ({
        name: k,
        points: rows.map((p) => ({ t: toTime(p.t), v: typeof p[k] === "number" ? (p[k] as number) : null })).filter((p) => Number.isFinite(p.t)),
      });
      const m: PerformanceModel = { loadTimeMs: v.loadTimeMs as PerformanceModel["loadTimeMs"], series: [pick("p50"), pick("p95"), pick("p99")] };
      return m as ViewModels[V];
    }
    case "campaigns":
    case "inventory":
      return Array.isArray(v.items) ? (v as unknown as ViewModels[V]) : null;
  }
  return null;
}
