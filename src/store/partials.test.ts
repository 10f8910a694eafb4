// Open-window partials between two aggregators that own different partitions, over one shared hot cache:
// each sees the other's open windows, changes after a publish show up at the next one (the packed-pane
// cache never serves a stale window), and an unchanged window is neither packed nor decoded again.

import { describe, expect, it } from "bun:test";
import { createMemoryHotCache } from "./memory-hot-cache.ts";
import { createPartials } from "./partials.ts";
import { C_TOTAL, createAggregator, createPane, mergePane, type Aggregator } from "../window/index.ts";
import { createFeeder, fakeClock, type TestEvent } from "../window/test-records.ts";

const T0 = Date.parse("2026-11-30T10:00:00Z");

function instance(owned: number[], clock: () => number): Aggregator {
  const agg = createAggregator({ partitions: 4, outOfOrdernessMs: 5000, allowedLatenessMs: 60_000, sessionGapMs: 1_800_000, idleTimeoutMs: 10_000, clock });
  for (let p = 0; p < 4; p++) agg.watermark.forget(p);
  agg.restore({
    offsets: new Map(owned.map((p) => [p, 0])),
    openWindows: [],
    sessions: [],
    inventory: [],
    meta: null,
    partitionMeta: new Map(owned.map((p) => [p, JSON.stringify({ maxTime: null, floor: null })])),
  });
  return agg;
}

const view = (ev: Partial<TestEvent> & { partition: number; offset: number; time: number }): TestEvent => ({
  type: "page_view",
  userId: `u${ev.offset}`,
  sessionId: `s${ev.partition}-${ev.offset}`,
  ...ev,
});

/** total events in the remote windows of the 1 s resolution */
function remoteTotal(w: ReturnType<ReturnType<typeof createPartials>["remote"]>): number {
  const sum = createPane();
  for (const x of w.windows) if (x.res === 1000) mergePane(sum, x.pane);
  return sum.core[C_TOTAL];
}

describe("partials between instances", () => {
  it("shows each instance the other's open windows, and later changes at the next publish", () => {
    const clock = fakeClock(T0);
    const cache = createMemoryHotCache();
    const a = instance([0, 1], clock.fn);
    const b = instance([2, 3], clock.fn);
    const pa = createPartials({ cache, agg: a, owner: "a", partitions: 4 });
    const pb = createPartials({ cache, agg: b, owner: "b", partitions: 4 });
    const fa = createFeeder(a);
    const fb = createFeeder(b);
    fa.batch([view({ partition: 0, offset: 0, time: T0 }), view({ partition: 1, offset: 0, time: T0 + 10 })]);
    fb.batch([view({ partition: 2, offset: 0, time: T0 + 20 })]);
    pa.publish();
    pb.publish();
    expect(remoteTotal(pa.remote())).toBe(1); // b's partition 2
    expect(remoteTotal(pb.remote())).toBe(2); // a's partitions 0 and 1
    // its own partitions are never taken from the cache
    expect([...pa.remote().windows].every((w) => w.partition >= 2)).toBe(true);

    // a changes one window in place: b must see it after a's next publish, not the cached packing
    fa.batch([view({ partition: 0, offset: 1, time: T0 + 1 })]);
    expect(remoteTotal(pb.remote())).toBe(2);
    pa.publish();
    expect(remoteTotal(pb.remote())).toBe(3);
  });

  it("reuses the packing of unchanged windows and the decoding of unchanged bytes", () => {
    const clock = fakeClock(T0);
    const cache = createMemoryHotCache();
    const a = instance([0], clock.fn);
    const b = instance([1], clock.fn);
    const pa = createPartials({ cache, agg: a, owner: "a", partitions: 2 });
    const pb = createPartials({ cache, agg: b, owner: "b", partitions: 2 });
    const fa = createFeeder(a);
    const evs: TestEvent[] = [];
    for (let i = 0; i < 20; i++) evs.push(view({ partition: 0, offset: i, time: T0 + i * 1000 }));
    fa.batch(evs);
    pa.publish();
    const first = [...pb.remote().windows];
    // one more event in the newest second only
    fa.batch([view({ partition: 0, offset: 20, time: T0 + 19_500 })]);
    pa.publish();
    const second = [...pb.remote().windows];
    const byKey = (ws: typeof first) => new Map(ws.map((w) => [`${w.res}:${w.start}`, w.pane]));
    const before = byKey(first);
    let same = 0;
    let changed = 0;
    for (const [k, pane] of byKey(second)) {
      if (before.get(k) === pane) same++;
      else changed++;
    }
    expect(changed).toBeGreaterThanOrEqual(1); // the second that took the event
    expect(same).toBeGreaterThanOrEqual(18); // every other second: the same decoded pane object
    expect(remoteTotal({ windows: second, corrections: [] })).toBe(21);
  });
});
