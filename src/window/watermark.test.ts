// Watermark tests: the min-over-active-partitions rule, idleness by injected processing time, monotonicity,
// checkpoint round trips, and the same rules observed through the aggregator's records.

import { describe, expect, it } from "bun:test";
import { createAggregator } from "./aggregator.ts";
import { createFeeder, fakeClock, type TestEvent } from "./test-records.ts";
import { createWatermark } from "./watermark.ts";

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);
const OOO = 5000;
const IDLE = 10_000;

function setup(partitions = 3) {
  const clock = fakeClock();
  const wm = createWatermark({ partitions, outOfOrdernessMs: OOO, idleTimeoutMs: IDLE, clock: clock.fn });
  return { clock, wm };
}

describe("watermark", () => {
  it("is -Infinity before any event", () => {
    const { wm } = setup();
    expect(wm.advance()).toBe(-Infinity);
    expect(wm.value).toBe(-Infinity);
  });

  it("is the min over active partitions of their max event time minus the out-of-orderness", () => {
    const { wm } = setup();
    wm.observe(0, T0 + 40_000);
    wm.observe(0, T0 + 10_000); // an older event does not lower the partition's clock
    wm.observe(1, T0 + 25_000);
    wm.observe(2, T0 + 31_000);
    expect(wm.advance()).toBe(T0 + 25_000 - OOO);
    expect(wm.maxTime(0)).toBe(T0 + 40_000);
    wm.observe(1, T0 + 50_000);
    expect(wm.advance()).toBe(T0 + 31_000 - OOO);
    expect(wm.value).toBe(T0 + 31_000 - OOO);
  });

  it("is held back by a partition that has sent nothing until the idle timeout passes", () => {
    const { clock, wm } = setup(4);
    wm.observe(2, T0 + 9000);
    expect(wm.advance()).toBe(-Infinity); // a worker that starts late must not find its events behind
    clock.tick(IDLE - 1);
    wm.observe(2, T0 + 9500);
    expect(wm.advance()).toBe(-Infinity);
    clock.tick(1);
    expect(wm.advance()).toBe(T0 + 9500 - OOO);
  });

  it("stops being held back by a partition idle for the idle timeout of processing time", () => {
    const { clock, wm } = setup(2);
    wm.observe(0, T0 + 60_000);
    wm.observe(1, T0 + 20_000);
    expect(wm.advance()).toBe(T0 + 15_000);
    clock.tick(IDLE - 1);
    wm.observe(0, T0 + 70_000);
    expect(wm.advance()).toBe(T0 + 15_000); // partition 1 silent for less than the timeout
    clock.tick(1);
    expect(wm.advance()).toBe(T0 + 65_000); // now it is idle
  });

  it("uses the furthest partition clock when every partition is idle", () => {
    const { clock, wm } = setup(2);
    wm.observe(0, T0 + 8000);
    wm.observe(1, T0 + 3000);
    wm.advance(); // the drain loop advances after every batch: that stamps when partitions were heard
    clock.tick(IDLE);
    expect(wm.advance()).toBe(T0 + 3000);
  });

  it("never moves backwards when a lagging partition becomes active again", () => {
    const { clock, wm } = setup(2);
    wm.observe(0, T0 + 100_000);
    wm.observe(1, T0 + 10_000);
    wm.advance();
    clock.tick(IDLE);
    wm.observe(0, T0 + 101_000);
    expect(wm.advance()).toBe(T0 + 96_000);
    wm.observe(1, T0 + 12_000); // partition 1 resumes far behind
    expect(wm.advance()).toBe(T0 + 96_000);
    wm.observe(0, T0 + 200_000);
    expect(wm.advance()).toBe(T0 + 96_000); // held back by partition 1 again, but never lowered
    wm.observe(1, T0 + 150_000);
    expect(wm.advance()).toBe(T0 + 145_000);
  });

  it("round-trips value and partition clocks through snapshot and restore", () => {
    const { clock, wm } = setup(3);
    wm.observe(0, T0 + 30_000);
    wm.observe(2, T0 + 20_000);
    clock.tick(IDLE / 2);
    wm.observe(0, T0 + 30_000);
    wm.observe(2, T0 + 20_000);
    clock.tick(IDLE / 2); // partition 1 never sent anything and is idle now
    wm.observe(0, T0 + 30_000);
    wm.observe(2, T0 + 20_000);
    expect(wm.advance()).toBe(T0 + 15_000);
    const snap = JSON.parse(JSON.stringify(wm.snapshot())) as ReturnType<typeof wm.snapshot>;
    const { wm: again } = setup(3);
    again.restore(snap);
    expect(again.value).toBe(T0 + 15_000);
    expect(again.maxTime(0)).toBe(T0 + 30_000);
    expect(again.maxTime(1)).toBe(-Infinity);
    expect(again.maxTime(2)).toBe(T0 + 20_000);
  });

  it("restores an empty watermark as -Infinity", () => {
    const { wm } = setup(2);
    const snap = JSON.parse(JSON.stringify(wm.snapshot())) as ReturnType<typeof wm.snapshot>;
    const { wm: again } = setup(2);
    again.restore(snap);
    expect(again.value).toBe(-Infinity);
    expect(again.advance()).toBe(-Infinity);
  });

  it("gives restored partitions the idle timeout to resume before they stop holding it back", () => {
    const { clock, wm } = setup(2);
    wm.observe(0, T0 + 50_000);
    wm.observe(1, T0 + 50_000);
    wm.advance();
    const snap = wm.snapshot();
    const restarted = fakeClock(clock.now + 3_600_000); // the process restarts much later
    const again = createWatermark({ partitions: 2, outOfOrdernessMs: OOO, idleTimeoutMs: IDLE, clock: restarted.fn });
    again.restore(snap);
    // partition 0 replays its backlog quickly; partition 1's backlog is still on its way
    again.observe(0, T0 + 90_000);
    expect(again.advance()).toBe(T0 + 45_000);
    restarted.tick(IDLE);
    expect(again.advance()).toBe(T0 + 85_000);
  });
});

describe("watermark through the aggregator", () => {
  const ev = (partition: number, offset: number, time: number, type: TestEvent["type"] = "page_view"): TestEvent => ({
    type,
    partition,
    offset,
    time,
    userId: "u",
    sessionId: `s-${partition}`,
  });

  function aggregator(partitions: number) {
    const clock = fakeClock();
    const agg = createAggregator({
      partitions,
      outOfOrdernessMs: OOO,
      allowedLatenessMs: 60_000,
      sessionGapMs: 30 * 60_000,
      idleTimeoutMs: IDLE,
      clock: clock.fn,
    });
    return { clock, agg, feed: createFeeder(agg) };
  }

  it("advances from event records but not from duplicate or dead-letter markers", () => {
    const { agg, feed } = aggregator(1);
    feed.batch([ev(0, 0, T0 + 20_000)]);
    expect(agg.watermark.value).toBe(T0 + 15_000);
    feed.batch([ev(0, 1, T0 + 90_000, "duplicate"), ev(0, 2, 0, "skip")]);
    expect(agg.watermark.value).toBe(T0 + 15_000);
    feed.batch([ev(0, 3, T0 + 10_000)]); // behind the watermark: merged, clock unchanged
    expect(agg.watermark.value).toBe(T0 + 15_000);
  });

  it("is held back by the slowest active partition until it idles", () => {
    const { clock, agg, feed } = aggregator(2);
    feed.batch([ev(0, 0, T0 + 100_000), ev(1, 0, T0 + 30_000)]);
    expect(agg.watermark.value).toBe(T0 + 25_000);
    clock.tick(IDLE / 2);
    feed.batch([ev(0, 1, T0 + 110_000)]);
    expect(agg.watermark.value).toBe(T0 + 25_000);
    clock.tick(IDLE / 2);
    feed.batch([ev(0, 2, T0 + 120_000)]);
    expect(agg.watermark.value).toBe(T0 + 115_000);
  });
});

describe("watermark ownership", () => {
  it("stops counting a forgotten partition at once, active or not, and never moves back", () => {
    const { clock, wm } = setup(3);
    wm.observe(0, T0 + 50_000);
    expect(wm.advance()).toBe(-Infinity); // 1 and 2 have sent nothing and are not idle yet
    wm.forget(1);
    wm.forget(2); // not ours (the engine starts so in Kafka mode): they hold nothing back
    expect(wm.advance()).toBe(T0 + 45_000);

    wm.observe(0, T0 + 100_000);
    wm.observe(1, T0 + 30_000);
    wm.observe(2, T0 + 60_000);
    expect(wm.advance()).toBe(T0 + 45_000); // held at 30 s - 5 s by partition 1, but never lowered
    wm.observe(1, T0 + 31_000);
    wm.forget(1);
    expect(wm.maxTime(1)).toBe(-Infinity);
    expect(wm.advance()).toBe(T0 + 55_000);
    wm.observe(2, T0 + 70_000);
    wm.forget(2); // an event noted but not yet stamped does not keep it active
    expect(wm.advance()).toBe(T0 + 95_000);
    expect(wm.snapshot().maxTime).toEqual([T0 + 100_000, -1e300, -1e300]);
    clock.tick(IDLE); // every partition idle: the furthest clock of those still tracked
    expect(wm.advance()).toBe(T0 + 95_000);
    wm.forget(0);
    expect(wm.advance()).toBe(T0 + 95_000); // nothing tracked: it stays
    wm.observe(1, T0 + 150_000); // heard again: tracked again
    expect(wm.advance()).toBe(T0 + 145_000);
  });

  it("counts an adopted partition as just heard, from the clock its checkpoint recorded", () => {
    const { clock, wm } = setup(3);
    for (let p = 0; p < 3; p++) wm.forget(p);
    wm.adopt(1, T0 + 40_000);
    wm.adopt(2, T0 + 60_000);
    expect(wm.advance()).toBe(T0 + 35_000); // no event yet: the adopted clocks hold it
    wm.adopt(1, T0 + 10_000); // an older clock does not lower the partition's
    expect(wm.maxTime(1)).toBe(T0 + 40_000);
    clock.tick(IDLE - 1);
    wm.observe(2, T0 + 70_000);
    expect(wm.advance()).toBe(T0 + 35_000); // partition 1 counts as heard at adopt
    clock.tick(1);
    expect(wm.advance()).toBe(T0 + 65_000); // now it is idle
    wm.adopt(0, -Infinity); // a partition without a clock holds it until it is heard or idles
    wm.observe(2, T0 + 90_000);
    expect(wm.advance()).toBe(T0 + 65_000);
    clock.tick(IDLE);
    expect(wm.advance()).toBe(T0 + 85_000);
    wm.adopt(0, T0 + 20_000); // re-adopted far behind: the watermark never moves back
    expect(wm.advance()).toBe(T0 + 85_000);
    wm.observe(0, T0 + 200_000);
    wm.observe(2, T0 + 190_000);
    expect(wm.advance()).toBe(T0 + 185_000);
  });
});
