// Range queries: [from, to) is cut into aligned 1 s / 1 m / 1 h segments; each segment merges stored
// windows with the memory windows that have not been folded into a stored or coarser window yet.

import type { Aggregator, InventoryEntry, MemWindow, Res } from "./aggregator.ts";
import { FLUSHING, HOUR, LIVE, MIN, PARTIAL, SEC } from "./aggregator.ts";
import type { Dictionary } from "./dictionary.ts";
import { TYPES } from "./record.ts";
import {
  C_DUPLICATES,
  C_LATE_DROPPED,
  C_LATE_MERGED,
  C_ORDERS,
  C_REVENUE,
  C_TOTAL,
  C_UNITS,
  DIRECT,
  DIRECT_KEY,
  F_ABANDON,
  F_CART,
  F_CHECKOUT,
  F_PURCHASE,
  F_SESSIONS,
  F_VIEW,
  G_ORDERS,
  G_REVENUE,
  G_SESSIONS,
  P_CARTS,
  P_REVENUE,
  P_UNITS,
  P_VIEWS,
  createPane,
  mergeEncoded,
  mergePane,
  type Family,
  type Pane,
} from "./pane.ts";

/** The part of a history store a query needs (kept here so window/ does not depend on store/). */
export interface WindowReader {
  readWindows(
    families: readonly string[],
    res: Res,
    from: number,
    to: number,
  ): Promise<Array<{ family: string; start: number; partition: number; value: Uint8Array }>>;
  /**
   * Optional: the stored windows of one segment already merged into one pane, with the
   * `res:start:partition` keys they came from. Readers may cache it; the pane is never mutated.
   */
  readMerged?(families: readonly Family[], res: Res, from: number, to: number): Promise<{ pane: Pane; keys: Set<string> }>;
  /**
   * Optional: a counter that moves whenever stored rows change under the reader (a commit begins, ends or is
   * abandoned; another instance wrote). A read that saw it move may mix rows from before and after: retried.
   */
  seq?(): number;
}

/** Open windows held by other instances (their partitions), as they last published them. */
export interface RemoteWindows {
  windows: Iterable<MemWindow>;
  corrections: Iterable<MemWindow>;
}

export interface Segment {
  res: Res;
  from: number;
  to: number;
}

const floorTo = (t: number, r: number) => Math.floor(t / r) * r;
const ceilTo = (t: number, r: number) => Math.ceil(t / r) * r;

/** Cut [from, to) (rounded out to whole seconds) into the coarsest aligned segments, none coarser than maxRes. */
export function segments(from: number, to: number, maxRes: Res = HOUR): Segment[] {
  const f = floorTo(from, SEC);
  const t = ceilTo(to, SEC);
  if (t <= f) return [];
  const a = ceilTo(f, MIN);
  const b = floorTo(t, MIN);
  if (a >= b || maxRes === SEC) return [{ res: SEC, from: f, to: t }];
  if (maxRes === MIN) {
    const out: Segment[] = [];
    if (f < a) out.push({ res: SEC, from: f, to: a });
    out.push({ res: MIN, from: a, to: b });
    if (b < t) out.push({ res: SEC, from: b, to: t });
    return out;
  }
  const out: Segment[] = [];
  if (f < a) out.push({ res: SEC, from: f, to: a });
  const A = ceilTo(a, HOUR);
  const B = floorTo(b, HOUR);
  if (A < B) {
    if (a < A) out.push({ res: MIN, from: a, to: A });
    out.push({ res: HOUR, from: A, to: B });
    if (B < b) out.push({ res: MIN, from: B, to: b });
  } else out.push({ res: MIN, from: a, to: b });
  if (b < t) out.push({ res: SEC, from: b, to: t });
  return out;
}

/** Does a memory window count for a segment of resolution R? (see the state machine in aggregator.ts) */
function counts(w: MemWindow, state: number, R: Res): boolean {
  if (w.res === R) return true;
  if (w.res > R) return false;
  if (state === LIVE) return true; // 1 s pane not yet rolled up
  return state === PARTIAL && w.res === MIN && R === HOUR; // 1 m still collecting
}

/**
 * Merge every window in [from, to) into buckets of `step` (or one bucket when step is absent).
 * Buckets are aligned to the step; the first and last hold only the part inside [from, to).
 * Returns bucket start -> pane.
 */
export async function collect(
  agg: Aggregator,
  reader: WindowReader,
  from: number,
  to: number,
  families: readonly Family[],
  step?: Res,
  /** windows of a resolution starting before this were removed by retention: edges widen to the next resolution */
  retained?: { sec: number; min: number },
  /** partitions owned elsewhere: their open windows and pending corrections */
  remote?: () => RemoteWindows | null,
): Promise<Map<number, Pane>> {
  // the panes hold dictionary ids across the reads: none of them may be freed (and reused) meanwhile. A
  // caller that resolves ids after this returns (top products, campaigns, inventory) pins for itself too.
  const unpin = agg.dict.pin();
  try {
    // a commit that starts or ends while the reads are in flight can make a row count twice (in the store and
    // in memory) or not at all: read again; after a few tries the answer is taken as it is (off by one commit)
    for (let attempt = 0; ; attempt++) {
      const seq = reader.seq?.() ?? 0;
      const out = await collectOnce(agg, reader, from, to, families, step, retained, remote?.() ?? null);
      if (attempt >= 4 || (reader.seq?.() ?? 0) === seq) return out;
    }
  } finally {
    unpin();
  }
}

async function collectOnce(
  agg: Aggregator,
  reader: WindowReader,
  from: number,
  to: number,
  families: readonly Family[],
  step: Res | undefined,
  retained: { sec: number; min: number } | undefined,
  remote: RemoteWindows | null,
): Promise<Map<number, Pane>> {
  if (retained && !step) {
    if (from < retained.sec) from = floorTo(from, MIN);
    if (to <= retained.sec) to = ceilTo(to, MIN);
    if (from < retained.min) from = floorTo(from, HOUR);
    if (to <= retained.min) to = ceilTo(to, HOUR);
  }
  const segs: Segment[] = segments(from, to, step ?? HOUR);
  const out = new Map<number, Pane>();
  const bucketOf = (t: number) => (step ? floorTo(t, step) : 0);
  const paneAt = (t: number) => {
    const b = bucketOf(t);
    let p = out.get(b);
    if (!p) out.set(b, (p = createPane()));
    return p;
  };
  if (segs.length === 0) return out;
  // a single-bucket query can take whole merged segments (cacheable) instead of rows
  const merged = !step && reader.readMerged ? reader.readMerged.bind(reader) : null;
  const pendingMerged = merged ? Promise.all(segs.map((s) => merged(families, s.res, s.from, s.to))) : null;
  const pending = merged ? null : Promise.all(segs.map((s) => reader.readWindows(families, s.res, s.from, s.to)));
  // Snapshot memory right after issuing the reads: a window leaves memory only after its rows are
  // durable, so one that flushes while the reads are in flight is found in the store instead, and
  // one found in both is skipped below.
  const mem = [...agg.memWindows()].map((w) => ({ w, state: w.state }));
  const corr = [...agg.pendingCorrections()];
  const remoteMem = remote ? [...remote.windows] : [];
  const remoteCorr = remote ? [...remote.corrections] : [];
  let stored = new Set<string>();
  if (pendingMerged) {
    for (const m of await pendingMerged) {
      mergePane(paneAt(0), m.pane);
      if (stored.size === 0) stored = new Set(m.keys);
      else for (const k of m.keys) stored.add(k);
    }
  } else {
    const reads = await pending!;
    for (let i = 0; i < segs.length; i++) {
      for (const row of reads[i]) {
        stored.add(`${segs[i].res}:${row.start}:${row.partition}`);
        mergeEncoded(paneAt(row.start), row.family as Family, row.value, agg.dict);
      }
    }
  }
  const segOf = (t: number): Segment | null => {
    for (const s of segs) if (t >= s.from && t < s.to) return s;
    return null;
  };
  for (const { w, state } of mem) {
    const s = segOf(w.start);
    if (!s || !counts(w, state, s.res)) continue;
    // a flushing window whose rows are already readable was counted from the store
    if (state === FLUSHING && stored.has(`${w.res}:${w.start}:${w.partition}`)) continue;
    mergePane(paneAt(w.start), w.pane);
  }
  // another owner's windows: any of them may have been committed since it published them
  for (const w of remoteMem) {
    const s = segOf(w.start);
    if (!s || !counts(w, w.state, s.res) || stored.has(`${w.res}:${w.start}:${w.partition}`)) continue;
    mergePane(paneAt(w.start), w.pane);
  }
  for (const c of corr.concat(remoteCorr)) {
    const s = segOf(c.start);
    if (s && s.res === c.res) mergePane(paneAt(c.start), c.pane);
  }
  return out;
}

const money = (cents: number) => Math.round(cents) / 100;
const iso = (t: number) => new Date(t).toISOString();

export interface Summary {
  from: string;
  to: string;
  events: Record<string, number>;
  revenue: number;
  orders: number;
  units: number;
  aov: number;
  uniqueUsers: number;
  uniqueSessions: number;
  late: { merged: number; dropped: number };
  duplicates: number;
  watermark: string | null;
}

export function summaryOf(p: Pane, from: number, to: number, watermark: number): Summary {
  const events: Record<string, number> = {};
  TYPES.forEach((t, i) => (events[t] = p.core[i]));
  events.total = p.core[C_TOTAL];
  const orders = p.core[C_ORDERS];
  return {
    from: iso(from),
    to: iso(to),
    events,
    revenue: money(p.core[C_REVENUE]),
    orders,
    units: p.core[C_UNITS],
    aov: orders > 0 ? money(p.core[C_REVENUE] / orders) : 0,
    uniqueUsers: p.users ? Math.round(p.users.estimate()) : 0,
    uniqueSessions: p.sessions ? Math.round(p.sessions.estimate()) : 0,
    late: { merged: p.core[C_LATE_MERGED], dropped: p.core[C_LATE_DROPPED] },
    duplicates: p.core[C_DUPLICATES],
    watermark: Number.isFinite(watermark) ? iso(watermark) : null,
  };
}

export const TIMESERIES_METRICS = ["events", "revenue", "orders", "users", "sessions"] as const;
export type TimeseriesMetric = (typeof TIMESERIES_METRICS)[number];

export function familiesFor(metric: TimeseriesMetric): Family[] {
  return metric === "users" ? ["users"] : metric === "sessions" ? ["sessions"] : ["core"];
}

export function pointValue(p: Pane | undefined, metric: TimeseriesMetric, typeIndex: number): number {
  if (!p) return 0;
  switch (metric) {
    case "events":
      return typeIndex >= 0 ? p.core[typeIndex] : p.core[C_TOTAL];
    case "revenue":
      return money(p.core[C_REVENUE]);
    case "orders":
      return p.core[C_ORDERS];
    case "users":
      return p.users ? Math.round(p.users.estimate()) : 0;
    case "sessions":
      return p.sessions ? Math.round(p.sessions.estimate()) : 0;
  }
}

export const TOP_BY = ["views", "carts", "units", "revenue"] as const;
export type TopBy = (typeof TOP_BY)[number];
const TOP_COL: Record<TopBy, number> = { views: P_VIEWS, carts: P_CARTS, units: P_UNITS, revenue: P_REVENUE };

/** Exact top-K over the merged product table; ties by productId ascending. */
export function topProducts(p: Pane, dict: Dictionary, by: TopBy, limit: number): Array<{ productId: string; value: number }> {
  const t = p.products;
  if (!t) return [];
  const col = TOP_COL[by];
  const rows: Array<{ productId: string; value: number }> = [];
  for (const [id, r] of t.index) {
    const v = t.data[r + col];
    if (v > 0) rows.push({ productId: dict.str(id), value: v });
  }
  rows.sort((a, b) => b.value - a.value || (a.productId < b.productId ? -1 : a.productId > b.productId ? 1 : 0));
  const top = rows.slice(0, limit);
  if (by === "revenue") for (const r of top) r.value = money(r.value);
  return top;
}

export function funnelOf(p: Pane) {
  const f = p.funnel;
  const steps = [
    { step: "product_view", sessions: f[F_VIEW] },
    { step: "add_to_cart", sessions: f[F_CART] },
    { step: "checkout", sessions: f[F_CHECKOUT] },
    { step: "purchase", sessions: f[F_PURCHASE] },
  ];
  let prev = f[F_SESSIONS];
  const out = steps.map((s) => {
    const conversion = prev > 0 ? Math.round((s.sessions / prev) * 10000) / 10000 : 0;
    prev = s.sessions;
    return { ...s, conversion };
  });
  const carts = f[F_CART];
  return {
    sessions: f[F_SESSIONS],
    steps: out,
    cartAbandonment: {
      sessions: f[F_ABANDON],
      rate: carts > 0 ? Math.round((f[F_ABANDON] / carts) * 10000) / 10000 : 0,
    },
  };
}

export function performanceOf(p: Pane) {
  const s = p.load;
  if (!s || s.count === 0) return { loadTimeMs: { count: 0, p50: null, p95: null, p99: null } };
  const r = (v: number) => Math.round(v * 100) / 100;
  return {
    loadTimeMs: { count: s.count, p50: r(s.quantile(0.5)), p95: r(s.quantile(0.95)), p99: r(s.quantile(0.99)) },
  };
}

export function campaignsOfPane(p: Pane, dict: Dictionary) {
  const t = p.campaigns;
  const items: Array<{ source: string; sessions: number; orders: number; revenue: number }> = [];
  if (t) {
    for (const [id, r] of t.index) {
      const sessions = t.data[r + G_SESSIONS];
      const orders = t.data[r + G_ORDERS];
      const revenue = t.data[r + G_REVENUE];
      if (sessions === 0 && orders === 0 && revenue === 0) continue;
      items.push({ source: id === DIRECT ? DIRECT_KEY : dict.str(id), sessions, orders, revenue: money(revenue) });
    }
  }
  items.sort((a, b) => b.sessions - a.sessions || (a.source < b.source ? -1 : 1));
  return { items };
}

/** `entries`: latest stock per product (default: the aggregator's, i.e. the partitions this instance owns) */
export function inventoryOf(agg: Aggregator, p: Pane, lowStock: number | null, limit: number, entries: Iterable<InventoryEntry> = agg.inventory()) {
  const sold = p.products;
  const items: Array<{ productId: string; stock: number; unitsSold: number }> = [];
  for (const e of entries) {
    if (lowStock !== null && e.stock > lowStock) continue;
    const r = sold?.index.get(e.product);
    items.push({
      productId: agg.dict.str(e.product),
      stock: e.stock,
      unitsSold: r === undefined ? 0 : sold!.data[r + P_UNITS],
    });
  }
  items.sort((a, b) => a.stock - b.stock || b.unitsSold - a.unitsSold || (a.productId < b.productId ? -1 : 1));
  return { items: items.slice(0, limit) };
}
