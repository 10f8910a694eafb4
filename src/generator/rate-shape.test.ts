import { describe, expect, it } from "bun:test";
import { createPrng } from "./prng.ts";
import { createRateShape, DAY_MS } from "./rate-shape.ts";

const DAY0 = Date.UTC(2024, 0, 1);

describe("createRateShape", () => {
  it("is flat at 1 with neither diurnal nor bursts", () => {
    const s = createRateShape({ rng: createPrng(1), start: DAY0, diurnal: false, bursts: false });
    for (let t = DAY0; t < DAY0 + DAY_MS; t += 3_600_000) expect(s.factor(t)).toBe(1);
  });

  it("peaks at 1.5 around 20:00 UTC and bottoms at 0.5 around 08:00", () => {
    const s = createRateShape({ rng: createPrng(1), start: DAY0, diurnal: true, bursts: false });
    const at = (h: number): number => s.factor(DAY0 + h * 3_600_000);
    expect(at(8)).toBeCloseTo(0.5, 6);
    expect(at(14)).toBeCloseTo(1, 6);
    expect(at(20)).toBeCloseTo(1.5, 6);
  });

  it("makes 10–30 s bursts at 3–5× and keeps the long-run mean at 1", () => {
    const s = createRateShape({ rng: createPrng(2), start: DAY0, diurnal: false, bursts: true });
    const step = 100;
    let sum = 0;
    let samples = 0;
    let base = Infinity;
    const bursts: { len: number; x: number }[] = [];
    let open: { from: number; x: number } | null = null;
    for (let t = DAY0; t < DAY0 + 7 * DAY_MS; t += step) {
      const f = s.factor(t);
      sum += f;
      samples++;
      base = Math.min(base, f);
      // Back-to-back bursts are told apart by their multiplier.
      if (open !== null && s.burst !== open.x) {
        bursts.push({ len: t - open.from, x: open.x });
        open = null;
      }
      if (s.burst > 1 && open === null) open = { from: t, x: s.burst };
    }
    expect(Math.abs(sum / samples - 1)).toBeLessThan(0.03);
    // About one burst per 5 min of quiet over a week.
    expect(bursts.length).toBeGreaterThan(1_700);
    expect(bursts.length).toBeLessThan(2_300);
    for (const b of bursts) {
      expect(b.len).toBeGreaterThanOrEqual(10_000 - step);
      expect(b.len).toBeLessThanOrEqual(30_000 + step);
      expect(b.x).toBeGreaterThanOrEqual(3);
      expect(b.x).toBeLessThanOrEqual(5);
    }
    expect(base).toBeLessThan(1);
  });
});
