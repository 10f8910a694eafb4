import { describe, expect, it } from "bun:test";
import { startRealtime } from "./realtime.ts";
import type { WireEvent } from "./wire.ts";

/** A manual clock and scheduler: each advance() moves time one tick and runs the driver's tick. */
function manual(start: number) {
  let now = start;
  let tick: (() => void) | null = null;
  let every = 0;
  let cancelled = false;
  return {
    clock: () => now,
    schedule: (fn: () => void, ms: number) => {
      tick = fn;
      every = ms;
      return () => {
        cancelled = true;
      };
    },
    advance(ticks = 1) {
      for (let i = 0; i < ticks; i++) {
        now += every;
        tick?.();
      }
    },
    /** Moves the clock without ticking, as a suspended laptop would. */
    jump(ms: number) {
      now += ms;
    },
    get cancelled() {
      return cancelled;
    },
    get now() {
      return now;
    },
  };
}

describe("startRealtime", () => {
  it("delivers about rate events per second of clock time, stamped no later than the clock", () => {
    const m = manual(Date.UTC(2024, 4, 1, 3));
    const batches: WireEvent[][] = [];
    let lateStamp = 0;
    const rt = startRealtime({
      seed: 1,
      rate: 1_000,
      tickMs: 100,
      bursts: false,
      clock: m.clock,
      schedule: m.schedule,
      sink: (b) => {
        batches.push(b);
        for (const e of b) if (e.timestamp > m.now) lateStamp++;
      },
    });
    m.advance(300);
    rt.stop();
    const total = batches.reduce((s, b) => s + b.length, 0);
    expect(Math.abs(total - 30_000)).toBeLessThan(900);
    expect(lateStamp).toBe(0);
    expect(batches.length).toBeGreaterThan(290);
    expect(m.cancelled).toBe(true);
    m.advance(10);
    expect(batches.reduce((s, b) => s + b.length, 0)).toBe(total);
  });

  it("does not call a sink whose previous batch is still pending, then catches up", async () => {
    const m = manual(Date.UTC(2024, 4, 1));
    const calls: number[] = [];
    const gate = Promise.withResolvers<void>();
    let first = true;
    const rt = startRealtime({
      seed: 2,
      rate: 500,
      bursts: false,
      clock: m.clock,
      schedule: m.schedule,
      sink: (b) => {
        calls.push(b.length);
        if (first) {
          first = false;
          return gate.promise;
        }
      },
    });
    m.advance(1);
    m.advance(5);
    expect(calls.length).toBe(1);
    gate.resolve();
    await gate.promise;
    await Promise.resolve();
    m.advance(1);
    expect(calls.length).toBe(2);
    // The second batch carries everything that came due while the sink was busy.
    expect(calls[0] + calls[1]).toBeGreaterThan(250);
    rt.stop();
  });

  it("reports sink errors without stopping and skips a backlog larger than maxLagMs", () => {
    const m = manual(Date.UTC(2024, 4, 1));
    const errors: unknown[] = [];
    const sizes: number[] = [];
    const rt = startRealtime({
      seed: 3,
      rate: 100,
      bursts: false,
      maxLagMs: 1_000,
      clock: m.clock,
      schedule: m.schedule,
      onError: (e) => errors.push(e),
      sink: (b) => {
        sizes.push(b.length);
        if (sizes.length === 1) throw new Error("boom");
      },
    });
    m.advance(2);
    expect(errors.length).toBe(1);
    expect(sizes.length).toBe(2);
    // Jump the clock an hour: the next batch holds about a tick's worth, not an hour's.
    m.jump(3_600_000);
    m.advance(1);
    expect(sizes.length).toBe(3);
    expect(sizes[2]).toBeLessThan(100);
    expect(rt.generator.now).toBe(m.now);
    rt.stop();
  });
});
