import { describe, expect, it } from "bun:test";
import { createPrng } from "./prng.ts";
import { createZipf } from "./zipf.ts";

describe("createZipf", () => {
  it("samples ranks with frequencies matching 1/(k+1)^s computed by a plain loop", () => {
    const n = 1_000;
    const s = 1.1;
    const z = createZipf(n, s);
    let h = 0;
    for (let k = 1; k <= n; k++) h += 1 / Math.pow(k, s);
    const rng = createPrng(3);
    const counts = new Array<number>(n).fill(0);
    const draws = 300_000;
    for (let i = 0; i < draws; i++) counts[z.sample(rng)]++;
    for (const k of [0, 1, 2, 9, 99]) {
      const p = 1 / Math.pow(k + 1, s) / h;
      expect(Math.abs(z.probability(k) - p)).toBeLessThan(1e-12);
      expect(Math.abs(counts[k] / draws - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / draws) + 1e-4);
    }
    expect(counts.every((c, k) => k === 0 || c <= counts[0])).toBe(true);
  });

  it("is uniform with s = 0 and stays in range for a single rank", () => {
    const rng = createPrng(1);
    const z = createZipf(4, 0);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 40_000; i++) counts[z.sample(rng)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(400);
    const one = createZipf(1, 2);
    for (let i = 0; i < 100; i++) expect(one.sample(rng)).toBe(0);
  });

  it("rejects an empty range and a negative exponent", () => {
    expect(() => createZipf(0, 1)).toThrow(RangeError);
    expect(() => createZipf(10, -1)).toThrow(RangeError);
  });
});
