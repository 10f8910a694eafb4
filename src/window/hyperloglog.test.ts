// Accuracy, merge, representation and encoding tests for the HyperLogLog sketch; expected
// registers come from a BigInt reimplementation of the p = 14 rank rule, never from the sketch.

import { describe, expect, it } from "bun:test";
import {
  createHyperLogLog,
  decodeHyperLogLog,
  HLL_REGISTERS,
  HLL_SEED_HI,
  HLL_SEED_LO,
  type HyperLogLog,
} from "./hyperloglog.ts";

const murmur = Bun.hash.murmur32v3;
const SEED_PAIRS: Array<[number, number]> = [
  [HLL_SEED_LO, HLL_SEED_HI],
  [1, 2],
  [0xdeadbeef, 0x0badf00d],
  [20240601, 777],
];

function addString(h: HyperLogLog, s: string, seeds: [number, number] = [HLL_SEED_LO, HLL_SEED_HI]): void {
  h.add(murmur(s, seeds[0]), murmur(s, seeds[1]));
}

function relErr(estimate: number, truth: number): number {
  return Math.abs(estimate - truth) / truth;
}

/** Register index and rank of a 64-bit hash, computed on BigInts from the definition. */
function reference(lo: number, hi: number): { index: number; rho: number } {
  const v = (BigInt(hi) << 32n) | BigInt(lo);
  const index = Number(v >> 50n);
  const w = v & ((1n << 50n) - 1n);
  const rho = w === 0n ? 51 : 50 - w.toString(2).length + 1;
  return { index, rho };
}

function referenceRegisters(keys: string[]): Uint8Array {
  const r = new Uint8Array(HLL_REGISTERS);
  for (const k of keys) {
    const { index, rho } = reference(murmur(k, HLL_SEED_LO), murmur(k, HLL_SEED_HI));
    if (rho > r[index]) r[index] = rho;
  }
  return r;
}

function keys(prefix: string, from: number, to: number): string[] {
  const out: string[] = [];
  for (let i = from; i < to; i++) out.push(`${prefix}-${i}`);
  return out;
}

function sketchOf(ks: string[]): HyperLogLog {
  const h = createHyperLogLog();
  for (const k of ks) addString(h, k);
  return h;
}

describe("HyperLogLog", () => {
  it("estimates 0 when empty and reports itself empty", () => {
    const h = createHyperLogLog();
    expect(h.estimate()).toBe(0);
    expect(h.isEmpty()).toBe(true);
    expect(h.mode).toBe("sparse");
    expect(decodeHyperLogLog(h.encode()).estimate()).toBe(0);
  });

  it("ranks the 50 bits below the register index, with 51 for all zeros", () => {
    const cases: Array<[number, number]> = [
      [0, 0],
      [1, 0],
      [0x80000000, 0],
      [0, 0xffffffff],
      [0, (5 << 18) | 1],
      [123, ((16383 << 18) | 0x20000) >>> 0],
      [0xffffffff, 7 << 18],
    ];
    for (const [lo, hi] of cases) {
      const h = createHyperLogLog();
      h.add(lo, hi);
      const want = new Uint8Array(HLL_REGISTERS);
      const { index, rho } = reference(lo, hi);
      want[index] = rho;
      expect(h.registers()).toEqual(want);
    }
    expect(reference(0, 0).rho).toBe(51);
  });

  it("estimates 100 to 1 000 000 distinct strings within 2 % for several seed pairs", () => {
    const checkpoints = [100, 1_000, 10_000, 100_000, 1_000_000];
    let maxErr = 0;
    const report: string[] = [];
    for (const seeds of SEED_PAIRS) {
      const h = createHyperLogLog();
      let n = 0;
      for (const target of checkpoints) {
        for (; n < target; n++) addString(h, `user-${n}`, seeds);
        const err = relErr(h.estimate(), target);
        maxErr = Math.max(maxErr, err);
        report.push(`${target}:${(err * 100).toFixed(3)}%`);
        expect(err).toBeLessThanOrEqual(0.02);
      }
    }
    console.log(`hll max relative error ${(maxErr * 100).toFixed(3)} % over ${report.join(" ")}`);
  });

  it("counts small sets almost exactly while sparse", () => {
    for (const n of [1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 700]) {
      for (const seeds of SEED_PAIRS) {
        const h = createHyperLogLog();
        for (let i = 0; i < n; i++) addString(h, `s${n}-${i}`, seeds);
        expect(h.mode).toBe("sparse");
        expect(relErr(h.estimate(), n)).toBeLessThanOrEqual(0.02);
        expect(Math.round(h.estimate())).toBe(n);
      }
    }
  });

  it("ignores duplicates in sparse and dense mode", () => {
    for (const n of [300, 50_000]) {
      const ks = keys("dup", 0, n);
      const h = sketchOf(ks);
      const before = h.estimate();
      const regs = h.registers();
      for (let r = 0; r < 3; r++) for (let i = ks.length - 1; i >= 0; i--) addString(h, ks[i]);
      expect(h.estimate()).toBe(before);
      expect(h.registers()).toEqual(regs);
    }
  });

  it("keeps every register when the sparse table turns dense", () => {
    const ks = keys("conv", 0, 3_000);
    const h = createHyperLogLog();
    let switchedAt = -1;
    for (let i = 0; i < ks.length; i++) {
      addString(h, ks[i]);
      if (h.mode === "sparse") expect(h.size).toBeLessThanOrEqual(HLL_REGISTERS / 4 + 64);
      else if (switchedAt < 0) {
        switchedAt = i + 1;
        expect(h.registers()).toEqual(referenceRegisters(ks.slice(0, i + 1)));
      }
      if (i === 99) expect(h.registers()).toEqual(referenceRegisters(ks.slice(0, 100)));
    }
    expect(switchedAt).toBeGreaterThan(500);
    expect(switchedAt).toBeLessThan(1_000);
    expect(h.registers()).toEqual(referenceRegisters(ks));
    expect(h.size).toBeGreaterThanOrEqual(HLL_REGISTERS);
  });

  it("merges overlapping sets into the union, register for register, in every mode pairing", () => {
    const pairs: Array<[number, number, number, number]> = [
      [0, 300, 200, 500], // sparse + sparse, stays sparse
      [0, 600, 300, 900], // sparse + sparse, turns dense during the merge
      [0, 400, 100, 40_000], // sparse + dense
      [0, 40_000, 39_800, 40_100], // dense + sparse
      [0, 60_000, 40_000, 100_000], // dense + dense
    ];
    for (const [a0, a1, b0, b1] of pairs) {
      const a = sketchOf(keys("u", a0, a1));
      const b = sketchOf(keys("u", b0, b1));
      const union = keys("u", Math.min(a0, b0), Math.max(a1, b1));
      const bBefore = b.registers();
      a.merge(b);
      expect(b.registers()).toEqual(bBefore);
      expect(a.registers()).toEqual(referenceRegisters(union));
      expect(a.registers()).toEqual(sketchOf(union).registers());
      expect(relErr(a.estimate(), union.length)).toBeLessThanOrEqual(0.02);
    }
  });

  it("merges a sketch with itself without changing it", () => {
    for (const n of [100, 20_000]) {
      const h = sketchOf(keys("self", 0, n));
      const regs = h.registers();
      h.merge(h);
      expect(h.registers()).toEqual(regs);
    }
  });

  it("clones independently of the original", () => {
    for (const n of [50, 5_000]) {
      const h = sketchOf(keys("c", 0, n));
      const c = h.clone();
      expect(c.registers()).toEqual(h.registers());
      expect(c.estimate()).toBe(h.estimate());
      for (let i = 0; i < 2_000; i++) addString(c, `other-${i}`);
      expect(h.registers()).toEqual(referenceRegisters(keys("c", 0, n)));
    }
  });

  it("round-trips sparse and dense sketches through encode and decode", () => {
    for (const n of [0, 1, 37, 700, 1_000, 200_000]) {
      const h = sketchOf(keys("e", 0, n));
      const bytes = h.encode();
      const d = decodeHyperLogLog(bytes);
      expect(d.mode).toBe(h.mode);
      expect(d.registers()).toEqual(h.registers());
      expect(d.estimate()).toBe(h.estimate());
      expect(d.isEmpty()).toBe(n === 0);
      expect(d.encode()).toEqual(bytes);
      if (h.mode === "dense") expect(bytes.length).toBe(2 + (HLL_REGISTERS * 3) / 4);
      else expect(bytes.length).toBeLessThanOrEqual(2 + 2 + 5 * n);
    }
  });

  it("rejects malformed encodings", () => {
    const sparse = sketchOf(keys("m", 0, 10)).encode();
    const dense = sketchOf(keys("m", 0, 5_000)).encode();
    expect(() => decodeHyperLogLog(new Uint8Array([]))).toThrow(RangeError);
    expect(() => decodeHyperLogLog(new Uint8Array([9, 0, 0]))).toThrow(RangeError);
    expect(() => decodeHyperLogLog(new Uint8Array([1, 7, 0]))).toThrow(RangeError);
    expect(() => decodeHyperLogLog(sparse.subarray(0, sparse.length - 1))).toThrow(RangeError);
    expect(() => decodeHyperLogLog(dense.subarray(0, dense.length - 1))).toThrow(RangeError);
    const bad = dense.slice();
    bad[2] = 63; // register 0 = 63 > 51
    expect(() => decodeHyperLogLog(bad)).toThrow(RangeError);
  });
});
