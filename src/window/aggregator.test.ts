// Window aggregator tests: ring records in, metric families out through collect(), with checkpoints into an
// in-memory store. Expected values are worked out by hand or by plain loops over the same events.

import { describe, expect, it } from "bun:test";
import { HOUR, MIN, SEC, createAggregator, type Aggregator, type MemWindow, type PartitionState } from "./aggregator.ts";
import { createDictionary } from "./dictionary.ts";
import {
  C_DUPLICATES,
  C_LATE_DROPPED,
  C_LATE_MERGED,
  C_ORDERS,
  C_REVENUE,
  C_TOTAL,
  C_UNITS,
  FAMILIES,
  N_CORE,
  createPane,
  mergeEncoded,
  type Family,
  type Pane,
} from "./pane.ts";
import { campaignsOfPane, collect, funnelOf, inventoryOf, performanceOf, summaryOf, topProducts } from "./query.ts";
import { RECORD_WORDS } from "./record.ts";
import {
  checkpoint,
  createFeeder,
  createLatenessOracle,
  createMemoryHistory,
  encodeEvent,
  expectedPlain,
  expectedStock,
  fakeClock,
  generateStream,
  plainOf,
  prng,
  type Applied,
  type MemoryHistory,
  type TestEvent,
} from "./test-records.ts";

const T0 = Date.UTC(2024, 4, 1, 10, 0, 0); // hour-aligned
const OPTS = { outOfOrdernessMs: 5000, allowedLatenessMs: 60_000, sessionGapMs: 30 * MIN, idleTimeoutMs: 60_000 };
const PV = "page_view";

function setup(partitions = 1) {
  const clock = fakeClock();
  const agg = createAggregator({ partitions, ...OPTS, clock: clock.fn });
  const store = createMemoryHistory();
  const next = new Array<number>(partitions).fill(0);
  /** an event with the next offset of its partition; user u1 / session s1 unless given */
  const ev = (e: Partial<TestEvent> & Pick<TestEvent, "type" | "time">): TestEvent => {
    const partition = e.partition ?? 0;
    return { userId: "u1", sessionId: "s1", ...e, partition, offset: e.offset ?? next[partition]++ };
  };
  return { clock, agg, store, feed: createFeeder(agg), ev };
}

async function merged(agg: Aggregator, store: MemoryHistory, from: number, to: number, families: readonly Family[] = FAMILIES): Promise<Pane> {
  return (await collect(agg, store, from, to, families)).get(0) ?? createPane();
}

function core(values: Partial<Record<number, number>>): number[] {
  const c = new Array<number>(N_CORE).fill(0);
  for (const [k, v] of Object.entries(values)) c[Number(k)] = v!;
  return c;
}

/** "res@offset-from-T0:state" of every memory window, sorted */
function windows(agg: Aggregator): string[] {
  const name = ["live", "partial", "flushing"];
  return [...agg.memWindows()].map((w) => `${w.res}@${w.start - T0}:${name[w.state]}`).sort();
}

describe("lateness", () => {
  it("merges an event behind the watermark but within allowed lateness and counts it in late.merged", async () => {
    const { agg, store, feed, ev } = setup();
    feed.batch([ev({ type: PV, time: T0 + 100_000 })]);
    expect(agg.watermark.value).toBe(T0 + 95_000);
    feed.batch([ev({ type: PV, time: T0 + 60_000, sessionId: "s2" }), ev({ type: PV, time: T0 + 96_000 })]);
    const all = await merged(agg, store, T0, T0 + 200_000);
    expect(Array.from(all.core)).toEqual(core({ 0: 3, [C_TOTAL]: 3, [C_LATE_MERGED]: 1 }));
    const sec = await merged(agg, store, T0 + 60_000, T0 + 61_000);
    expect(Array.from(sec.core)).toEqual(core({ 0: 1, [C_TOTAL]: 1, [C_LATE_MERGED]: 1 }));
    expect(agg.capture().late).toEqual([]);
  });

  it("drops an event beyond the allowed lateness, counts it in the window of its event time and keeps it with a reason", async () => {
    const { agg, store, feed, ev } = setup();
    feed.batch([ev({ type: "product_view", time: T0 + 200_000, productId: "p-1" })]);
    const late = ev({
      type: "purchase",
      time: T0 + 100_000,
      sessionId: "s2",
      items: [{ productId: "p-1", priceCents: 1000, quantity: 2 }],
    });
    feed.batch([late]);
    expect(agg.applied.get(0)).toBe(late.offset + 1);

    const sec = await merged(agg, store, T0 + 100_000, T0 + 101_000);
    expect(Array.from(sec.core)).toEqual(core({ [C_LATE_DROPPED]: 1 }));
    const all = await merged(agg, store, T0, T0 + 300_000);
    expect(Array.from(all.core)).toEqual(core({ 1: 1, [C_TOTAL]: 1, [C_LATE_DROPPED]: 1 }));
    expect(plainOf(all, agg.dict).products).toEqual({ "p-1": [1, 0, 0, 0] });
    expect(funnelOf(all).sessions).toBe(1); // the dropped purchase opened no session

    const c = await checkpoint(agg, store);
    expect(c.late).toHaveLength(1);
    expect(c.late[0]).toMatchObject({ partition: 0, offset: late.offset, time: late.time, type: "purchase" });
    expect(c.late[0].reason).toContain("allowed lateness");
    expect([...store.late.values()]).toEqual(c.late);
  });

  it("counts a drop for a window already checkpointed through a correction applied at the next checkpoint", async () => {
    const { agg, store, feed, ev } = setup();
    feed.batch([ev({ type: PV, time: T0 + 1000 }), ev({ type: PV, time: T0 + 130_000, sessionId: "s2" })]);
    await checkpoint(agg, store); // 1 s pane at +1 s and the minute at +0 are stored and leave memory
    expect(store.windows.has(`${SEC}:core:${T0 + 1000}:0`)).toBe(true);
    expect(store.windows.has(`${MIN}:core:${T0}:0`)).toBe(true);
    feed.batch([ev({ type: PV, time: T0 + 1500, sessionId: "s3" })]);

    const expectations = async () => {
      const sec = await merged(agg, store, T0 + 1000, T0 + 2000);
      expect(Array.from(sec.core)).toEqual(core({ 0: 1, [C_TOTAL]: 1, [C_LATE_DROPPED]: 1 }));
      const minute = await merged(agg, store, T0, T0 + MIN);
      expect(Array.from(minute.core)).toEqual(core({ 0: 1, [C_TOTAL]: 1, [C_LATE_DROPPED]: 1 }));
      const hour = await merged(agg, store, T0, T0 + HOUR);
      expect(Array.from(hour.core)).toEqual(core({ 0: 2, [C_TOTAL]: 2, [C_LATE_DROPPED]: 1 }));
    };
    await expectations(); // store + pending correction
    await checkpoint(agg, store);
    expect(agg.stats().corrections).toBe(0);
    const stored = createPane();
    mergeEncoded(stored, "core", store.windows.get(`${SEC}:core:${T0 + 1000}:0`)!.value, agg.dict);
    expect(stored.core[C_LATE_DROPPED]).toBe(1);
    await expectations(); // store only
    await checkpoint(agg, store);
    await expectations(); // a correction is applied once
  });
});

describe("panes and rollups", () => {
  it("rolls 1 s panes into 1 m and 1 h windows once the watermark passes their end plus the lateness", async () => {
    const { agg, store, feed, ev } = setup();
    feed.batch([ev({ type: PV, time: T0 + 500 })]);
    expect(windows(agg)).toEqual(["1000@0:live"]);
    feed.batch([ev({ type: PV, time: T0 + SEC + 60_000 + 5000 - 1 })]); // watermark 1 ms short
    expect(windows(agg)).toEqual(["1000@0:live", "1000@65000:live"]);
    feed.batch([ev({ type: PV, time: T0 + SEC + 60_000 + 5000 })]);
    expect(windows(agg)).toEqual(["1000@0:flushing", "1000@65000:live", "1000@66000:live", "60000@0:partial"]);

    await checkpoint(agg, store);
    expect(windows(agg)).toEqual(["1000@65000:live", "1000@66000:live", "60000@0:partial"]);
    expect(store.open.has(`${MIN}:${T0}:0`)).toBe(true); // partial rollups survive restarts
    expect(store.open.has(`${SEC}:${T0 + 65_000}:0`)).toBe(true);

    feed.batch([ev({ type: PV, time: T0 + MIN + 60_000 + 5000 })]); // minute 0 ends + lateness
    expect(windows(agg)).toEqual(["1000@125000:live", "1000@65000:live", "1000@66000:live", "3600000@0:partial", "60000@0:flushing"]);
    await checkpoint(agg, store);
    expect(store.open.has(`${MIN}:${T0}:0`)).toBe(false);
    const minute = createPane();
    mergeEncoded(minute, "core", store.windows.get(`${MIN}:core:${T0}:0`)!.value, agg.dict);
    expect(minute.core[C_TOTAL]).toBe(1);

    feed.batch([ev({ type: PV, time: T0 + HOUR + 60_000 + 5000 })]);
    await checkpoint(agg, store);
    const hour = createPane();
    mergeEncoded(hour, "core", store.windows.get(`${HOUR}:core:${T0}:0`)!.value, agg.dict);
    expect(hour.core[C_TOTAL]).toBe(4);
    expect([...agg.memWindows()].some((w) => w.res === HOUR && w.start === T0)).toBe(false);
    expect(Array.from((await merged(agg, store, T0, T0 + HOUR)).core)).toEqual(core({ 0: 4, [C_TOTAL]: 4 }));
  });

  it("keeps a delta that arrives while its flushed window is being written", async () => {
    const { agg, store, feed, ev } = setup();
    feed.batch([ev({ type: PV, time: T0 + 1000 }), ev({ type: PV, time: T0 + 70_000, sessionId: "s2" })]);
    let during: number[] = [];
    await checkpoint(agg, store, {
      beforeCommit: async () => {
        feed.batch([ev({ type: "duplicate", time: T0 + 1200 })]); // the 1 s window is in the capture
        during = Array.from((await merged(agg, store, T0 + 1000, T0 + 2000)).core);
      },
    });
    const want = core({ 0: 1, [C_TOTAL]: 1, [C_DUPLICATES]: 1 });
    expect(during).toEqual(want);
    expect(Array.from((await merged(agg, store, T0 + 1000, T0 + 2000)).core)).toEqual(want);
    await checkpoint(agg, store);
    expect(Array.from((await merged(agg, store, T0 + 1000, T0 + 2000)).core)).toEqual(want);
  });
});

describe("metrics", () => {
  function shop() {
    const s = setup();
    const { ev } = s;
    s.feed.batch([
      ev({ type: PV, time: T0 + 1000, loadTimeMs: 120 }),
      ev({ type: "product_view", time: T0 + 2000, productId: "p-b", priceCents: 1999 }),
      ev({ type: "product_view", time: T0 + 3000, productId: "p-a", userId: "u2", sessionId: "s2" }),
      ev({ type: "product_view", time: T0 + 3500, productId: "p-b", userId: "u2", sessionId: "s2" }),
      ev({ type: "add_to_cart", time: T0 + 4000, productId: "p-b", quantity: 2 }),
      ev({ type: "add_to_cart", time: T0 + 5000, productId: "p-a", userId: "u2", sessionId: "s2" }),
      ev({ type: "remove_from_cart", time: T0 + 6000, productId: "p-a", userId: "u2", sessionId: "s2" }),
      ev({ type: "checkout", time: T0 + 7000 }),
      ev({
        type: "purchase",
        time: T0 + 8000,
        items: [
          { productId: "p-b", priceCents: 1999, quantity: 2 },
          { productId: "p-a", priceCents: 500, quantity: 1 },
        ],
      }),
      ev({
        type: "purchase",
        time: T0 + 9000,
        userId: "u2",
        sessionId: "s2",
        items: [{ productId: "p-c", priceCents: 12345, quantity: 3 }],
      }),
      ev({ type: "inventory_update", time: T0 + 9500, productId: "p-a", stock: 7, userId: undefined, sessionId: undefined }),
    ]);
    return s;
  }

  it("counts events by type, revenue as the sum of price times quantity, orders, units and aov", async () => {
    const { agg, store } = shop();
    const p = await merged(agg, store, T0, T0 + MIN);
    expect(Array.from(p.core)).toEqual(
      core({ 0: 1, 1: 3, 2: 2, 3: 1, 4: 1, 5: 2, 6: 1, [C_TOTAL]: 11, [C_REVENUE]: 41_533, [C_ORDERS]: 2, [C_UNITS]: 6 }),
    );
    const s = summaryOf(p, T0, T0 + MIN, agg.watermark.value);
    expect(s.revenue).toBe(415.33);
    expect(s.aov).toBe(207.67); // 41533 / 2 = 20766.5 cents, rounded half up
    expect(s.events.total).toBe(11);
    expect(s.uniqueUsers).toBe(2);
    expect(s.uniqueSessions).toBe(2);
  });

  it("ranks top products by views, carts, units and revenue", async () => {
    const { agg, store } = shop();
    const p = await merged(agg, store, T0, T0 + MIN, ["products"]);
    expect(topProducts(p, agg.dict, "views", 10)).toEqual([
      { productId: "p-b", value: 2 },
      { productId: "p-a", value: 1 },
    ]);
    expect(topProducts(p, agg.dict, "carts", 10)).toEqual([
      { productId: "p-a", value: 1 },
      { productId: "p-b", value: 1 },
    ]);
    expect(topProducts(p, agg.dict, "units", 10)).toEqual([
      { productId: "p-c", value: 3 },
      { productId: "p-b", value: 2 },
      { productId: "p-a", value: 1 },
    ]);
    expect(topProducts(p, agg.dict, "revenue", 2)).toEqual([
      { productId: "p-c", value: 370.35 },
      { productId: "p-b", value: 39.98 },
    ]);
  });

  it("breaks top-product ties by productId ascending, not by arrival or dictionary order", async () => {
    const { agg, store, feed, ev } = setup();
    const ids = ["p-z", "p-m", "p-a", "p-q"];
    feed.batch(ids.map((productId, i) => ev({ type: "product_view", time: T0 + i * 100, productId })));
    feed.batch([ev({ type: "product_view", time: T0 + 900, productId: "p-q" })]);
    const p = await merged(agg, store, T0, T0 + SEC, ["products"]);
    expect(topProducts(p, agg.dict, "views", 3)).toEqual([
      { productId: "p-q", value: 2 },
      { productId: "p-a", value: 1 },
      { productId: "p-m", value: 1 },
    ]);
  });

  it("estimates load-time p50, p95 and p99 within 2 % of the exact sorted values", async () => {
    const { agg, store, feed, ev } = setup();
    const rnd = prng(7);
    const exact: number[] = [];
    const evs: TestEvent[] = [];
    for (let i = 0; i < 4000; i++) {
      const ms = Math.round((15 + 2500 * rnd() ** 3 + 40 * rnd()) * 1000) / 1000; // whole microseconds
      exact.push(ms);
      evs.push(ev({ type: PV, time: T0 + i * 900, sessionId: `s${i % 50}`, loadTimeMs: ms }));
    }
    for (let i = 0; i < evs.length; i += 100) {
      feed.batch(evs.slice(i, i + 100));
      if (i % 1000 === 0) await checkpoint(agg, store); // some sketches come back from stored rows
    }
    exact.sort((a, b) => a - b);
    const perf = performanceOf(await merged(agg, store, T0, T0 + 2 * HOUR, ["load"])).loadTimeMs;
    expect(perf.count).toBe(exact.length);
    for (const [q, got] of [
      [0.5, perf.p50],
      [0.95, perf.p95],
      [0.99, perf.p99],
    ] as const) {
      const want = exact[Math.max(1, Math.ceil(q * exact.length)) - 1];
      expect(Math.abs(got! - want) / want).toBeLessThanOrEqual(0.02);
    }
  });
});

describe("funnel", () => {
  it("counts sessions in the window of their first event, with step counts and cart abandonment", async () => {
    const { agg, store, feed, ev } = setup();
    const s = (sessionId: string, type: TestEvent["type"], sec: number) =>
      ev({ type, time: T0 + sec * 1000, sessionId, productId: "p-1", items: [{ productId: "p-1", priceCents: 100, quantity: 1 }] });
    feed.batch([
      s("s1", "product_view", 5),
      s("s2", "product_view", 6),
      s("s1", "add_to_cart", 10),
      s("s2", "add_to_cart", 12),
      s("s1", "checkout", 20),
      s("s1", "purchase", 30),
      s("s3", PV, 65),
      s("s4", "product_view", 70),
      s("s4", "add_to_cart", 75),
      s("s4", "checkout", 80),
      s("s4", "remove_from_cart", 125),
    ]);
    const f = async (from: number, to: number) => funnelOf(await merged(agg, store, T0 + from * MIN, T0 + to * MIN, ["funnel"]));
    const m0 = await f(0, 1);
    expect([m0.sessions, ...m0.steps.map((x) => x.sessions), m0.cartAbandonment.sessions]).toEqual([2, 2, 2, 1, 1, 1]);
    const m1 = await f(1, 2);
    expect([m1.sessions, ...m1.steps.map((x) => x.sessions), m1.cartAbandonment.sessions]).toEqual([2, 1, 1, 1, 0, 1]);
    expect((await f(2, 3)).sessions).toBe(0);
    const all = await f(0, 3);
    expect(all).toEqual({
      sessions: 4,
      steps: [
        { step: "product_view", sessions: 3, conversion: 0.75 },
        { step: "add_to_cart", sessions: 3, conversion: 1 },
        { step: "checkout", sessions: 2, conversion: 0.6667 },
        { step: "purchase", sessions: 1, conversion: 0.5 },
      ],
      cartAbandonment: { sessions: 2, rate: 0.6667 },
    });
  });

  it("splits a session after a 30 min event-time gap", async () => {
    const { agg, store, feed, ev } = setup();
    feed.batch([ev({ type: PV, time: T0 })]);
    feed.batch([ev({ type: "product_view", time: T0 + 29 * MIN, productId: "p-1" })]);
    feed.batch([ev({ type: "add_to_cart", time: T0 + 29 * MIN + 30 * MIN + 1, productId: "p-1" })]);
    const first = funnelOf(await merged(agg, store, T0, T0 + MIN, ["funnel"]));
    expect([first.sessions, first.steps[0].sessions, first.steps[1].sessions]).toEqual([1, 1, 0]);
    const second = funnelOf(await merged(agg, store, T0 + 59 * MIN, T0 + 60 * MIN, ["funnel"]));
    expect([second.sessions, second.steps[0].sessions, second.steps[1].sessions, second.cartAbandonment.sessions]).toEqual([
      1, 0, 1, 1,
    ]);
    expect(funnelOf(await merged(agg, store, T0, T0 + 2 * HOUR, ["funnel"])).sessions).toBe(2);
  });

  it("moves a session to the window of an earlier event that arrives late", async () => {
    const { agg, store, feed, ev } = setup();
    feed.batch([
      ev({ type: "product_view", time: T0 + 65_000, productId: "p-1" }),
      ev({ type: PV, time: T0 + 75_000, sessionId: "s2" }),
    ]);
    const minute = async (m: number) => funnelOf(await merged(agg, store, T0 + m * MIN, T0 + (m + 1) * MIN, ["funnel"]));
    expect((await minute(0)).sessions).toBe(0);
    expect((await minute(1)).sessions).toBe(2);
    await checkpoint(agg, store); // the session's first window is in the store's open windows now
    feed.batch([ev({ type: "add_to_cart", time: T0 + 59_000, productId: "p-1" })]);
    for (let round = 0; round < 2; round++) {
      const m0 = await minute(0);
      expect([m0.sessions, m0.steps[0].sessions, m0.steps[1].sessions, m0.cartAbandonment.sessions]).toEqual([1, 1, 1, 1]);
      const m1 = await minute(1);
      expect([m1.sessions, m1.steps[0].sessions, m1.steps[1].sessions, m1.cartAbandonment.sessions]).toEqual([1, 0, 0, 0]);
      await checkpoint(agg, store);
    }
    expect((await merged(agg, store, T0, T0 + HOUR, ["core"])).core[C_LATE_MERGED]).toBe(1);
  });

  it("updates the funnel of a session whose first window was purged, through corrections applied at checkpoint", async () => {
    const { agg, store, feed, ev } = setup();
    feed.batch([ev({ type: "product_view", time: T0 + 1000, productId: "p-1" })]);
    feed.batch([ev({ type: "add_to_cart", time: T0 + 2000, productId: "p-1" })]);
    for (let t = 20_000; t <= 5 * MIN; t += 20_000) feed.batch([ev({ type: PV, time: T0 + t })]);
    await checkpoint(agg, store);
    expect(windows(agg).filter((w) => w.startsWith("1000@1000:") || w.startsWith("60000@0:"))).toEqual([]);
    const steps = async (from: number, to: number) => {
      const f = funnelOf(await merged(agg, store, from, to, ["funnel"]));
      return [f.sessions, ...f.steps.map((s) => s.sessions), f.cartAbandonment.sessions];
    };
    expect(await steps(T0, T0 + MIN)).toEqual([1, 1, 1, 0, 0, 1]);

    feed.batch([ev({ type: "purchase", time: T0 + 5 * MIN + 1000, items: [{ productId: "p-1", priceCents: 1000, quantity: 1 }] })]);
    const want = [1, 1, 1, 0, 1, 0];
    for (const phase of ["pending corrections", "applied corrections", "after a second checkpoint"]) {
      expect({ phase, steps: await steps(T0, T0 + MIN) }).toEqual({ phase, steps: want });
      expect({ phase, steps: await steps(T0 + 1000, T0 + 2000) }).toEqual({ phase, steps: want });
      expect({ phase, steps: await steps(T0, T0 + HOUR) }).toEqual({ phase, steps: want });
      await checkpoint(agg, store);
    }
    const row = createPane();
    mergeEncoded(row, "funnel", store.windows.get(`${MIN}:funnel:${T0}:0`)!.value, agg.dict);
    expect(Array.from(row.funnel)).toEqual(want);
  });

  it("keeps an event within the allowed lateness in its session after the session's gap has passed", async () => {
    const { agg, store, feed, ev } = setup();
    feed.batch([ev({ type: PV, time: T0 + 59_000 })]);
    feed.batch([ev({ type: PV, time: T0 + 31 * MIN + 5000, sessionId: "s2" })]);
    expect(agg.watermark.value).toBe(T0 + 31 * MIN); // s1's last event + gap is behind the watermark
    // still inside the allowed lateness and within 30 min of s1's last event: s1 goes on
    feed.batch([ev({ type: "add_to_cart", time: T0 + 30 * MIN + 30_000, productId: "p-1" })]);
    expect((await merged(agg, store, T0, T0 + HOUR, ["core"])).core[C_LATE_MERGED]).toBe(1);
    const m0 = funnelOf(await merged(agg, store, T0, T0 + MIN, ["funnel"]));
    expect([m0.sessions, m0.steps[1].sessions, m0.cartAbandonment.sessions]).toEqual([1, 1, 1]);
    expect(funnelOf(await merged(agg, store, T0, T0 + HOUR, ["funnel"])).sessions).toBe(2);
  });
});

describe("campaigns", () => {
  it("attributes sessions, orders and revenue to the first utmSource of a session, else (direct)", async () => {
    const { agg, store, feed, ev } = setup();
    const item = (priceCents: number, quantity: number) => [{ productId: "p-1", priceCents, quantity }];
    feed.batch([
      ev({ type: PV, time: T0 + 1000 }),
      ev({ type: PV, time: T0 + 2000, utmSource: "google" }),
      ev({ type: PV, time: T0 + 3000, utmSource: "facebook" }),
      ev({ type: "purchase", time: T0 + 70_000, items: item(1000, 2) }),
      ev({ type: PV, time: T0 + 4000, sessionId: "s2" }),
      ev({ type: "purchase", time: T0 + 5000, sessionId: "s2", items: item(500, 1) }),
      ev({ type: PV, time: T0 + 6000, sessionId: "s3", utmSource: "facebook" }),
    ]);
    const want = {
      items: [
        { source: "(direct)", sessions: 1, orders: 1, revenue: 5 },
        { source: "facebook", sessions: 1, orders: 0, revenue: 0 },
        { source: "google", sessions: 1, orders: 1, revenue: 20 },
      ],
    };
    expect(campaignsOfPane(await merged(agg, store, T0, T0 + HOUR, ["campaigns"]), agg.dict)).toEqual(want);
    // sessions count where the session starts, orders and revenue where the purchase happens
    const m1 = campaignsOfPane(await merged(agg, store, T0 + MIN, T0 + 2 * MIN, ["campaigns"]), agg.dict);
    expect(m1).toEqual({ items: [{ source: "google", sessions: 0, orders: 1, revenue: 20 }] });
  });

  it("moves a session to the source of an earlier utm-carrying event that arrives late", async () => {
    const { agg, store, feed, ev } = setup();
    feed.batch([ev({ type: PV, time: T0 + 20_000, utmSource: "facebook" }), ev({ type: PV, time: T0 + 30_000, sessionId: "s2" })]);
    feed.batch([ev({ type: PV, time: T0 + 10_000, utmSource: "google" })]);
    const items = campaignsOfPane(await merged(agg, store, T0, T0 + MIN, ["campaigns"]), agg.dict).items;
    expect(items).toEqual([
      { source: "(direct)", sessions: 1, orders: 0, revenue: 0 },
      { source: "google", sessions: 1, orders: 0, revenue: 0 },
    ]);
  });
});

describe("inventory", () => {
  it("keeps the latest stock by event time and counts units sold per range", async () => {
    const { agg, store, feed, ev } = setup();
    const inv = (productId: string, sec: number, stock: number) =>
      ev({ type: "inventory_update", time: T0 + sec * 1000, productId, stock, userId: undefined, sessionId: undefined });
    feed.batch([inv("p-a", 10, 5), inv("p-b", 12, 0), inv("p-a", 20, 3)]);
    feed.batch([inv("p-a", 15, 9)]); // older update arriving later
    feed.batch([
      ev({ type: "purchase", time: T0 + 30_000, items: [{ productId: "p-a", priceCents: 100, quantity: 2 }] }),
      ev({ type: "purchase", time: T0 + 90_000, items: [{ productId: "p-a", priceCents: 100, quantity: 1 }] }),
    ]);
    const range = async (to: number, low: number | null = null) =>
      inventoryOf(agg, await merged(agg, store, T0, T0 + to, ["products"]), low, 10).items;
    expect(await range(MIN)).toEqual([
      { productId: "p-b", stock: 0, unitsSold: 0 },
      { productId: "p-a", stock: 3, unitsSold: 2 },
    ]);
    expect(await range(2 * MIN)).toEqual([
      { productId: "p-b", stock: 0, unitsSold: 0 },
      { productId: "p-a", stock: 3, unitsSold: 3 },
    ]);
    expect(await range(2 * MIN, 0)).toEqual([{ productId: "p-b", stock: 0, unitsSold: 0 }]);
    expect((await merged(agg, store, T0, T0 + MIN, ["core"])).core[6]).toBe(4);
  });

  it("restores the latest stock by event time when partitions reported the same product", async () => {
    const { agg, store, feed, ev } = setup(2);
    const inv = (partition: number, sec: number, stock: number) =>
      ev({ type: "inventory_update", partition, time: T0 + sec * 1000, productId: "p-x", stock, userId: undefined, sessionId: undefined });
    feed.batch([inv(0, 1, 10)]);
    await checkpoint(agg, store);
    feed.batch([inv(1, 2, 20)]);
    await checkpoint(agg, store);
    feed.batch([inv(0, 3, 30)]);
    await checkpoint(agg, store);
    expect([...agg.inventory()].map((e) => e.stock)).toEqual([30]);
    const again = createAggregator({ partitions: 2, ...OPTS, clock: fakeClock().fn });
    again.restore(store.loadCheckpoint());
    expect([...again.inventory()].map((e) => [again.dict.str(e.product), e.stock, e.time])).toEqual([["p-x", 30, T0 + 3000]]);
  });
});

describe("offsets and markers", () => {
  it("counts a duplicate in the window of its event time and nothing else", async () => {
    const { agg, store, feed, ev } = setup();
    feed.batch([ev({ type: PV, time: T0 + 1000 }), ev({ type: "duplicate", time: T0 + 5500 })]);
    expect(Array.from((await merged(agg, store, T0 + 5000, T0 + 6000)).core)).toEqual(core({ [C_DUPLICATES]: 1 }));
    expect(Array.from((await merged(agg, store, T0, T0 + 5000)).core)).toEqual(core({ 0: 1, [C_TOTAL]: 1 }));
    // a duplicate of an event whose window is already stored still counts there
    feed.batch([ev({ type: PV, time: T0 + 200_000 })]);
    await checkpoint(agg, store);
    feed.batch([ev({ type: "duplicate", time: T0 + 1000 })]);
    for (let i = 0; i < 2; i++) {
      expect(Array.from((await merged(agg, store, T0 + 1000, T0 + 2000)).core)).toEqual(core({ 0: 1, [C_TOTAL]: 1, [C_DUPLICATES]: 1 }));
      expect((await merged(agg, store, T0, T0 + MIN)).core[C_DUPLICATES]).toBe(2);
      await checkpoint(agg, store);
    }
  });

  it("advances applied to offset + 1 only at the record that ends an event", () => {
    const { agg, feed } = setup(2);
    const purchase: TestEvent = {
      type: "purchase",
      partition: 1,
      offset: 4,
      time: T0,
      userId: "u",
      sessionId: "s",
      items: [1, 2, 3].map((q) => ({ productId: `p-${q}`, priceCents: 100, quantity: q })),
    };
    const r = encodeEvent(purchase, (s) => (s === undefined ? -1 : agg.dict.intern(s)));
    const xlate = Int32Array.from({ length: 64 }, (_, i) => i);
    expect(r.count).toBe(4);
    for (let k = 0; k < r.count; k++) {
      expect(agg.applied.get(1)).toBeUndefined();
      agg.apply(r.i32, r.f64, k * RECORD_WORDS, xlate);
    }
    expect(agg.applied.get(1)).toBe(5);
    expect(agg.applied.get(0)).toBeUndefined();
    feed.batch([{ type: PV, partition: 0, offset: 9, time: T0, userId: "u", sessionId: "s0" }]);
    expect(agg.applied.get(0)).toBe(10);
    expect(agg.applied.get(1)).toBe(5);
  });

  it("advances only the offset for a dead-lettered record", async () => {
    const { agg, store, feed } = setup();
    feed.batch([{ type: PV, partition: 0, offset: 0, time: T0 + 10_000, userId: "u", sessionId: "s" }]);
    const before = windows(agg);
    const wm = agg.watermark.value;
    feed.batch([{ type: "skip", partition: 0, offset: 7, time: 0 }]);
    expect(agg.applied.get(0)).toBe(8);
    expect(windows(agg)).toEqual(before);
    expect(agg.watermark.value).toBe(wm);
    expect(Array.from((await merged(agg, store, 0, T0 + HOUR)).core)).toEqual(core({ 0: 1, [C_TOTAL]: 1 }));
  });
});

describe("checkpoint and restore", () => {
  it("keeps a session that closes and reopens between two checkpoints", async () => {
    const first = setup();
    const { feed, ev } = first;
    feed.batch([ev({ type: PV, time: T0 })]);
    feed.batch([ev({ type: PV, time: T0 + 33 * MIN, sessionId: "s2" })]); // s1 closes here
    expect(first.agg.sessions.size).toBe(1);
    feed.batch([ev({ type: PV, time: T0 + 33 * MIN + 1000 })]); // s1 comes back: a new session
    await checkpoint(first.agg, first.store);

    const agg = createAggregator({ partitions: 1, ...OPTS, clock: fakeClock().fn });
    agg.restore(first.store.loadCheckpoint());
    expect(agg.watermark.value).toBe(first.agg.watermark.value);
    expect(agg.applied).toEqual(first.agg.applied);
    createFeeder(agg).batch([ev({ type: "product_view", time: T0 + 34 * MIN, productId: "p-1" })]);
    const f = funnelOf(await merged(agg, first.store, T0, T0 + HOUR, ["funnel"]));
    expect([f.sessions, f.steps[0].sessions]).toEqual([3, 1]);
    const later = funnelOf(await merged(agg, first.store, T0 + 33 * MIN, T0 + 34 * MIN, ["funnel"]));
    expect([later.sessions, later.steps[0].sessions]).toEqual([2, 1]);
  });

  it("writes everything of a failed checkpoint at the next one, including deltas that arrived meanwhile", async () => {
    const { agg, store, feed, ev } = setup();
    feed.batch([
      ev({ type: "product_view", time: T0 + 1000, productId: "p-1" }),
      ev({ type: "inventory_update", time: T0 + 1500, productId: "p-1", stock: 4 }),
      ev({ type: PV, time: T0 + 200_000, sessionId: "s2" }),
    ]);
    const c = agg.capture();
    expect(c.flushed.length).toBeGreaterThan(0);
    feed.batch([ev({ type: "duplicate", time: T0 + 1000 })]); // its window is in the failed write
    agg.failed(c);
    expect(store.commits).toBe(0);
    const want = core({ 1: 1, 6: 1, [C_TOTAL]: 2, [C_DUPLICATES]: 1 });
    for (let round = 0; round < 2; round++) {
      await checkpoint(agg, store);
      expect(agg.stats().corrections).toBe(0);
      expect(Array.from((await merged(agg, store, T0 + 1000, T0 + 2000)).core)).toEqual(want);
      expect(Array.from((await merged(agg, store, T0, T0 + MIN)).core)).toEqual(want);
    }
    const row = createPane();
    mergeEncoded(row, "core", store.windows.get(`${SEC}:core:${T0 + 1000}:0`)!.value, agg.dict);
    expect(Array.from(row.core)).toEqual(want);
    expect([...store.inventory.values()].map((i) => [i.productId, i.stock])).toEqual([["p-1", 4]]);
    expect(store.offsets.get(0)).toBe(4);
  });

  it("continues exactly once after restarts from the last committed checkpoint", async () => {
    const partitions = 2;
    const stream = generateStream({ seed: 11, start: T0, durationMs: 2 * HOUR, sessions: 260, partitions });
    const BATCH = 20;
    // statuses by definition over the uninterrupted stream; bounded disorder keeps every event on time
    const oracle = createLatenessOracle({ partitions, ...OPTS });
    const applied: Applied[] = [];
    for (let i = 0; i < stream.length; i += BATCH) {
      for (const e of stream.slice(i, i + BATCH)) applied.push({ ev: e, status: oracle.status(e) });
      oracle.advance();
    }
    const clock = fakeClock();
    let agg = createAggregator({ partitions, ...OPTS, clock: clock.fn });
    let feed = createFeeder(agg);
    const store = createMemoryHistory();
    const crashes = new Set([37, 71]); // batch numbers after which the process dies
    let batchNo = 0;
    let i = 0;
    while (i < stream.length) {
      // a restored aggregator skips what its committed offsets already cover
      const next = new Map(agg.applied);
      feed.batch(stream.slice(i, i + BATCH).filter((e) => e.offset >= (next.get(e.partition) ?? 0)));
      clock.tick(5);
      i += BATCH;
      batchNo++;
      if (batchNo % 8 === 0) await checkpoint(agg, store);
      if (crashes.delete(batchNo)) {
        // everything applied after the last commit is lost with the process
        agg = createAggregator({ partitions, ...OPTS, clock: clock.fn });
        agg.restore(store.loadCheckpoint());
        feed = createFeeder(agg);
        const resume = stream.findIndex((e) => e.offset >= (agg.applied.get(e.partition) ?? 0));
        expect(resume).toBeLessThan(i); // something really is replayed
        i = resume;
      }
    }
    await checkpoint(agg, store);
    expect(applied.every((a) => a.status === "on-time")).toBe(true); // bounded disorder: nothing late

    for (const [from, to] of [
      [T0, T0 + 4 * HOUR],
      [T0 + 17_250, T0 + 83 * MIN + 7500],
      [T0 + 59 * MIN, T0 + 2 * HOUR + MIN],
      [T0 + HOUR + 30 * SEC, T0 + HOUR + 45 * SEC],
    ]) {
      const got = plainOf(await merged(agg, store, from, to), agg.dict);
      expect({ from: from - T0, got }).toEqual({ from: from - T0, got: expectedPlain(applied, from, to, OPTS.sessionGapMs) });
    }
    const got = Object.fromEntries([...agg.inventory()].map((e) => [agg.dict.str(e.product), e.stock]));
    expect(got).toEqual(expectedStock(applied));
    expect(store.commits).toBeGreaterThan(5);
  });
});

// ---- partitions moving between instances (distributed mode) ----

/** A distributed store keeps each partition's meta next to its offset: the captures' meta is kept here. */
interface Shared {
  store: MemoryHistory;
  meta: Map<number, string>;
}
const sharedStore = (): Shared => ({ store: createMemoryHistory(), meta: new Map() });

async function commitTo(agg: Aggregator, s: Shared) {
  const c = await checkpoint(agg, s.store);
  for (const [p, m] of c.partitionMeta) s.meta.set(p, m);
  return c;
}

/** What a new owner restores for `parts`, built from the store as engine.ts adopt() does. */
function adoptState(s: Shared, parts: readonly number[]): PartitionState {
  const cp = s.store.loadCheckpoint();
  const mine = (r: { partition: number }) => parts.includes(r.partition);
  return {
    offsets: new Map(parts.map((p) => [p, cp.offsets.get(p) ?? 0])),
    openWindows: cp.openWindows.filter(mine),
    sessions: cp.sessions.filter(mine),
    inventory: cp.inventory.filter(mine),
    meta: null,
    partitionMeta: new Map(parts.map((p) => [p, s.meta.get(p) ?? JSON.stringify({ maxTime: null, floor: null })])),
  };
}

/** An instance as the engine starts one in Kafka mode: no partition holds its watermark back until assigned. */
function instance(partitions: number, clock: ReturnType<typeof fakeClock>): Aggregator {
  const agg = createAggregator({ partitions, ...OPTS, clock: clock.fn });
  for (let p = 0; p < partitions; p++) agg.watermark.forget(p);
  return agg;
}

/** Stored rows decoded per window (`res:start-T0:partition`), for windows starting before `before`. */
function storedWindows(store: MemoryHistory, before: number): Record<string, unknown> {
  const dict = createDictionary();
  const panes = new Map<string, Pane>();
  for (const w of store.windows.values()) {
    if (w.start >= before) continue;
    const k = `${w.res}:${w.start - T0}:${w.partition}`;
    let p = panes.get(k);
    if (!p) panes.set(k, (p = createPane()));
    mergeEncoded(p, w.family as Family, w.value, dict);
  }
  const out: Record<string, unknown> = {};
  for (const k of [...panes.keys()].sort()) {
    const p = panes.get(k)!;
    out[k] = { ...plainOf(p, dict), users: p.users?.estimate() ?? 0, sessions: p.sessions?.estimate() ?? 0, load: performanceOf(p).loadTimeMs };
  }
  return out;
}

/** Memory windows in comparable form, sorted. */
function described(ws: Iterable<MemWindow>, agg: Aggregator) {
  return [...ws]
    .map((w) => ({ at: `${w.res}:${w.start - T0}:${w.partition}`, state: w.state, captured: w.captured ?? false, pane: plainOf(w.pane, agg.dict) }))
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
}

function sessionRows(agg: Aggregator) {
  const rows: number[][] = [];
  const rec = agg.sessions.rec;
  agg.sessions.forEach((s) => rows.push([agg.sessions.keyOf(s), ...rec.subarray(s * 8, s * 8 + 8)]));
  return rows.sort((a, b) => a[0] - b[0]);
}

const partitionsOf = (c: ReturnType<Aggregator["capture"]>) =>
  new Set([
    ...[...c.flushed, ...c.corrections, ...c.open, ...c.sessions, ...c.deletedSessions, ...c.inventory, ...c.late].map((r) => r.partition),
    ...c.offsets.keys(),
    ...c.partitionMeta.keys(),
  ]);

describe("partitions moving between instances", () => {
  it("hands partitions over exactly once: checkpoint, drop, restore on another instance and replay give one instance's windows", async () => {
    const partitions = 4;
    const moved = [2, 3];
    const isMoved = (e: TestEvent) => moved.includes(e.partition);
    const stream = generateStream({ seed: 23, start: T0, durationMs: 2 * HOUR, sessions: 300, partitions });
    const BATCH = 20;
    const tail = (ps: number[]): TestEvent[] =>
      ps.map((p) => ({ type: PV, partition: p, offset: 1e6, time: T0 + 5 * HOUR, userId: "end", sessionId: "end" }));

    // the reference: one instance that owns every partition throughout
    const refClock = fakeClock();
    const ref = createAggregator({ partitions, ...OPTS, clock: refClock.fn });
    const refFeed = createFeeder(ref);
    const refStore = createMemoryHistory();
    for (let i = 0, b = 1; i < stream.length; i += BATCH, b++) {
      refFeed.batch(stream.slice(i, i + BATCH));
      refClock.tick(5);
      if (b % 8 === 0) await checkpoint(ref, refStore);
    }
    refFeed.batch(tail([0, 1, 2, 3]));
    await checkpoint(ref, refStore);
    await checkpoint(ref, refStore);

    // A owns everything, checkpoints every 8 batches, and applies 5 more batches after its last checkpoint
    const clock = fakeClock();
    const shared = sharedStore();
    const a = createAggregator({ partitions, ...OPTS, clock: clock.fn });
    const feedA = createFeeder(a);
    const H = 45;
    let i = 0;
    for (let b = 1; b <= H; b++, i += BATCH) {
      feedA.batch(stream.slice(i, i + BATCH));
      clock.tick(5);
      if (b % 8 === 0) await commitTo(a, shared);
    }
    expect(a.stats().corrections + a.stats().flushing).toBeGreaterThan(0); // uncommitted state of the moved partitions is lost
    const appliedBefore = new Map(a.applied);
    a.dropPartitions(moved);
    expect(a.owned()).toEqual([0, 1]);

    const b = instance(partitions, clock);
    b.restore(adoptState(shared, moved));
    expect(b.owned()).toEqual(moved);
    for (const p of moved) expect(b.applied.get(p)!).toBeLessThan(appliedBefore.get(p)!); // a real replay
    const feedB = createFeeder(b);
    const replay = stream.slice(0, i).filter((e) => isMoved(e) && e.offset >= b.applied.get(e.partition)!);
    for (let k = 0; k < replay.length; k += BATCH) {
      feedB.batch(replay.slice(k, k + BATCH));
      clock.tick(5);
    }
    const commitA = async () => {
      const c = await commitTo(a, shared);
      expect([...partitionsOf(c)].filter((p) => moved.includes(p))).toEqual([]); // never writes what it gave away
    };
    const commitB = async () => {
      const c = await commitTo(b, shared);
      expect([...partitionsOf(c)].filter((p) => !moved.includes(p))).toEqual([]);
    };
    for (let n = 1; i < stream.length; i += BATCH, n++) {
      const batch = stream.slice(i, i + BATCH);
      feedA.batch(batch.filter((e) => !isMoved(e)));
      feedB.batch(batch.filter(isMoved));
      clock.tick(5);
      if (n % 8 === 0) await commitA();
      if (n % 8 === 3) await commitB();
    }
    feedA.batch(tail([0, 1]));
    feedB.batch(tail(moved));
    for (let k = 0; k < 2; k++) {
      await commitA();
      await commitB();
    }

    const want = storedWindows(refStore, T0 + 4 * HOUR);
    expect(Object.keys(want).length).toBeGreaterThan(1000);
    expect(storedWindows(shared.store, T0 + 4 * HOUR)).toEqual(want);
    expect(shared.store.offsets).toEqual(refStore.offsets);
    // nothing was late in either run, so the windows agree on late counters too
    const lateAny = Object.values(want).some((w) => {
      const c = (w as { core: number[] }).core;
      return c[C_LATE_MERGED] !== 0 || c[C_LATE_DROPPED] !== 0;
    });
    expect(lateAny).toBe(false);
    // latest stock per product over both instances = the single instance's
    const stock = (entries: Iterable<{ product: number; stock: number; time: number }>, agg: Aggregator, into: Map<string, [number, number]>) => {
      for (const e of entries) {
        const k = agg.dict.str(e.product);
        const cur = into.get(k);
        if (!cur || e.time >= cur[0]) into.set(k, [e.time, e.stock]);
      }
      return into;
    };
    const split = stock(b.inventory(), b, stock(a.inventory(), a, new Map()));
    expect(Object.fromEntries(split)).toEqual(Object.fromEntries(stock(ref.inventory(), ref, new Map())));
  });

  it("drops only the given partitions: the others' windows, corrections, sessions, inventory, late rows and offsets stay as they were", async () => {
    const partitions = 3;
    const stream = generateStream({ seed: 31, start: T0, durationMs: HOUR, sessions: 150, partitions });
    const cut = Math.floor(stream.length * 0.6);
    const run = async () => {
      const agg = createAggregator({ partitions, ...OPTS, clock: fakeClock().fn });
      const feed = createFeeder(agg);
      const store = createMemoryHistory();
      for (let i = 0, b = 1; i < cut; i += 25, b++) {
        feed.batch(stream.slice(i, Math.min(i + 25, cut)));
        if (b % 10 === 0) await checkpoint(agg, store);
      }
      // a late drop in every partition: corrections of stored windows, late rows
      feed.batch([0, 1, 2].map((p) => ({ type: PV, partition: p, offset: 5e5, time: T0 + 1000 + p, userId: "late", sessionId: `late-${p}` })));
      return { agg, feed };
    };
    const x = await run();
    const y = await run();
    const keep = (r: { partition: number }) => r.partition !== 1;
    const dropped = sessionRows(y.agg).filter((r) => r[1 + 6] === 1).length;
    expect(dropped).toBeGreaterThan(0);
    expect([...y.agg.pendingCorrections()].some((c) => c.partition === 1)).toBe(true);
    expect([...y.agg.memWindows()].some((c) => c.partition === 1)).toBe(true);

    y.agg.dropPartitions([1]);
    expect(y.agg.owned()).toEqual([0, 2]);
    expect(y.agg.watermark.maxTime(1)).toBe(-Infinity);
    expect(y.agg.sessions.size).toBe(x.agg.sessions.size - dropped);
    expect(sessionRows(y.agg)).toEqual(sessionRows(x.agg).filter((r) => r[1 + 6] !== 1));
    expect(described(y.agg.memWindows(), y.agg)).toEqual(described([...x.agg.memWindows()].filter(keep), x.agg));
    expect(described(y.agg.pendingCorrections(), y.agg)).toEqual(described([...x.agg.pendingCorrections()].filter(keep), x.agg));
    expect([...y.agg.inventory()].map((e) => [y.agg.dict.str(e.product), e.partition, e.stock, e.time])).toEqual(
      [...x.agg.inventory()].filter(keep).map((e) => [x.agg.dict.str(e.product), e.partition, e.stock, e.time]),
    );

    const cx = x.agg.capture();
    const cy = y.agg.capture();
    expect(partitionsOf(cy).has(1)).toBe(false);
    expect(partitionsOf(cx).has(1)).toBe(true);
    const norm = (c: typeof cx, agg: Aggregator, only: (r: { partition: number }) => boolean) => ({
      flushed: described(c.flushed.filter(only), agg),
      corrections: described(c.corrections.filter(only), agg),
      open: c.open.filter(only),
      sessions: c.sessions.filter(only).sort((s, t) => s.key - t.key),
      deletedSessions: c.deletedSessions.filter(only),
      inventory: c.inventory.filter(only),
      late: c.late.filter(only),
      offsets: [...c.offsets].filter(([p]) => p !== 1).sort(),
      partitionMeta: [...c.partitionMeta].filter(([p]) => p !== 1).sort(),
    });
    const ny = norm(cy, y.agg, () => true);
    expect(ny).toEqual(norm(cx, x.agg, keep));
    expect(ny.late.length).toBe(2);
    expect(ny.flushed.length + ny.corrections.length).toBeGreaterThan(0);

    // the rest of the stream: partition 1 no longer holds y's watermark back, and nothing of it is written
    for (let i = cut; i < stream.length; i += 25) {
      y.feed.batch(stream.slice(i, i + 25).filter(keep));
      expect(y.agg.watermark.value).toBe(Math.min(y.agg.watermark.maxTime(0), y.agg.watermark.maxTime(2)) - OPTS.outOfOrdernessMs);
    }
    expect(partitionsOf(y.agg.capture()).has(1)).toBe(false);
  });

  it("keeps a window its previous owner made final final on the new owner, whose own watermark is behind", async () => {
    const clock = fakeClock();
    const shared = sharedStore();
    const a = createAggregator({ partitions: 4, ...OPTS, clock: clock.fn });
    const feedA = createFeeder(a);
    const at = (partition: number, offset: number, time: number, sessionId = `s${partition}`): TestEvent => ({
      type: PV,
      partition,
      offset,
      time,
      userId: "u",
      sessionId,
    });
    feedA.batch([0, 1, 2, 3].map((p) => at(p, 0, T0 + 1000)));
    feedA.batch([0, 1, 2, 3].map((p) => at(p, 1, T0 + 200_000)));
    expect(a.watermark.value).toBe(T0 + 195_000);
    await commitTo(a, shared); // partition 1's 1 s window at +1 s and its minute are stored
    expect(shared.store.windows.has(`${SEC}:core:${T0 + 1000}:1`)).toBe(true);
    expect(JSON.parse(shared.meta.get(1)!)).toEqual({ maxTime: T0 + 200_000, floor: T0 + 195_000 });
    a.dropPartitions([1]);

    // B takes partition 1 and partition 3, whose clock is far behind: B's own watermark stays near +5 s
    const handOver = (clock3: number | null) => {
      const st = adoptState(shared, [1, 3]);
      st.partitionMeta!.set(3, JSON.stringify({ maxTime: clock3, floor: null }));
      return st;
    };
    const b = instance(4, clock);
    b.restore(handOver(T0 + 10_000));
    const feedB = createFeeder(b);
    feedB.batch([at(3, 0, T0 + 10_000)]);
    expect(b.watermark.value).toBe(T0 + 5000);
    feedB.batch([at(1, 2, T0 + 1500, "late"), at(1, 3, T0 + 150_000, "ok")]);
    expect(b.watermark.value).toBe(T0 + 5000);
    // the event for the final window was dropped, not merged into a reopened pane; the one within the lateness merged
    expect([...b.memWindows()].filter((w) => w.partition === 1 && w.res === SEC).map((w) => w.start - T0).sort()).toEqual([150_000, 200_000]);
    const c = await commitTo(b, shared);
    expect(c.late.map((l) => [l.partition, l.offset, l.time])).toEqual([[1, 2, T0 + 1500]]);
    expect(c.flushed).toEqual([]);
    expect(JSON.parse(c.partitionMeta.get(1)!)).toEqual({ maxTime: T0 + 200_000, floor: T0 + 195_000 }); // floor kept
    expect(JSON.parse(c.partitionMeta.get(3)!)).toEqual({ maxTime: T0 + 10_000, floor: T0 + 5000 });
    const row = (res: number, start: number) => {
      const p = createPane();
      mergeEncoded(p, "core", shared.store.windows.get(`${res}:core:${start}:1`)!.value, b.dict);
      return Array.from(p.core);
    };
    expect(row(SEC, T0 + 1000)).toEqual(core({ 0: 1, [C_TOTAL]: 1, [C_LATE_DROPPED]: 1 }));
    expect(row(MIN, T0)).toEqual(core({ 0: 1, [C_TOTAL]: 1, [C_LATE_DROPPED]: 1 }));
    const p1 = [...b.memWindows()].filter((w) => w.partition === 1 && w.res === HOUR);
    expect(p1.map((w) => Array.from(w.pane.core))).toEqual([core({ 0: 1, [C_TOTAL]: 1, [C_LATE_DROPPED]: 1 })]); // restored hour

    // without the floor the same event reopens the stored second, and its later flush would overwrite the row
    const noFloor = instance(4, clock);
    const st = handOver(T0 + 10_000);
    st.partitionMeta = new Map([...st.partitionMeta!].map(([p, m]) => [p, JSON.stringify({ ...JSON.parse(m), floor: null })]));
    noFloor.restore(st);
    const feedNo = createFeeder(noFloor);
    feedNo.batch([at(3, 0, T0 + 10_000)]);
    feedNo.batch([at(1, 2, T0 + 1500, "late")]);
    expect([...noFloor.memWindows()].filter((w) => w.partition === 1 && w.res === SEC).map((w) => w.start - T0)).toContain(1000);
  });

  it("late-drops an event below the floor in the new owner's first batch, while its watermark is still -Infinity", async () => {
    const clock = fakeClock();
    const shared = sharedStore();
    const a = createAggregator({ partitions: 2, ...OPTS, clock: clock.fn });
    const feedA = createFeeder(a);
    const at = (partition: number, offset: number, time: number): TestEvent => ({ type: PV, partition, offset, time, userId: "u", sessionId: "s" });
    feedA.batch([at(0, 0, T0 + 1000), at(1, 0, T0 + 1000), at(0, 1, T0 + 200_000), at(1, 1, T0 + 200_000)]);
    await commitTo(a, shared);
    expect(JSON.parse(shared.meta.get(0)!).floor).toBe(T0 + 195_000);
    a.dropPartitions([0]);
    const b = instance(2, clock);
    b.restore(adoptState(shared, [0]));
    expect(b.watermark.value).toBe(-Infinity); // until its first advance
    createFeeder(b).batch([at(0, 2, T0 + 1500)]);
    const c = await commitTo(b, shared);
    expect(c.late.map((l) => [l.partition, l.offset])).toEqual([[0, 2]]);
    expect(c.late[0].reason).toContain("allowed lateness");
  });

  it("keeps dropped partitions out of later checkpoints even when the checkpoint in flight at the drop fails", () => {
    const agg = createAggregator({ partitions: 2, ...OPTS, clock: fakeClock().fn });
    const feed = createFeeder(agg);
    feed.batch([
      { type: "inventory_update", partition: 1, offset: 0, time: T0 + 1000, productId: "p-1", stock: 3 },
      { type: PV, partition: 1, offset: 1, time: T0 + 1000, userId: "u", sessionId: "s1" },
      { type: PV, partition: 0, offset: 0, time: T0 + 200_000, userId: "u", sessionId: "s0" },
      { type: PV, partition: 1, offset: 2, time: T0 + 200_000, userId: "u", sessionId: "s1" },
    ]);
    const c = agg.capture();
    expect(partitionsOf(c).has(1)).toBe(true);
    agg.dropPartitions([1]); // a revocation while the commit of `c` is in flight
    agg.failed(c);
    const next = agg.capture();
    expect(partitionsOf(next).has(1)).toBe(false);
  });

  it("opens an hour that has no windows yet for a late drop, so its later flush keeps the drop", async () => {
    const { agg, store, feed, ev } = setup();
    feed.batch([ev({ type: PV, time: T0 + 90 * MIN })]); // watermark 90 min - 5 s; nothing purged, no rollup exists
    expect(windows(agg)).toEqual([`${SEC}@${90 * MIN}:live`]);
    feed.batch([ev({ type: PV, time: T0 + 61 * MIN, sessionId: "s2" })]); // its second and minute are final, its hour is not
    expect(windows(agg)).toEqual([`${SEC}@${90 * MIN}:live`, `${HOUR}@${HOUR}:partial`]);
    await checkpoint(agg, store);
    feed.batch([ev({ type: PV, time: T0 + 95 * MIN }), ev({ type: "product_view", time: T0 + 100 * MIN, productId: "p-1" })]);
    await checkpoint(agg, store);
    feed.batch([ev({ type: PV, time: T0 + 3 * HOUR })]); // the hour is final now
    await checkpoint(agg, store);
    await checkpoint(agg, store);
    const row = (res: number, start: number) => {
      const p = createPane();
      mergeEncoded(p, "core", store.windows.get(`${res}:core:${start}:0`)!.value, agg.dict);
      return Array.from(p.core);
    };
    expect(row(HOUR, T0 + HOUR)).toEqual(core({ 0: 2, 1: 1, [C_TOTAL]: 3, [C_LATE_DROPPED]: 1 }));
    expect(row(MIN, T0 + 61 * MIN)).toEqual(core({ [C_LATE_DROPPED]: 1 }));
    expect(row(SEC, T0 + 61 * MIN)).toEqual(core({ [C_LATE_DROPPED]: 1 }));
    expect(Array.from((await merged(agg, store, T0 + HOUR, T0 + 2 * HOUR, ["core"])).core)).toEqual(row(HOUR, T0 + HOUR));
  });

  it("opens a minute that has no windows yet for a late drop, so its later flush keeps the drop", async () => {
    const { agg, store, feed, ev } = setup();
    feed.batch([ev({ type: PV, time: T0 + 130_000 })]); // watermark +125 s
    feed.batch([ev({ type: PV, time: T0 + 62_000, sessionId: "s2" })]); // second 62 final (123 s <= 125 s), minute 1 not
    expect(windows(agg)).toEqual([`${SEC}@130000:live`, `${MIN}@${MIN}:partial`]);
    await checkpoint(agg, store);
    feed.batch([ev({ type: PV, time: T0 + 110_000, sessionId: "s3" })]); // behind the watermark, inside the lateness
    await checkpoint(agg, store);
    feed.batch([ev({ type: PV, time: T0 + 5 * MIN })]); // minute 1 final
    await checkpoint(agg, store);
    const row = (res: number, start: number) => {
      const p = createPane();
      mergeEncoded(p, "core", store.windows.get(`${res}:core:${start}:0`)!.value, agg.dict);
      return Array.from(p.core);
    };
    expect(row(MIN, T0 + MIN)).toEqual(core({ 0: 1, [C_TOTAL]: 1, [C_LATE_MERGED]: 1, [C_LATE_DROPPED]: 1 }));
    expect(row(SEC, T0 + 62_000)).toEqual(core({ [C_LATE_DROPPED]: 1 }));
    feed.batch([ev({ type: PV, time: T0 + 3 * HOUR })]);
    await checkpoint(agg, store);
    await checkpoint(agg, store);
    expect(row(HOUR, T0)).toEqual(core({ 0: 3, [C_TOTAL]: 3, [C_LATE_MERGED]: 1, [C_LATE_DROPPED]: 1 }));
  });

  it("counts captured corrections from memory until overlaid(), committed() or failed() hands them on, once", async () => {
    const { agg, store, feed, ev } = setup();
    feed.batch([ev({ type: PV, time: T0 + 1000 }), ev({ type: PV, time: T0 + 130_000, sessionId: "s2" })]);
    await checkpoint(agg, store); // second +1 and minute 0 leave memory
    const pending = () => [...agg.pendingCorrections()].map((w) => `${w.res}@${w.start - T0}:${w.pane.core[C_DUPLICATES]}`).sort();
    const dup = () => feed.batch([ev({ type: "duplicate", time: T0 + 1000 })]);

    dup();
    expect(pending()).toEqual(["1000@1000:1", "60000@0:1"]);
    const c1 = agg.capture();
    expect(c1.corrections).toHaveLength(2);
    expect(agg.stats().corrections).toBe(0);
    expect(pending()).toEqual(["1000@1000:1", "60000@0:1"]); // in flight, not readable elsewhere yet
    agg.overlaid();
    expect(pending()).toEqual([]);
    dup(); // arrives while c1 is in flight: a new correction
    expect(pending()).toEqual(["1000@1000:1", "60000@0:1"]);
    agg.committed(c1);
    expect(pending()).toEqual(["1000@1000:1", "60000@0:1"]);

    const c2 = agg.capture();
    agg.committed(c2); // without overlaid()
    expect(pending()).toEqual([]);

    dup();
    const c3 = agg.capture();
    dup();
    agg.overlaid();
    agg.failed(c3); // both deltas are pending again, each once
    expect(pending()).toEqual(["1000@1000:2", "60000@0:2"]);
  });
});
