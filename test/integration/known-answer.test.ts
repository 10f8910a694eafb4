// Known-answer end to end: >= 100 k generated events with duplicates, bounded disorder, late-merged
// and late-dropped events go through HTTP, the log, the workers and the aggregator; every answer is
// compared with totals computed here by plain loops over the same events.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createGenerator, perturb, type WireEvent } from "../../src/generator/index.ts";
import { getJson, post, startTestEngine } from "../helpers.ts";

const N = 100_000;
const RATE = 10; // events per simulated second: the stream spans ~2.8 h of event time
const GAP = 30 * 60_000;
const DROP_LAG = 100 * 60_000; // far beyond allowed lateness plus any watermark skew
const start = Math.floor((Date.now() - 3.5 * 3_600_000) / 3_600_000) * 3_600_000 + 17 * 60_000 + 13_000;

type Expected = ReturnType<typeof expectedOf>;

/** Very late events: some events are held back until the stream is DROP_LAG past them. */
function injectDropped(events: WireEvent[], exclude: Set<string>, every: number): { events: WireEvent[]; dropped: Set<string> } {
  let streamMax = -Infinity;
  for (const e of events) streamMax = Math.max(streamMax, e.timestamp);
  const held: WireEvent[] = [];
  const dropped = new Set<string>();
  const kept: WireEvent[] = [];
  let k = 0;
  for (const e of events) {
    // only events the stream certainly overtakes by DROP_LAG, so every held event is really late
    if (!exclude.has(e.eventId) && e.timestamp < streamMax - DROP_LAG - 60_000 && ++k % every === 0) {
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
    while (h < held.length && maxT >= held[h].timestamp + DROP_LAG) out.push(held[h++]);
  }
  if (h !== held.length) throw new Error("a held event was never overtaken");
  return { events: out, dropped };
}

/** The independent answer: plain loops in arrival order, with the documented semantics. */
function expectedOf(arrivals: WireEvent[], dropped: Set<string>, from: number, to: number) {
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
  const products = new Map<string, { views: number; carts: number; units: number; revenue: number }>();
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
  // sessions: per sessionId, split on 30 min event-time gaps; a session belongs to the window of its first event
  const bySession = new Map<string, WireEvent[]>();
  for (const e of counted) {
    if (e.type === "inventory_update") continue;
    let l = bySession.get(e.sessionId!);
    if (!l) bySession.set(e.sessionId!, (l = []));
    l.push(e);
  }
  const funnel = { sessions: 0, view: 0, cart: 0, checkout: 0, purchase: 0, abandon: 0 };
  const campaigns = new Map<string, { sessions: number; orders: number; revenue: number }>();
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
      if (group.length > 0 && e.timestamp > group[group.length - 1].timestamp + GAP) flush();
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

function topOf(products: Expected["products"], by: "views" | "carts" | "units" | "revenue", limit: number) {
  return [...products.entries()]
    .map(([productId, p]) => ({ productId, value: by === "revenue" ? p.revenue / 100 : p[by] }))
    .filter((x) => x.value > 0)
    .sort((a, b) => b.value - a.value || (a.productId < b.productId ? -1 : 1))
    .slice(0, limit);
}

function nearestRank(sorted: number[], q: number): number {
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1];
}

let t: Awaited<ReturnType<typeof startTestEngine>>;
let arrivals: WireEvent[];
let dropped: Set<string>;
let lateIds: Set<string>;
let duplicateIds: Set<string>;
let lo: number;
let hi: number;

beforeAll(async () => {
  const gen = createGenerator({ seed: 4242, rate: RATE, startTime: start, diurnal: false, bursts: true, products: 2000, users: 20_000 });
  const base = gen.next(N);
  const p = perturb(base, { seed: 7, duplicateRate: 0.02, disorderMs: 2000, lateRate: 0.005, lateMs: 20_000 });
  duplicateIds = p.duplicateIds;
  lateIds = p.lateIds;
  const d = injectDropped(p.events, new Set([...p.duplicateIds, ...p.lateIds]), 150);
  arrivals = d.events;
  dropped = d.dropped;
  lo = Math.min(...base.map((e) => e.timestamp));
  hi = Math.max(...base.map((e) => e.timestamp)) + 1;

  t = await startTestEngine(["--partitions", "8"]);
  const BATCH = 5000;
  for (let i = 0; i < arrivals.length; i += BATCH) {
    const body = arrivals.slice(i, i + BATCH).map((e) => JSON.stringify(e)).join("\n");
    const res = await post(t.app, body);
    expect(res.status).toBe(202);
    const r = (await res.json()) as { accepted: number; rejected: number };
    expect(r.rejected).toBe(0);
    // the stream arrives over time, as in production: lateness is judged against a watermark that
    // has seen the previous batches (each batch spans ~8 min of event time, far below DROP_LAG)
    expect(await t.engine.caughtUp(30_000)).toBe(true);
  }
  expect(await t.engine.caughtUp(60_000)).toBe(true);
}, 180_000);

afterAll(async () => {
  await t?.stop();
});

describe("known-answer end to end (100 k events, duplicates, disorder, late)", () => {
  it("builds a data set with every perturbation present", () => {
    expect(arrivals.length).toBeGreaterThanOrEqual(N);
    expect(duplicateIds.size).toBeGreaterThan(1000);
    expect(lateIds.size).toBeGreaterThan(200);
    expect(dropped.size).toBeGreaterThan(100);
  });

  for (const phase of ["before checkpoint", "after checkpoints"] as const) {
    describe(phase, () => {
      beforeAll(async () => {
        if (phase === "after checkpoints") {
          await t.engine.checkpoint();
          await t.engine.checkpoint();
        }
      });

      for (const [name, f, tt] of [
        ["the whole stream", () => lo, () => hi],
        ["an hour-aligned slice", () => Math.ceil(lo / 3_600_000) * 3_600_000, () => Math.ceil(lo / 3_600_000) * 3_600_000 + 3_600_000],
        ["an unaligned slice", () => lo + 1_234_567, () => lo + 1_234_567 + 2_345_678],
      ] as const) {
        it(`answers summary, top-K, funnel, campaigns and percentiles exactly over ${name}`, async () => {
          const from = Math.floor(f() / 1000) * 1000;
          const to = Math.ceil(tt() / 1000) * 1000;
          const x = expectedOf(arrivals, dropped, from, to);
          const q = `from=${from}&to=${to}`;
          const s = (await getJson(t.app, `/api/metrics/summary?${q}`)).body;
          for (const type of ["page_view", "product_view", "add_to_cart", "remove_from_cart", "checkout", "purchase", "inventory_update"])
            expect([type, s.events[type]]).toEqual([type, x.byType[type] ?? 0]);
          expect(s.events.total).toBe(x.total);
          expect(Math.round(s.revenue * 100)).toBe(x.revenue);
          expect(s.orders).toBe(x.orders);
          expect(s.units).toBe(x.units);
          expect(s.aov).toBe(x.orders ? Math.round(x.revenue / x.orders) / 100 : 0);
          expect(s.duplicates).toBe(x.duplicates);
          expect(s.late.dropped).toBe(x.droppedIn);
          expect(Math.abs(s.uniqueUsers - x.users) / x.users).toBeLessThanOrEqual(0.02);
          expect(Math.abs(s.uniqueSessions - x.sessions) / x.sessions).toBeLessThanOrEqual(0.02);

          for (const by of ["views", "carts", "units", "revenue"] as const) {
            const top = (await getJson(t.app, `/api/products/top?by=${by}&limit=25&${q}`)).body;
            expect(top.items).toEqual(topOf(x.products, by, 25));
          }

          const fun = (await getJson(t.app, `/api/funnel?${q}`)).body;
          expect(fun.sessions).toBe(x.funnel.sessions);
          expect(fun.steps.map((st: { sessions: number }) => st.sessions)).toEqual([x.funnel.view, x.funnel.cart, x.funnel.checkout, x.funnel.purchase]);
          expect(fun.cartAbandonment.sessions).toBe(x.funnel.abandon);

          const camp = (await getJson(t.app, `/api/campaigns?${q}`)).body;
          const want = [...x.campaigns.entries()]
            .filter(([, c]) => c.sessions || c.orders || c.revenue)
            .map(([source, c]) => ({ source, sessions: c.sessions, orders: c.orders, revenue: c.revenue / 100 }))
            .sort((a, b) => b.sessions - a.sessions || (a.source < b.source ? -1 : 1));
          expect(camp.items).toEqual(want);

          const perf = (await getJson(t.app, `/api/performance?${q}`)).body.loadTimeMs;
          const sorted = [...x.loads].sort((a, b) => a - b);
          expect(perf.count).toBe(sorted.length);
          for (const [k, qq] of [["p50", 0.5], ["p95", 0.95], ["p99", 0.99]] as const)
            expect(Math.abs(perf[k] - nearestRank(sorted, qq)) / nearestRank(sorted, qq)).toBeLessThanOrEqual(0.02);
        }, 60_000);
      }
    });
  }

  it("counts late events within allowed lateness as merged and the very late as dropped", async () => {
    const s = (await getJson(t.app, `/api/metrics/summary?from=${lo}&to=${hi}`)).body;
    expect(s.late.dropped).toBe(dropped.size);
    // Whether a 20 s-late event is already behind the watermark depends on how the workers' batches
    // interleave, so only the bound is exact here (the aggregator unit tests pin it down with an
    // injected clock); that every one of them was counted is proven by the exact totals above.
    expect(s.late.merged).toBeLessThanOrEqual(lateIds.size);
  });

  it("reports the latest stock per product by event time and hourly timeseries that add up", async () => {
    const x = expectedOf(arrivals, dropped, lo, hi);
    const inv = (await getJson(t.app, `/api/inventory?lowStock=1000000&limit=1000&from=${lo}&to=${hi}`)).body.items as Array<{ productId: string; stock: number; unitsSold: number }>;
    expect(inv.length).toBe(Math.min(1000, x.stock.size));
    for (const item of inv) {
      expect(item.stock).toBe(x.stock.get(item.productId)!.stock);
      expect(item.unitsSold).toBe(x.products.get(item.productId)?.units ?? 0);
    }
    const ts = (await getJson(t.app, `/api/metrics/timeseries?metric=revenue&step=1h&from=${lo}&to=${hi}`)).body;
    const sum = ts.points.reduce((a: number, p: { value: number }) => a + Math.round(p.value * 100), 0);
    expect(sum).toBe(x.revenue);
  });
});
