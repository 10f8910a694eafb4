// Token bucket on an injected clock: allowances match a plain per-millisecond simulation, and the
// bucket map stays bounded under many distinct clients.

import { describe, expect, it } from "bun:test";
import { createRateLimiter } from "./rate-limit.ts";

describe("createRateLimiter", () => {
  it("allows exactly what a millisecond-by-millisecond bucket simulation allows", () => {
    let now = 0;
    const rate = 7;
    const burst = 5;
    const rl = createRateLimiter({ rate, burst, now: () => now });
    // independent model: integer micro-tokens refilled every millisecond
    const SCALE = 1000;
    let tokens = burst * SCALE;
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    let allowed = 0;
    for (let ms = 0; ms < 20_000; ms++) {
      now = ms;
      if (ms > 0) tokens = Math.min(burst * SCALE, tokens + rate); // rate tokens/s = rate micro-tokens/ms
      const tries = rand() < 0.02 ? 1 + Math.floor(rand() * 4) : 0;
      for (let i = 0; i < tries; i++) {
        const modelOk = tokens >= SCALE;
        if (modelOk) tokens -= SCALE;
        const wait = rl.take("k");
        expect(wait === 0).toBe(modelOk);
        if (!modelOk) {
          // the limiter refills continuously in floating point: its wait may round up 1 ms more
          const exact = Math.max(1, Math.ceil(((SCALE - tokens) * 1000) / (SCALE * rate)));
          expect(wait - exact).toBeGreaterThanOrEqual(0);
          expect(wait - exact).toBeLessThanOrEqual(1);
        }
        if (modelOk) allowed++;
      }
    }
    expect(allowed).toBeGreaterThan(100);
  });

  it("keeps separate buckets per key", () => {
    const rl = createRateLimiter({ rate: 1, burst: 2, now: () => 0 });
    expect([rl.take("a"), rl.take("a"), rl.take("a") > 0]).toEqual([0, 0, true]);
    expect(rl.take("b")).toBe(0);
  });

  it("stays within maxBuckets under many distinct clients and drops refilled buckets", () => {
    let now = 0;
    const rl = createRateLimiter({ rate: 10, burst: 10, maxBuckets: 1000, now: () => now });
    for (let i = 0; i < 50_000; i++) {
      rl.take(`ip:${i}`);
      expect(rl.size()).toBeLessThanOrEqual(1000);
    }
    now += 60_000; // every bucket is full again, hence equal to a fresh one
    rl.take("late");
    expect(rl.size()).toBe(1);
  });

  it("refuses a non-positive rate or a burst below one", () => {
    expect(() => createRateLimiter({ rate: 0, burst: 1 })).toThrow();
    expect(() => createRateLimiter({ rate: 1, burst: 0 })).toThrow();
  });
});
