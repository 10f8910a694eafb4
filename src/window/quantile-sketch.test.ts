// Accuracy, merge and encoding tests for the quantile sketch; expected quantiles come from a
// sorted copy of the same values with the same rank rule, ceil(q * n), 1-based, min 1.

import { describe, expect, it } from "bun:test";
import { createQuantileSketch, decodeQuantileSketch, QUANTILE_ALPHA, type QuantileSketch } from "./quantile-sketch.ts";

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Log-normal page-load times via Box–Muller, median ~ 800 ms, capped at the 600 000 ms limit. */
function logNormal(n: number, seed: number): number[] {
  const r = prng(seed);
  const out: number[] = [];
  while (out.length < n) {
    const u1 = 1 - r(); // (0, 1]: log stays finite
    const u2 = r();
    const mag = Math.sqrt(-2 * Math.log(u1));
    for (const z of [mag * Math.cos(2 * Math.PI * u2), mag * Math.sin(2 * Math.PI * u2)]) {
      if (out.length < n) out.push(Math.min(600_000, Math.exp(Math.log(800) + 1.1 * z)));
    }
  }
  return out;
}

function uniform(n: number, seed: number, max: number): number[] {
  const r = prng(seed);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(r() * max);
  return out;
}

function exactQuantile(sorted: number[], q: number): number {
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1];
}

function sketchOf(values: number[]): QuantileSketch {
  const s = createQuantileSketch();
  for (const v of values) s.add(v);
  return s;
}

function relErr(got: number, want: number): number {
  return want === 0 ? Math.abs(got) : Math.abs(got - want) / want;
}

// Bucket-boundary rounding in Math.log may add a few ulps to alpha.
const TOLERANCE = QUANTILE_ALPHA * (1 + 1e-9);

describe("QuantileSketch", () => {
  const datasets: Array<[string, number[]]> = [
    ["log-normal", logNormal(100_000, 42)],
    ["uniform", uniform(100_000, 7, 600_000)],
  ];

  for (const [name, values] of datasets) {
    it(`answers p50/p95/p99 of 100 000 ${name} values within 2 % (and within alpha)`, () => {
      const s = sketchOf(values);
      const sorted = values.slice().sort((a, b) => a - b);
      let maxErr = 0;
      for (const q of [0.5, 0.95, 0.99]) {
        const err = relErr(s.quantile(q), exactQuantile(sorted, q));
        maxErr = Math.max(maxErr, err);
        expect(err).toBeLessThanOrEqual(0.02);
        expect(err).toBeLessThanOrEqual(TOLERANCE);
      }
      console.log(`${name}: p50/p95/p99 max relative error ${(maxErr * 100).toFixed(3)} %`);
      let plainSum = 0;
      for (const v of values) plainSum += v;
      expect(s.count).toBe(values.length);
      expect(s.sum).toBe(plainSum);
      expect(s.min).toBe(sorted[0]);
      expect(s.max).toBe(sorted[sorted.length - 1]);
    });

    it(`answers every percentile of ${name} values within alpha`, () => {
      const s = sketchOf(values);
      const sorted = values.slice().sort((a, b) => a - b);
      for (let k = 0; k <= 1000; k++) {
        const q = k / 1000;
        expect(relErr(s.quantile(q), exactQuantile(sorted, q))).toBeLessThanOrEqual(TOLERANCE);
      }
      expect(s.quantile(0)).toBe(sorted[0]);
      expect(s.quantile(1)).toBe(sorted[sorted.length - 1]);
    });
  }

  it("merges two sketches into the sketch of all values", () => {
    const a = logNormal(30_000, 1);
    const b = uniform(20_000, 2, 20_000).concat([0, 0, 0.0005]);
    const merged = sketchOf(a);
    const right = sketchOf(b);
    merged.merge(right);
    const all = sketchOf(a.concat(b));
    const sorted = a.concat(b).sort((x, y) => x - y);
    expect(merged.count).toBe(a.length + b.length);
    expect(merged.min).toBe(0);
    expect(merged.max).toBe(sorted[sorted.length - 1]);
    expect(merged.sum).toBeCloseTo(all.sum, 3);
    for (let k = 0; k <= 100; k++) {
      const q = k / 100;
      expect(merged.quantile(q)).toBe(all.quantile(q));
      expect(relErr(merged.quantile(q), exactQuantile(sorted, q))).toBeLessThanOrEqual(TOLERANCE);
    }
    expect(right.count).toBe(b.length); // the argument is left alone
  });

  it("merges into an empty sketch and from an empty sketch", () => {
    const values = uniform(1_000, 3, 5_000);
    const into = createQuantileSketch();
    into.merge(sketchOf(values));
    const from = sketchOf(values);
    from.merge(createQuantileSketch());
    const want = sketchOf(values);
    for (const s of [into, from]) {
      expect(s.count).toBe(1_000);
      expect(s.encode()).toEqual(want.encode());
    }
  });

  it("weights a value by its count like repeated adds", () => {
    const weighted = createQuantileSketch();
    const repeated = createQuantileSketch();
    for (const [v, c] of [
      [10, 5],
      [250, 1],
      [3000, 12],
    ] as const) {
      weighted.add(v, c);
      for (let i = 0; i < c; i++) repeated.add(v);
    }
    expect(weighted.count).toBe(18);
    expect(weighted.sum).toBe(10 * 5 + 250 + 3000 * 12);
    for (const q of [0, 0.2, 0.3, 0.34, 0.5, 1]) expect(weighted.quantile(q)).toBe(repeated.quantile(q));
  });

  it("keeps zero and sub-microsecond values in the zero bucket", () => {
    const s = createQuantileSketch();
    for (let i = 0; i < 60; i++) s.add(0);
    for (let i = 0; i < 40; i++) s.add(100);
    expect(s.quantile(0.5)).toBe(0);
    expect(s.quantile(0.6)).toBe(0);
    expect(relErr(s.quantile(0.61), 100)).toBeLessThanOrEqual(TOLERANCE);
    expect(s.min).toBe(0);
    const tiny = createQuantileSketch();
    tiny.add(0.0004);
    tiny.add(0.0002);
    expect(tiny.quantile(1)).toBe(0.0002); // the exact min, within 1e-3 absolute of 0.0004
    expect(tiny.count).toBe(2);
  });

  it("returns NaN for every quantile, min and max of an empty sketch", () => {
    const s = createQuantileSketch();
    expect(s.quantile(0.5)).toBeNaN();
    expect(s.min).toBeNaN();
    expect(s.max).toBeNaN();
    expect(s.count).toBe(0);
    expect(s.sum).toBe(0);
    expect(decodeQuantileSketch(s.encode()).quantile(0.99)).toBeNaN();
  });

  it("rejects negative, NaN and infinite values, bad counts and q outside [0, 1]", () => {
    const s = createQuantileSketch();
    expect(() => s.add(-1)).toThrow(RangeError);
    expect(() => s.add(NaN)).toThrow(RangeError);
    expect(() => s.add(Infinity)).toThrow(RangeError);
    expect(() => s.add(1, 0)).toThrow(RangeError);
    expect(() => s.add(1, 1.5)).toThrow(RangeError);
    expect(() => s.quantile(1.01)).toThrow(RangeError);
    expect(() => s.quantile(NaN)).toThrow(RangeError);
    expect(s.count).toBe(0);
  });

  it("round-trips through encode and decode", () => {
    for (const values of [[], [0], [5], logNormal(10_000, 9).concat([0, 0.0001, 600_000])]) {
      const s = sketchOf(values);
      const bytes = s.encode();
      const d = decodeQuantileSketch(bytes);
      expect(d.count).toBe(s.count);
      expect(d.sum).toBe(s.sum);
      expect(d.min).toEqual(s.min);
      expect(d.max).toEqual(s.max);
      for (let k = 0; k <= 100; k++) expect(d.quantile(k / 100)).toEqual(s.quantile(k / 100));
      expect(d.encode()).toEqual(bytes);
    }
  });

  it("encodes a pane with a few values in a few dozen bytes", () => {
    const s = sketchOf([120, 480, 2_300, 15_000]);
    expect(s.encode().length).toBeLessThanOrEqual(41 + 2 + 4 * 3);
  });

  it("rejects malformed encodings", () => {
    const bytes = sketchOf([1, 2, 3]).encode();
    expect(() => decodeQuantileSketch(new Uint8Array([]))).toThrow(RangeError);
    expect(() => decodeQuantileSketch(new Uint8Array([9]))).toThrow(RangeError);
    expect(() => decodeQuantileSketch(bytes.subarray(0, bytes.length - 1))).toThrow(RangeError);
    expect(() => decodeQuantileSketch(new Uint8Array([...bytes, 0]))).toThrow(RangeError);
  });

  it("clones independently of the original", () => {
    const s = sketchOf([1, 2, 3]);
    const c = s.clone();
    c.add(1_000);
    expect(s.count).toBe(3);
    expect(s.max).toBe(3);
    expect(c.count).toBe(4);
    expect(c.max).toBe(1_000);
  });
});
