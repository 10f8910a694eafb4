import { describe, expect, it } from "bun:test";
import { createPrng, hashSeed } from "./prng.ts";

describe("createPrng", () => {
  it("repeats its sequence for the same seed and label and changes with either", () => {
    const take = (seed: number, label?: string): number[] => {
      const r = createPrng(seed, label);
      return Array.from({ length: 20 }, () => r.next());
    };
    expect(take(42)).toEqual(take(42));
    expect(take(42)).not.toEqual(take(43));
    expect(take(42, "a")).not.toEqual(take(42, "b"));
    expect(hashSeed(2 ** 40)).not.toBe(hashSeed(0));
  });

  it("forks streams that do not depend on how much the parent has drawn", () => {
    const a = createPrng(1);
    const b = createPrng(1);
    for (let i = 0; i < 100; i++) b.next();
    expect(a.fork("x").next()).toBe(b.fork("x").next());
  });

  it("draws uniform values in [0,1) with the right mean and integers covering their range", () => {
    const r = createPrng(9);
    let sum = 0;
    let min = 1;
    let max = 0;
    const ints = new Array<number>(6).fill(0);
    const n = 200_000;
    for (let i = 0; i < n; i++) {
      const x = r.next();
      sum += x;
      min = Math.min(min, x);
      max = Math.max(max, x);
      ints[r.between(1, 6) - 1]++;
    }
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(0.005);
    for (const c of ints) expect(Math.abs(c / n - 1 / 6)).toBeLessThan(0.005);
  });

  it("draws normals, log-normals and exponentials with the requested centre and spread", () => {
    const r = createPrng(5);
    const n = 100_000;
    const normals: number[] = [];
    const logs: number[] = [];
    let expSum = 0;
    for (let i = 0; i < n; i++) {
      normals.push(r.normal());
      logs.push(r.logNormal(800, 0.6));
      expSum += r.exponential(250);
    }
    const mean = normals.reduce((s, x) => s + x, 0) / n;
    const sd = Math.sqrt(normals.reduce((s, x) => s + (x - mean) ** 2, 0) / n);
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(sd - 1)).toBeLessThan(0.02);
    logs.sort((a, b) => a - b);
    expect(Math.abs(logs[n >> 1] - 800)).toBeLessThan(20);
    expect(Math.abs(expSum / n - 250)).toBeLessThan(5);
  });
});
