// Engine-independent oracle for known-answer tests: builds perturbed data sets and computes every answer
// with plain loops over the same events, in arrival order, with the semantics of DESIGN §3.
// Nothing here imports the engine; the comparison works over any transport (app.handle or a real port).

import { createGenerator, perturb, type WireEvent } from "../src/generator/index.ts";

/** The event types of the contract, spelled out here rather than imported from the engine. */
export const TYPES = ["page_view", "product_view", "add_to_cart", "remove_from_cart", "checkout", "purchase", "inventory_update"] as const;
/** Default session gap (DESIGN §6 `--session-gap`). */
export const SESSION_GAP_MS = 30 * 60_000;
/** Default lag of held-back events: far beyond allowed lateness plus any watermark skew. */
export const DROP_LAG_MS = 100 * 60_000;

export interface ProductTotals { views: number; carts: number; units: number; revenue: number }
export interface CampaignTotals { sessions: number; orders: number; revenue: number }
export interface Funnel { sessions: number; view: number; cart: number; checkout: number; purchase: number; abandon: number }

/** Expected answers over [from, to); money in integer cents. */
export interface Expected {
  byType: Record<string, number>;
  revenue: number;
  orders: number;
  units: number;
  users: number;
  sessions: number;
  products: Map<string, ProductTotals>;
  /** page_view load times, arrival order */
  loads: number[];
  /** latest stock per product by event time, over the whole stream (global state, not windowed) */
  stock: Map<string, { stock: number; t: number }>;
  funnel: Funnel;
  campaigns: Map<string, CampaignTotals>;
  duplicates: number;
  droppedIn: number;
  total: number;
}

export interface Dataset {
  /** generated events, timestamps non-decreasing */
  base: WireEvent[];
  /** what is sent, in order: duplicates, disorder, late-merged and late-dropped included */
  arrivals: WireEvent[];
  /** ids that arrive dropLagMs behind the stream: counted as late.dropped, never in the windows */
  dropped: Set<string>;
  lateIds: Set<string>;
  duplicateIds: Set<string>;
  /** first event time, and one past the last: [lo, hi) holds every event */
  lo: number;
  hi: number;
}

export interface DatasetOptions {
  n: number;
  seed: number;
  /** events per simulated second */
  rate: number;
  /** epoch ms of the first event */
  start: number;
  products?: number;
  users?: number;
  bursts?: boolean;
  perturb: { seed: number; duplicateRate?: number; disorderMs?: number; lateRate?: number; lateMs?: number };
  /** every k-th eligible event is held back dropLagMs; 0 holds none */
  dropEvery: number;
  dropLagMs?: number;
}

/** Generates, perturbs and injects very late events, deterministically from the seeds. */
export function buildDataset(o: DatasetOptions): Dataset {
  const gen = createGenerator({ seed: o.seed, rate: o.rate, startTime: o.start, diurnal: false, bursts: o.bursts ?? true, products: o.products ?? 2000, users: o.users ?? 20_000 });
  const base = gen.next(o.n);
  const p = perturb(base, o.perturb);
  const d = o.dropEvery > 0
    ? injectDropped(p.events, new Set([...p.duplicateIds, ...p.lateIds]), o.dropEvery, o.dropLagMs)
    : { events: p.events, dropped: new Set<string>() };
  let lo = Infinity;
  let hi = -Infinity;
  for (const e of base) {
    lo = Math.min(lo, e.timestamp);
    hi = Math.max(hi, e.timestamp + 1);
  }
  return { base, arrivals: d.events, dropped: d.dropped, lateIds: p.lateIds, duplicateIds: p.duplicateIds, lo, hi };
}

/** Very late events: every `every`-th eligible event is held back until the stream is dropLagMs past it. */
export function injectDropped(events: WireEvent[], exclude: Set<string>, every: number, dropLagMs = DROP_LAG_MS): { events: WireEvent[]; dropped: Set<string> } {
  let streamMax = -Infinity;
  for (const e of events) streamMax = Math.max(streamMax, e.timestamp);
  const held: WireEvent[] = [];
  const dropped = new Set<string>();
  const kept: WireEvent[] = [];
  let k = 0;
  for (const e of events) {
    // only events the stream certainly overtakes by dropLagMs, so every held event is really late
    if (!exclude.has(e.eventId) && e.timestamp < streamMax - dropLagMs - 60_000 && ++k % every === 0) {
      held.push(e);
      dropped.add(e.eventId);
    } else kept.push(e);
  }
  const out: WireEvent[] = [];
  let maxT = -Infinity;
  let h = 0;
  held.sort((a, b) => a.timestamp - b.timestamp);
  for (const e of kept) {
    out.push(e);
    maxT = Math.max(maxT, e.timestamp);
    while (h < held.length && maxT >= held[h].timestamp + dropLagMs) out.push(held[h++]);
  }
  if (h !== held.length) throw new Error("a held event was never overtaken");
  return { events: out, dropped };
}

/** The independent answer: plain loops in arrival order, with the documented semantics. */
export function expectedOf(arrivals: readonly WireEvent[], dropped: ReadonlySet<string>, from: number, to: number, sessionGapMs = SESSION_GAP_MS): Expected {
  const seen = new Set<string>();
  const counted: WireEvent[] = [];
  let duplicates = 0;
  let droppedIn = 0;
  for (const e of arrivals) {
    if (seen.has(e.eventId)) {
      if (e.timestamp >= from && e.timestamp < to) duplicates++;
      continue;
    }
    seen.add(e.eventId);
    if (dropped.has(e.eventId)) {
      if (e.timestamp >= from && e.timestamp < to) droppedIn++;
      continue;
    }
    counted.push(e);
  }
  const byType: Record<string, number> = {};
  let revenue = 0;
  let orders = 0;
  let units = 0;
  const users = new Set<string>();
  const sessionIds = new Set<string>();
  const products = new Map<string, ProductTotals>();
  const prod = (id: string) => {
    let p = products.get(id);
    if (!p) products.set(id, (p = { views: 0, carts: 0, units: 0, revenue: 0 }));
    return p;
  };
  const loads: number[] = [];
  const stock = new Map<string, { stock: number; t: number }>();
  for (const e of counted) {
    // latest stock is global state, not a windowed metric
    if (e.type === "inventory_update") {
      const s = stock.get(e.productId!);
      if (!s || e.timestamp >= s.t) stock.set(e.productId!, { stock: e.stock!, t: e.timestamp });
    }
    if (e.timestamp < from || e.timestamp >= to) continue;
    byType[e.type] = (byType[e.type] ?? 0) + 1;
    if (e.type !== "inventory_update") {
      users.add(e.userId!);
      sessionIds.add(e.sessionId!);
    }
    if (e.type === "page_view" && e.loadTimeMs !== undefined) loads.push(e.loadTimeMs);
    if (e.type === "product_view") prod(e.productId!).views++;
    if (e.type === "add_to_cart") prod(e.productId!).carts++;
    if (e.type === "purchase") {
      orders++;
      for (const it of e.items!) {
        const cents = Math.round(it.price * 100) * it.quantity;
        revenue += cents;
        units += it.quantity;
        prod(it.productId).units += it.quantity;
        prod(it.productId).revenue += cents;
      }
    }
  }
  // sessions: per sessionId, split on session-gap event-time gaps; a session belongs to the window of its first event
  const bySession = new Map<string, WireEvent[]>();
  for (const e of counted) {
    if (e.type === "inventory_update") continue;
    let l = bySession.get(e.sessionId!);
    if (!l) bySession.set(e.sessionId!, (l = []));
    l.push(e);
  }
  const funnel: Funnel = { sessions: 0, view: 0, cart: 0, checkout: 0, purchase: 0, abandon: 0 };
  const campaigns = new Map<string, CampaignTotals>();
  const camp = (s: string) => {
    let c = campaigns.get(s);
    if (!c) campaigns.set(s, (c = { sessions: 0, orders: 0, revenue: 0 }));
    return c;
  };
  for (const list of bySession.values()) {
    const sorted = [...list].sort((a, b) => a.timestamp - b.timestamp);
    let group: WireEvent[] = [];
    const flush = () => {
      if (group.length === 0) return;
      const first = group[0].timestamp;
      if (first >= from && first < to) {
        const has = (t: string) => group.some((e) => e.type === t);
        funnel.sessions++;
        if (has("product_view")) funnel.view++;
        if (has("add_to_cart")) funnel.cart++;
        if (has("checkout")) funnel.checkout++;
        if (has("purchase")) funnel.purchase++;
        if (has("add_to_cart") && !has("purchase")) funnel.abandon++;
        const src = group.find((e) => e.utmSource !== undefined)?.utmSource ?? "(direct)";
        camp(src).sessions++;
      }
      group = [];
    };
    for (const e of sorted) {
      if (group.length > 0 && e.timestamp > group[group.length - 1].timestamp + sessionGapMs) flush();
      group.push(e);
    }
    flush();
  }
  // orders and revenue go to the source known for the session when the purchase is processed
  // (first-touch among the events that arrived before it)
  const known = new Map<string, { src: string; t: number }>();
  for (const e of counted) {
    if (e.type === "inventory_update") continue;
    if (e.utmSource !== undefined) {
      const k = known.get(e.sessionId!);
      if (!k || e.timestamp < k.t) known.set(e.sessionId!, { src: e.utmSource, t: e.timestamp });
    }
    if (e.type === "purchase" && e.timestamp >= from && e.timestamp < to) {
      const c = camp(known.get(e.sessionId!)?.src ?? "(direct)");
      c.orders++;
      for (const it of e.items!) c.revenue += Math.round(it.price * 100) * it.quantity;
    }
  }
  return { byType, revenue, orders, units, users: users.size, sessions: sessionIds.size, products, loads, stock, funnel, campaigns, duplicates, droppedIn, total: Object.values(byType).reduce((a, b) => a + b, 0) };
}

/** Expected `/api/products/top` items: value in currency units for revenue, ties by productId. */
export function topOf(products: Expected["products"], by: "views" | "carts" | "units" | "revenue", limit: number) {
  return [...products.entries()]
    .map(([productId, p]) => ({ productId, value: by === "revenue" ? p.revenue / 100 : p[by] }))
    .filter((x) => x.value > 0)
    .sort((a, b) => b.value - a.value || (a.productId < b.productId ? -1 : 1))
    .slice(0, limit);
}

/** Expected `/api/campaigns` items, in the API's order. */
export function campaignItemsOf(x: Expected) {
  return [...x.campaigns.entries()]
    .filter(([, c]) => c.sessions || c.orders || c.revenue)
    .map(([source, c]) => ({ source, sessions: c.sessions, orders: c.orders, revenue: c.revenue / 100 }))
    .sort((a, b) => b.sessions - a.sessions || (a.source < b.source ? -1 : 1));
}

/** The exact quantile by nearest rank over ascending values. */
export function nearestRank(sorted: number[], q: number): number {
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1];
}

/** Whole seconds, rounded outwards, as the API resolves ranges. */
export function secondRange(from: number, to: number): { from: number; to: number } {
  return { from: Math.floor(from / 1000) * 1000, to: Math.ceil(to / 1000) * 1000 };
}

export type AnswerPart = "summary" | "top" | "funnel" | "campaigns" | "performance" | "inventory" | "timeseries";
/** GET a path such as `/api/funnel?...` and return the parsed JSON body (throw on a non-200). */
export type GetJson = (path: string) => Promise<any>;

/**
 * Queries every answer over [from, to) and lists each difference from `x` as a readable line; empty means
 * all equal. Sketch metrics (distinct counts, percentiles) get the contract's 2 % bound, the rest is exact.
 * `from`/`to` must already be whole seconds (see secondRange) and `x` computed over the same range.
 */
export async function answerMismatches(get: GetJson, x: Expected, from: number, to: number, parts: readonly AnswerPart[] = ["summary", "top", "funnel", "campaigns", "performance"]): Promise<string[]> {
  const out: string[] = [];
  const eq = (what: string, got: unknown, want: unknown) => {
    if (!Bun.deepEquals(got, want)) out.push(`${what}: got ${clip(got)}, want ${clip(want)}`);
  };
  const near = (what: string, got: number, want: number) => {
    if (!(Math.abs(got - want) <= 0.02 * Math.abs(want))) out.push(`${what}: got ${got}, want ${want} ± 2 %`);
  };
  const q = `from=${from}&to=${to}`;
  if (parts.includes("summary")) {
    const s = await get(`/api/metrics/summary?${q}`);
    for (const type of TYPES) eq(`events.${type}`, s.events[type], x.byType[type] ?? 0);
    eq("events.total", s.events.total, x.total);
    eq("revenue (cents)", Math.round(s.revenue * 100), x.revenue);
    eq("orders", s.orders, x.orders);
    eq("units", s.units, x.units);
    eq("aov", s.aov, x.orders ? Math.round(x.revenue / x.orders) / 100 : 0);
    eq("duplicates", s.duplicates, x.duplicates);
    eq("late.dropped", s.late.dropped, x.droppedIn);
    near("uniqueUsers", s.uniqueUsers, x.users);
    near("uniqueSessions", s.uniqueSessions, x.sessions);
  }
  if (parts.includes("top"))
    for (const by of ["views", "carts", "units", "revenue"] as const)
      eq(`top by ${by}`, (await get(`/api/products/top?by=${by}&limit=25&${q}`)).items, topOf(x.products, by, 25));
  if (parts.includes("funnel")) {
    const f = await get(`/api/funnel?${q}`);
    eq("funnel.sessions", f.sessions, x.funnel.sessions);
    eq("funnel steps", f.steps.map((st: { sessions: number }) => st.sessions), [x.funnel.view, x.funnel.cart, x.funnel.checkout, x.funnel.purchase]);
    eq("cartAbandonment.sessions", f.cartAbandonment.sessions, x.funnel.abandon);
  }
  if (parts.includes("campaigns")) eq("campaigns", (await get(`/api/campaigns?${q}`)).items, campaignItemsOf(x));
  if (parts.includes("performance")) {
    const perf = (await get(`/api/performance?${q}`)).loadTimeMs;
    const sorted = [...x.loads].sort((a, b) => a - b);
    eq("loadTimeMs.count", perf.count, sorted.length);
    if (sorted.length > 0) for (const [k, qq] of [["p50", 0.5], ["p95", 0.95], ["p99", 0.99]] as const) near(`loadTimeMs.${k}`, perf[k], nearestRank(sorted, qq));
  }
  if (parts.includes("inventory")) {
    const inv = (await get(`/api/inventory?lowStock=1000000&limit=1000&${q}`)).items as Array<{ productId: string; stock: number; unitsSold: number }>;
    eq("inventory length", inv.length, Math.min(1000, x.stock.size));
    for (const item of inv) {
      eq(`stock of ${item.productId}`, item.stock, x.stock.get(item.productId)?.stock);
      eq(`unitsSold of ${item.productId}`, item.unitsSold, x.products.get(item.productId)?.units ?? 0);
    }
  }
  if (parts.includes("timeseries")) {
    const ts = await get(`/api/metrics/timeseries?metric=revenue&step=1h&${q}`);
    eq("revenue timeseries sum (cents)", ts.points.reduce((a: number, p: { value: number }) => a + Math.round(p.value * 100), 0), x.revenue);
  }
  return out;
}

/** Events the engine has taken a decision on over [from, to): counted, duplicate or late-dropped. */
export function decidedOf(summary: { events: { total: number }; duplicates: number; late: { dropped: number } }): number {
  return summary.events.total + summary.duplicates + summary.late.dropped;
}

function clip(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}
