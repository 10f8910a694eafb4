// Known-answer end to end: >= 100 k generated events with duplicates, bounded disorder, late-merged
// and late-dropped events go through HTTP, the log, the workers and the aggregator; every answer is
// compared with totals computed by plain loops over the same events (the oracle in test/ground-truth.ts).

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import type { WireEvent } from "../../src/generator/index.ts";
import { buildDataset, campaignItemsOf, expectedOf, nearestRank, topOf } from "../ground-truth.ts";
import { getJson, post, startTestEngine } from "../helpers.ts";

const N = 100_000;
const RATE = 10; // events per simulated second: the stream spans ~2.8 h of event time
const start = Math.floor((Date.now() - 3.5 * 3_600_000) / 3_600_000) * 3_600_000 + 17 * 60_000 + 13_000;

let t: Awaited<ReturnType<typeof startTestEngine>>;
let arrivals: WireEvent[];
let dropped: Set<string>;
let lateIds: Set<string>;
let duplicateIds: Set<string>;
let lo: number;
let hi: number;

beforeAll(async () => {
  const d = buildDataset({
    n: N, seed: 4242, rate: RATE, start, bursts: true, products: 2000, users: 20_000,
    perturb: { seed: 7, duplicateRate: 0.02, disorderMs: 2000, lateRate: 0.005, lateMs: 20_000 },
    dropEvery: 150,
  });
  ({ duplicateIds, lateIds, arrivals, dropped, lo, hi } = d);

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
          expect(camp.items).toEqual(campaignItemsOf(x));

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
