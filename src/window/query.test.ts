// Range query tests: segments() cuts ranges into aligned 1 s / 1 m / 1 h pieces, and collect() gives the
// plain-loop totals whether the windows are live, flushing, being written or already in the store.

import { describe, expect, it } from "bun:test";
import { createReadCache } from "../store/read-cache.ts";
import type { HistoryStore, WindowRow } from "../store/types.ts";
import { FLUSHING, HOUR, MIN, SEC, createAggregator, type Aggregator, type Res } from "./aggregator.ts";
import { C_DUPLICATES, C_REVENUE, C_TOTAL, FAMILIES, createPane, encodePane, mergeEncoded, mergePane, type Family, type Pane } from "./pane.ts";
import { collect, segments, summaryOf, type Segment, type WindowReader } from "./query.ts";
import {
  checkpoint,
  createFeeder,
  createLatenessOracle,
  createMemoryHistory,
  expectedPlain,
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

const floorTo = (t: number, r: number) => Math.floor(t / r) * r;
const ceilTo = (t: number, r: number) => Math.ceil(t / r) * r;
const rel = (segs: Segment[]) => segs.map((s) => ({ res: s.res, from: s.from - T0, to: s.to - T0 }));

describe("segments", () => {
  it("keeps a range inside one minute at 1 s, rounded out to whole seconds", () => {
    expect(rel(segments(T0 + 500, T0 + 1500))).toEqual([{ res: SEC, from: 0, to: 2000 }]);
    expect(rel(segments(T0 + 10_000, T0 + 59_000))).toEqual([{ res: SEC, from: 10_000, to: 59_000 }]);
  });

  it("is empty for an empty or inverted range of whole seconds", () => {
    expect(segments(T0, T0)).toEqual([]);
    expect(segments(T0 + 5000, T0 + 1000)).toEqual([]);
  });

  it("uses the coarsest aligned pieces from the outside in", () => {
    expect(rel(segments(T0 + 30_000, T0 + 3 * HOUR + 10 * MIN + 5500))).toEqual([
      { res: SEC, from: 30_000, to: MIN },
      { res: MIN, from: MIN, to: HOUR },
      { res: HOUR, from: HOUR, to: 3 * HOUR },
      { res: MIN, from: 3 * HOUR, to: 3 * HOUR + 10 * MIN },
      { res: SEC, from: 3 * HOUR + 10 * MIN, to: 3 * HOUR + 10 * MIN + 6000 },
    ]);
    expect(rel(segments(T0 + 10 * MIN, T0 + 50 * MIN))).toEqual([{ res: MIN, from: 10 * MIN, to: 50 * MIN }]);
    expect(rel(segments(T0, T0 + 2 * HOUR))).toEqual([{ res: HOUR, from: 0, to: 2 * HOUR }]);
  });

  it("covers exactly [floor(from, 1 s), ceil(to, 1 s)) with aligned pieces that hold no whole coarser window", () => {
    const rnd = prng(3);
    for (let n = 0; n < 3000; n++) {
      const scale = [2 * SEC, 3 * MIN, 2 * HOUR, 30 * HOUR][n % 4];
      const from = T0 + Math.floor(rnd() * 5 * HOUR) - (n % 7 === 0 ? 0 : Math.floor(rnd() * 1000));
      const to = from + Math.floor(rnd() * scale);
      const segs = segments(from, to);
      const f = floorTo(from, SEC);
      const t = ceilTo(to, SEC);
      if (t <= f) {
        expect(segs).toEqual([]);
        continue;
      }
      expect(segs[0].from).toBe(f);
      expect(segs[segs.length - 1].to).toBe(t);
      expect(segs.length).toBeLessThanOrEqual(5);
      for (let i = 0; i < segs.length; i++) {
        const s = segs[i];
        if (i > 0) expect(s.from).toBe(segs[i - 1].to);
        expect(s.to).toBeGreaterThan(s.from);
        expect([SEC, MIN, HOUR]).toContain(s.res);
        expect(s.from % s.res).toBe(0);
        expect(s.to % s.res).toBe(0);
        const coarser = s.res === SEC ? MIN : s.res === MIN ? HOUR : null;
        if (coarser) expect(ceilTo(s.from, coarser) + coarser).toBeGreaterThan(s.to); // not coarse enough otherwise
      }
    }
  });
});

async function merged(agg: Aggregator, store: MemoryHistory, from: number, to: number): Promise<Pane> {
  return (await collect(agg, store, from, to, FAMILIES)).get(0) ?? createPane();
}

/** The stream with late events of fresh sessions spliced in (20 s to 3 min behind), offsets renumbered. */
function withLateEvents(stream: TestEvent[], partitions: number): TestEvent[] {
  const out: TestEvent[] = [];
  const lags = [20_000, 45_000, 70_000, 180_000];
  let n = 0;
  for (let i = 0; i < stream.length; i++) {
    out.push(stream[i]);
    if (i % 40 !== 39 || stream[i].type === "skip") continue;
    const lag = lags[n % lags.length];
    const base = stream[i];
    const late: TestEvent =
      n % 3 === 0
        ? { ...base, type: "purchase", items: [{ productId: "p-late", priceCents: 777, quantity: 2 }] }
        : { ...base, type: "product_view", productId: "p-late" };
    out.push({ ...late, time: base.time - lag, sessionId: `late-${n}`, userId: `late-${n}`, utmSource: "late", loadTimeMs: undefined });
    n++;
  }
  const next = new Array<number>(partitions).fill(0);
  return out.map((e) => ({ ...e, offset: next[e.partition]++ }));
}

describe("collect", () => {
  it("gives the plain-loop totals whether windows are live, flushing, being written or stored", async () => {
    const partitions = 2;
    const stream = withLateEvents(
      generateStream({ seed: 5, start: T0, durationMs: 3 * HOUR, sessions: 320, partitions }),
      partitions,
    );
    const clock = fakeClock();
    const agg = createAggregator({ partitions, ...OPTS, clock: clock.fn });
    const feed = createFeeder(agg);
    const store = createMemoryHistory();
    const oracle = createLatenessOracle({ partitions, ...OPTS });
    const applied: Applied[] = [];
    const ranges: Array<[number, number]> = [
      [T0, T0 + 6 * HOUR],
      [T0 + 17_250, T0 + 83 * MIN + 7500],
      [T0 + 59 * MIN, T0 + 2 * HOUR + MIN],
      [T0 + HOUR, T0 + 2 * HOUR],
      [T0 + 2 * HOUR + 30 * SEC, T0 + 2 * HOUR + 95 * SEC],
    ];
    const check = async (phase: string) => {
      for (const [from, to] of ranges) {
        const got = plainOf(await merged(agg, store, from, to), agg.dict);
        const want = expectedPlain(applied, from, to, OPTS.sessionGapMs);
        expect({ phase, from: from - T0, to: to - T0, got }).toEqual({ phase, from: from - T0, to: to - T0, got: want });
      }
    };
    const feedBatch = (batch: TestEvent[]) => {
      for (const e of batch) applied.push({ ev: e, status: oracle.status(e) });
      feed.batch(batch);
      oracle.advance();
      clock.tick(5);
      expect(agg.watermark.value).toBe(oracle.watermark);
    };
    const BATCH = 25;
    for (let i = 0, b = 1; i < stream.length; i += BATCH, b++) {
      feedBatch(stream.slice(i, i + BATCH));
      if (b % 12 !== 0) continue;
      await check(`live and flushing, batch ${b}`);
      await checkpoint(agg, store, { beforeCommit: () => check(`being written, batch ${b}`) });
      await check(`stored, batch ${b}`);
    }
    const statuses = new Set(applied.map((a) => a.status));
    expect([...statuses].sort()).toEqual(["dropped", "merged", "on-time"]); // every path was taken

    // both partitions move far ahead: every window of the stream is final and goes to the store
    feedBatch([0, 1].map((p) => ({ type: "page_view", partition: p, offset: 1e6, time: T0 + 5 * HOUR, sessionId: "end", userId: "end" })));
    await check("all flushing");
    await checkpoint(agg, store);
    await checkpoint(agg, store);
    expect([...agg.memWindows()].filter((w) => w.start < T0 + 4 * HOUR)).toEqual([]);
    await check("all stored");

    // unique users and sessions within 2 % of the exact distinct counts
    const s = summaryOf(await merged(agg, store, T0, T0 + 3 * HOUR), T0, T0 + 3 * HOUR, agg.watermark.value);
    const users = new Set<string>();
    const sessions = new Set<string>();
    for (const { ev, status } of applied) {
      if (status === "dropped" || ev.time >= T0 + 3 * HOUR || !ev.userId) continue;
      if (ev.type === "duplicate" || ev.type === "skip" || ev.type === "inventory_update") continue;
      users.add(ev.userId);
      sessions.add(ev.sessionId!);
    }
    expect(Math.abs(s.uniqueUsers - users.size) / users.size).toBeLessThanOrEqual(0.02);
    expect(Math.abs(s.uniqueSessions - sessions.size) / sessions.size).toBeLessThanOrEqual(0.02);
  });

  it("buckets a range by step with the plain-loop totals of each bucket", async () => {
    const partitions = 2;
    const stream = withLateEvents(generateStream({ seed: 9, start: T0, durationMs: 2 * HOUR, sessions: 150, partitions }), partitions);
    const agg = createAggregator({ partitions, ...OPTS, clock: fakeClock().fn });
    const feed = createFeeder(agg);
    const store = createMemoryHistory();
    const oracle = createLatenessOracle({ partitions, ...OPTS });
    const applied: Applied[] = [];
    const verify = async () => {
      for (const [step, from, to] of [
        [MIN, T0 + 10 * MIN + 5000, T0 + 75 * MIN],
        [HOUR, T0, T0 + 3 * HOUR],
        [SEC, T0 + HOUR - 20 * SEC, T0 + HOUR + 40 * SEC],
      ] as Array<[Res, number, number]>) {
        const buckets = await collect(agg, store, from, to, ["core"], step);
        const got = new Map<number, [number, number]>();
        for (const [b, p] of buckets) if (p.core[C_TOTAL] || p.core[C_REVENUE]) got.set(b, [p.core[C_TOTAL], p.core[C_REVENUE]]);
        const want = new Map<number, [number, number]>();
        for (const { ev, status } of applied) {
          if (status === "dropped" || ev.type === "duplicate" || ev.type === "skip") continue;
          if (ev.time < floorTo(from, step) || ev.time >= ceilTo(to, step)) continue;
          const b = floorTo(ev.time, step);
          const cur = want.get(b) ?? [0, 0];
          cur[0] += 1;
          for (const it of ev.type === "purchase" ? (ev.items ?? []) : []) cur[1] += it.priceCents * it.quantity;
          want.set(b, cur);
        }
        const sorted = (m: Map<number, [number, number]>) => [...m].sort((a, b) => a[0] - b[0]);
        expect({ step, got: sorted(got) }).toEqual({ step, got: sorted(want) });
      }
    };
    for (let i = 0; i < stream.length; i += 30) {
      const batch = stream.slice(i, i + 30);
      for (const e of batch) applied.push({ ev: e, status: oracle.status(e) });
      feed.batch(batch);
      oracle.advance();
      if ((i / 30) % 10 === 9) {
        await verify();
        await checkpoint(agg, store);
      }
    }
    await verify();
  });

  it("returns no buckets for an empty range", async () => {
    const agg = createAggregator({ partitions: 1, ...OPTS, clock: fakeClock().fn });
    expect((await collect(agg, createMemoryHistory(), T0, T0, FAMILIES)).size).toBe(0);
  });
});

// ---- reads racing commits: the read cache's overlay and collect()'s retry ----

/** A history store whose reads can be held, then answered with the rows as they are at release. */
function slowStore() {
  const rows = new Map<string, WindowRow>();
  let gate: Promise<void> | null = null;
  let reads = 0;
  const pick = (families: readonly string[], res: number, from: number, to: number) =>
    [...rows.values()].filter((r) => r.res === res && r.start >= from && r.start < to && families.includes(r.family));
  return {
    reads: () => reads,
    pick,
    put: (r: WindowRow) => void rows.set(`${r.family}|${r.res}|${r.start}|${r.partition}`, r),
    /** reads issued from now on wait for the returned release */
    hold(): () => void {
      let release!: () => void;
      gate = new Promise<void>((r) => (release = r));
      return () => {
        gate = null;
        release();
      };
    },
    async readWindows(families: readonly string[], res: number, from: number, to: number): Promise<WindowRow[]> {
      reads++;
      if (gate) await gate;
      return pick(families, res, from, to);
    },
  };
}

function world(partitions = 1, owned: number[] = [0]) {
  const agg = createAggregator({ partitions, ...OPTS, clock: fakeClock().fn });
  for (let p = 0; p < partitions; p++) if (!owned.includes(p)) agg.watermark.forget(p);
  const store = slowStore();
  return { agg, feed: createFeeder(agg), store, cache: createReadCache(store as unknown as HistoryStore, agg.dict) };
}
type World = ReturnType<typeof world>;

/**
 * engine.ts runCheckpoint for the window rows: flushed windows and read-modify-written corrections, overlaid
 * (pending + overlaid) while the store applies them one by one; `at.index` runs `at.hook` before that row.
 */
async function commitRows(w: World, at: { index?: number; hook?: () => Promise<void> | void; fail?: boolean } = {}) {
  const { agg, store, cache } = w;
  const c = agg.capture();
  const rows: WindowRow[] = [];
  for (const f of c.flushed)
    for (const e of encodePane(f.pane, agg.dict)) rows.push({ family: e.family, res: f.res, start: f.start, partition: f.partition, value: e.value });
  for (const corr of c.corrections) {
    const existing = store.pick(FAMILIES, corr.res, corr.start, corr.start + 1).filter((r) => r.partition === corr.partition);
    const pane = createPane();
    for (const r of existing) mergeEncoded(pane, r.family as Family, r.value, agg.dict);
    mergePane(pane, corr.pane);
    for (const e of encodePane(pane, agg.dict)) rows.push({ family: e.family, res: corr.res, start: corr.start, partition: corr.partition, value: e.value });
  }
  cache.pending(rows);
  agg.overlaid();
  const index = at.index ?? Math.floor(rows.length / 2);
  for (let i = 0; i <= rows.length; i++) {
    if (i === index) {
      await at.hook?.();
      if (at.fail) {
        cache.abandoned(rows);
        agg.failed(c);
        return rows;
      }
    }
    if (i === rows.length) break;
    store.put(rows[i]);
    await Promise.resolve(); // an async store: other tasks run between rows
  }
  cache.written(rows);
  agg.committed(c);
  return rows;
}

describe("collect while commits are in flight", () => {
  const at = (time: number, type: TestEvent["type"] = "page_view", sessionId = `s${time}`): TestEvent => ({
    type,
    partition: 0,
    offset: time,
    time: T0 + time,
    userId: "u",
    sessionId,
  });
  const accepted = [1000, 130_000, 200_000];
  const duplicates = [1000];
  const ranges: Array<[number, number, Res | undefined]> = [
    [T0, T0 + HOUR, undefined],
    [T0 + 1000, T0 + 2000, undefined],
    [T0, T0 + 5 * MIN, undefined],
    [T0 + 500, T0 + 3 * MIN + 500, undefined],
    [T0, T0 + 5 * MIN, MIN],
    [T0, T0 + 5 * SEC, SEC],
  ];
  /** [range, bucket, events, duplicates] of each non-empty bucket, by plain loops */
  const want = ranges.flatMap(([from, to, step], i) => {
    const f = floorTo(from, step ?? SEC);
    const t = ceilTo(to, step ?? SEC);
    const buckets = new Map<number, [number, number]>();
    const add = (x: number, k: 0 | 1) => {
      if (T0 + x < f || T0 + x >= t) return;
      const b = step ? floorTo(T0 + x, step) - T0 : 0;
      const cur = buckets.get(b) ?? [0, 0];
      cur[k]++;
      buckets.set(b, cur);
    };
    for (const x of accepted) add(x, 0);
    for (const x of duplicates) add(x, 1);
    return [...buckets].sort((a, b) => a[0] - b[0]).map(([b, [n, d]]) => [i, b, n, d]);
  });
  const answers = (w: World, reader: WindowReader = w.cache) =>
    Promise.all(ranges.map(([from, to, step]) => collect(w.agg, reader, from, to, ["core"], step))).then((all) =>
      all.flatMap((buckets, i) =>
        [...buckets]
          .filter(([, p]) => p.core[C_TOTAL] || p.core[C_DUPLICATES])
          .sort((a, b) => a[0] - b[0])
          .map(([b, p]) => [i, ranges[i][2] ? b - T0 : b, p.core[C_TOTAL], p.core[C_DUPLICATES]]),
      ),
    );

  /** second +1 and minute 0 stored; then corrections for both (a duplicate), second +130 flushing, more live */
  async function prepared(): Promise<World> {
    const w = world();
    w.feed.batch([at(1000), at(130_000)]);
    await commitRows(w);
    expect(w.store.pick(["core"], SEC, T0 + 1000, T0 + 1001)).toHaveLength(1);
    w.feed.batch([at(1000, "duplicate"), at(200_000)]);
    expect(w.agg.stats().corrections).toBe(2);
    expect(w.agg.stats().flushing).toBeGreaterThan(0);
    expect(await answers(w)).toEqual(want);
    return w;
  }
  async function settle(w: World) {
    await commitRows(w);
    expect(await answers(w)).toEqual(want);
    expect(w.agg.stats().corrections).toBe(0);
  }

  it("answers a read issued before the commit and served after it: the retry removes the double count", async () => {
    const w = await prepared();
    const release = w.store.hold();
    const q = answers(w);
    const before = w.store.reads();
    await commitRows(w);
    release();
    expect(await q).toEqual(want);
    expect(w.store.reads()).toBeGreaterThan(before); // read again
    await settle(w);

    // the same race without seq(): the corrections count in memory and in the rows they were written to
    const v = await prepared();
    const noSeq: WindowReader = { readWindows: v.cache.readWindows, readMerged: v.cache.readMerged };
    const release2 = v.store.hold();
    const q2 = answers(v, noSeq);
    await commitRows(v);
    release2();
    const got = await q2;
    expect(got).not.toEqual(want);
    expect(got.find((r) => r[0] === 1)).toEqual([1, 0, 1, 2]); // second +1: its duplicate twice
  });

  it("answers a read issued and served in the middle of a commit from the overlay", async () => {
    const w = await prepared();
    let mid: unknown = null;
    const rows = await commitRows(w, {
      hook: async () => {
        expect(w.store.pick(["core"], SEC, T0 + 1000, T0 + 1001)[0]).toBeDefined();
        mid = await answers(w);
      },
    });
    expect(rows.length).toBeGreaterThan(2);
    expect(mid).toEqual(want);
    await settle(w);
    // at every row boundary
    for (let index = 0; index <= 12; index++) {
      const v = await prepared();
      let got: unknown = null;
      await commitRows(v, { index, hook: async () => void (got = await answers(v)) });
      expect({ index, got }).toEqual({ index, got: want });
    }
  });

  it("answers a read issued in the middle of a commit and served after it", async () => {
    const w = await prepared();
    let q: Promise<unknown> | null = null;
    let release = () => {};
    await commitRows(w, {
      hook: () => {
        release = w.store.hold();
        q = answers(w);
      },
    });
    release();
    expect(await q!).toEqual(want);
    await settle(w);
  });

  it("answers reads around a commit that fails before writing a row", async () => {
    const w = await prepared();
    const release = w.store.hold();
    const q = answers(w);
    let mid: Promise<unknown> | null = null;
    let releaseMid = () => {};
    await commitRows(w, {
      index: 0,
      fail: true,
      hook: async () => {
        release(); // the early read is served mid-commit
        expect(await answers(w)).toEqual(want); // served from the overlay
        releaseMid = w.store.hold();
        mid = answers(w);
      },
    });
    releaseMid();
    expect(await q).toEqual(want);
    expect(await mid!).toEqual(want);
    expect(await answers(w)).toEqual(want);
    expect(w.agg.stats().corrections).toBe(2);
    await settle(w);
  });

  it("counts another owner's published windows unless the store already has their rows", async () => {
    const a = world(2, [0]);
    const b = world(2, [1]);
    b.store = a.store; // one history store, two instances with their own caches
    b.cache = createReadCache(a.store as unknown as HistoryStore, b.agg.dict);
    a.feed.batch([at(2000)]);
    b.feed.batch([1000, 130_000].map((t) => ({ ...at(t), partition: 1 })));
    expect([...b.agg.memWindows()].filter((w) => w.state === FLUSHING).length).toBe(2); // second +1, minute 0
    const published = { windows: [...b.agg.memWindows()], corrections: [...b.agg.pendingCorrections()] };
    const remote = () => published;
    const q = async (from: number, to: number) => {
      const p = (await collect(a.agg, a.cache, from, to, ["core"], undefined, undefined, remote)).get(0);
      return p ? p.core[C_TOTAL] : 0;
    };
    const check = async () =>
      expect([await q(T0, T0 + HOUR), await q(T0 + 1000, T0 + 3000), await q(T0, T0 + MIN), await q(T0 + MIN, T0 + 3 * MIN)]).toEqual([3, 2, 2, 1]);
    await check();
    const rows = await commitRows(b); // b's flushed windows are stored; the published list is stale now
    a.cache.invalidate(rows); // the "written" notice
    expect(a.store.pick(["core"], MIN, T0, T0 + 1)).toHaveLength(1);
    await check();
  });
});
