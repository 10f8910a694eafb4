// Dictionary release: ids nothing holds are freed and their numbers reused, never while a holder or a
// pinned reader may still use them; through the aggregator, answers stay exact when numbers are reused.

import { describe, expect, it } from "bun:test";
import { HOUR, MIN, createAggregator } from "./aggregator.ts";
import { createDictionary } from "./dictionary.ts";
import { FAMILIES, createPane } from "./pane.ts";
import { collect } from "./query.ts";
import {
  checkpoint,
  createFeeder,
  createLatenessOracle,
  createMemoryHistory,
  expectedPlain,
  expectedStock,
  fakeClock,
  generateStream,
  plainOf,
  type Applied,
  type TestEvent,
} from "./test-records.ts";

describe("dictionary release", () => {
  it("frees the ids no holder marks and reuses their numbers, keeping the marked ones", () => {
    const dict = createDictionary({ minIds: 1 });
    const held = new Set<number>();
    dict.addHolder({ mark: (visit) => held.forEach(visit) });
    const a = dict.intern("a");
    const b = dict.intern("b");
    const c = dict.intern("c");
    held.add(b);
    dict.sweep();
    expect(dict.size).toBe(1);
    expect(dict.str(b)).toBe("b");
    expect(dict.lookup("a")).toBe(-1);
    expect(dict.lookup("c")).toBe(-1);
    // the freed numbers are given out again, the held one is not
    const reused = [dict.intern("d"), dict.intern("e")].sort();
    expect(reused).toEqual([a, c].sort());
    expect(dict.intern("f")).toBe(3);
    expect(dict.intern("b")).toBe(b);
    expect(dict.stats()).toMatchObject({ ids: 4, released: 2, sweeps: 1 });
  });

  it("keeps a condemned id readable until every reader pinned before the sweep is done", () => {
    const dict = createDictionary({ minIds: 1 });
    const held = new Set<number>();
    dict.addHolder({ mark: (visit) => held.forEach(visit) });
    const x = dict.intern("x");
    const early = dict.pin();
    dict.sweep();
    // condemned, not freed: the early reader may hold x in a pane
    expect(dict.str(x)).toBe("x");
    expect(dict.stats().condemned).toBe(1);
    const late = dict.pin(); // began after the sweep: it can only get x by interning it, which takes it back
    const y = dict.intern("y");
    expect(y).not.toBe(x);
    held.add(y);
    dict.sweep();
    expect(dict.str(x)).toBe("x"); // the early reader still runs
    early();
    dict.sweep();
    expect(dict.stats().condemned).toBe(0);
    expect(dict.lookup("x")).toBe(-1);
    expect(dict.intern("z")).toBe(x);
    late();
  });

  it("takes back a condemned id interned again before it is freed, so a string never has two ids", () => {
    const dict = createDictionary({ minIds: 1 });
    const held = new Set<number>();
    dict.addHolder({ mark: (visit) => held.forEach(visit) });
    const x = dict.intern("x");
    const reader = dict.pin();
    dict.sweep();
    expect(dict.intern("x")).toBe(x);
    held.add(x); // whoever interned it keeps it
    reader();
    dict.sweep();
    expect(dict.lookup("x")).toBe(x);
    expect(dict.stats()).toMatchObject({ condemned: 0, released: 0 });
    // condemned again by a later sweep, it goes with that sweep's batch, not the earlier one
    held.clear();
    const r2 = dict.pin();
    dict.sweep();
    dict.sweep();
    expect(dict.str(x)).toBe("x");
    r2();
    dict.sweep();
    expect(dict.lookup("x")).toBe(-1);
  });

  it("asks a cache to let go of ids only it holds, and frees them once it has", () => {
    const dict = createDictionary({ minIds: 1 });
    const strong = new Set<number>();
    const cache = new Map<number, boolean>(); // id -> being released
    const asked: number[][] = [];
    dict.addHolder({ mark: (visit) => strong.forEach(visit) });
    dict.addHolder({
      prune(needed) {
        const ids = [...cache.keys()].filter((id) => !cache.get(id) && !needed(id));
        for (const id of ids) cache.set(id, true);
        asked.push(ids);
      },
      mark: (visit) => cache.forEach((_, id) => visit(id)),
    });
    const p = dict.intern("p");
    const q = dict.intern("q");
    cache.set(p, false).set(q, false);
    strong.add(q);
    dict.sweep();
    expect(asked).toEqual([[p]]);
    expect(dict.size).toBe(2); // p stays while the cache still translates it
    cache.delete(p); // the release finished
    dict.sweep();
    expect(asked[1]).toEqual([]);
    expect(dict.lookup("p")).toBe(-1);
    expect(dict.lookup("q")).toBe(q);
  });

  it("sweeps from maintain once the ids doubled since the last sweep or the interval passed", () => {
    const dict = createDictionary({ minIds: 4, sweepIntervalMs: 1000 });
    const held = new Set<number>();
    dict.addHolder({ mark: (visit) => held.forEach(visit) });
    for (const s of ["a", "b", "c"]) held.add(dict.intern(s));
    expect(dict.maintain(0)).toBe(false); // below minIds
    held.add(dict.intern("d"));
    expect(dict.maintain(0)).toBe(true);
    for (const s of ["e", "f", "g"]) held.add(dict.intern(s));
    expect(dict.maintain(10)).toBe(false); // 7 < 2 x 4, interval not passed
    held.add(dict.intern("h"));
    expect(dict.maintain(20)).toBe(true);
    expect(dict.maintain(500)).toBe(false);
    expect(dict.maintain(1020)).toBe(true);
    expect(dict.stats().sweeps).toBe(3);
  });
});

describe("aggregator ids after their state is released", () => {
  const T0 = Date.UTC(2024, 4, 1, 10, 0, 0);
  const OPTS = { outOfOrdernessMs: 5000, allowedLatenessMs: 60_000, sessionGapMs: 30 * MIN, idleTimeoutMs: 60_000 };

  it("frees the ids of final, committed windows and closed sessions, keeps inventory's, and answers exactly with their numbers reused", async () => {
    const partitions = 2;
    const clock = fakeClock();
    const agg = createAggregator({ partitions, ...OPTS, clock: clock.fn, dictionary: { minIds: 64, sweepIntervalMs: 1000 } });
    const feed = createFeeder(agg);
    const store = createMemoryHistory();
    const next = [0, 0];
    const renumber = (evs: Array<Omit<TestEvent, "offset">>): TestEvent[] => evs.map((e) => ({ ...e, offset: next[e.partition]++ }));
    // hour 0: 3000 products seen once each, sessions with sources of their own, stock for 20 of the products
    const N = 3000;
    const burst: Array<Omit<TestEvent, "offset">> = [];
    for (let i = 0; i < N; i++) {
      const session = i % 60;
      burst.push({
        type: i % 7 === 0 ? "add_to_cart" : "product_view",
        partition: session % partitions,
        time: T0 + Math.floor((i * HOUR) / N),
        userId: `bu-${session}`,
        sessionId: `bs-${session}`,
        productId: `x-${i}`,
        utmSource: i < 60 ? `src-${i}` : undefined,
        quantity: 1,
      });
      if (i % 150 === 0)
        burst.push({ type: "inventory_update", partition: i % partitions, time: T0 + Math.floor((i * HOUR) / N), productId: `x-${i}`, stock: i % 13 });
    }
    // two hours later, a shop with 25 products; it moves the watermark far past hour 0
    const shop = generateStream({ seed: 5, start: T0 + 2 * HOUR, durationMs: HOUR, sessions: 150, partitions });
    // a session per partition that starts in hour 0 with a source of its own and buys long after hour 0 is
    // stored: its open session alone holds the source's id
    const solo: Array<Omit<TestEvent, "offset">> = [];
    for (let p = 0; p < partitions; p++)
      [50, 75, 100, 125, 145, 165].forEach((m, k) =>
        solo.push({
          type: k === 0 ? "page_view" : k === 5 ? "purchase" : "product_view",
          partition: p,
          time: T0 + m * MIN + p * 1000,
          userId: `su-${p}`,
          sessionId: `solo-${p}`,
          utmSource: k === 0 ? `solo-src-${p}` : undefined,
          productId: k > 0 && k < 5 ? `x-${p}` : undefined,
          items: k === 5 ? [{ productId: `x-${p + 1}`, priceCents: 500, quantity: 2 }] : undefined,
        }),
      );
    const early = [...burst, ...solo.filter((e) => e.time < T0 + 2 * HOUR)].sort((a, b) => a.time - b.time);
    const later = shop.map(({ offset: _, ...e }): Omit<TestEvent, "offset"> => e);
    for (const e of solo.filter((e) => e.time >= T0 + 2 * HOUR)) {
      const at = later.findIndex((x) => x.time > e.time);
      later.splice(at < 0 ? later.length : at, 0, e);
    }
    const wave1 = renumber(early).concat(renumber(later));
    const oracle = createLatenessOracle({ partitions, ...OPTS });
    const applied: Applied[] = [];
    let peak = 0;
    const run = async (evs: TestEvent[]) => {
      for (let i = 0; i < evs.length; i += 50) {
        const batch = evs.slice(i, i + 50);
        for (const e of batch) applied.push({ ev: e, status: oracle.status(e) });
        oracle.advance();
        feed.batch(batch);
        clock.tick(250); // a sweep every fourth batch
        peak = Math.max(peak, agg.dict.size);
        if ((i / 50) % 10 === 9) await checkpoint(agg, store);
      }
      await checkpoint(agg, store);
    };
    await run(wave1);
    expect(applied.every((a) => a.status === "on-time")).toBe(true);
    expect(peak).toBeGreaterThan(N / 2); // hour 0's products were held while hour 0 was open

    clock.tick(1001);
    agg.advance();
    // kept: the shop's 25 products and 4 sources (open windows, sessions), the 20 products with stock, and
    // the solo sessions' 2 sources (still open) and 3 products (in open windows)
    const stocked = burst.filter((e) => e.type === "inventory_update").length;
    expect(agg.dict.size).toBeLessThanOrEqual(25 + 4 + stocked + 2 + 3);
    expect(agg.dict.stats().released).toBeGreaterThanOrEqual(N - stocked);

    // new products, after the shop's last event, take the freed numbers
    const after = Math.max(...shop.map((e) => e.time)) + 1000;
    const wave2: Array<Omit<TestEvent, "offset">> = [];
    for (let i = 0; i < 500; i++)
      wave2.push({ type: "product_view", partition: i % partitions, time: after + i * 100, userId: "nu", sessionId: `ns-${i % 9}`, productId: `y-${i}` });
    await run(renumber(wave2));
    expect(applied.every((a) => a.status === "on-time")).toBe(true);
    const ids = wave2.map((e) => agg.dict.lookup(e.productId!));
    expect(ids.filter((id) => id >= 0 && id < N + stocked).length).toBeGreaterThan(400);

    for (const [from, to] of [
      [T0, T0 + HOUR],
      [T0 + 20 * MIN, T0 + 2 * HOUR + 17 * MIN],
      [T0 + 2 * HOUR, T0 + 5 * HOUR],
      [T0, T0 + 6 * HOUR],
    ]) {
      const got = plainOf((await collect(agg, store, from, to, FAMILIES)).get(0) ?? createPane(), agg.dict);
      expect({ from: from - T0, got }).toEqual({ from: from - T0, got: expectedPlain(applied, from, to, OPTS.sessionGapMs) });
    }
    const got = Object.fromEntries([...agg.inventory()].map((e) => [agg.dict.str(e.product), e.stock]));
    expect(got).toEqual(expectedStock(applied));
  });
});
