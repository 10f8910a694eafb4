import { describe, expect, it } from "bun:test";
import { createGenerator } from "./generator.ts";
import { perturb } from "./perturb.ts";
import type { WireEvent } from "./wire.ts";

const START = Date.UTC(2024, 4, 1);
const stream = (n: number): WireEvent[] => createGenerator({ seed: 31, rate: 500, startTime: START }).next(n);

describe("perturb", () => {
  it("re-sends exactly the reported duplicates, each copy equal to and after its original", () => {
    const events = stream(20_000);
    const { events: out, duplicateIds, lateIds } = perturb(events, { seed: 1, duplicateRate: 0.05, disorderMs: 2_000 });
    expect(lateIds.size).toBe(0);
    const seen = new Map<string, number>();
    const firstAt = new Map<string, number>();
    out.forEach((e, i) => {
      seen.set(e.eventId, (seen.get(e.eventId) ?? 0) + 1);
      if (!firstAt.has(e.eventId)) firstAt.set(e.eventId, i);
    });
    const twice = [...seen].filter(([, c]) => c === 2).map(([id]) => id).sort();
    expect([...seen.values()].every((c) => c <= 2)).toBe(true);
    expect(twice).toEqual([...duplicateIds].sort());
    expect(out.length).toBe(events.length + duplicateIds.size);
    expect(Math.abs(duplicateIds.size / events.length - 0.05)).toBeLessThan(0.01);
    const byId = new Map(events.map((e) => [e.eventId, e]));
    out.forEach((e, i) => {
      expect(e).toEqual(byId.get(e.eventId)!);
      if (duplicateIds.has(e.eventId) && firstAt.get(e.eventId) !== i) expect(i).toBeGreaterThan(firstAt.get(e.eventId)!);
    });
  });

  it("never lets an on-time event arrive more than disorderMs behind the stream, yet does reorder", () => {
    const events = stream(20_000);
    const disorderMs = 1_500;
    const { events: out, lateIds } = perturb(events, { seed: 2, disorderMs, duplicateRate: 0.02, lateRate: 0.01, lateMs: 30_000 });
    let max = -Infinity;
    let worst = 0;
    let inversions = 0;
    for (const e of out) {
      if (!lateIds.has(e.eventId)) {
        worst = Math.max(worst, max - e.timestamp);
        if (e.timestamp < max) inversions++;
      }
      max = Math.max(max, e.timestamp);
    }
    expect(worst).toBeLessThanOrEqual(disorderMs);
    expect(worst).toBeGreaterThan(disorderMs / 2);
    expect(inversions).toBeGreaterThan(1_000);
  });

  it("delivers each late event once the stream is at least lateMs past it, and only just", () => {
    const events = stream(30_000);
    const lateMs = 10_000;
    const { events: out, lateIds } = perturb(events, { seed: 3, lateRate: 0.02, lateMs, disorderMs: 500 });
    expect(Math.abs(lateIds.size / events.length - 0.02)).toBeLessThan(0.005);
    expect(out.length).toBe(events.length);
    expect([...out.map((e) => e.eventId)].sort()).toEqual(events.map((e) => e.eventId).sort());
    let maxGap = 0;
    for (let i = 1; i < events.length; i++) maxGap = Math.max(maxGap, events[i].timestamp - events[i - 1].timestamp);
    let max = -Infinity;
    let checked = 0;
    for (const e of out) {
      if (lateIds.has(e.eventId)) {
        checked++;
        expect(max - e.timestamp).toBeGreaterThanOrEqual(lateMs);
        expect(max - e.timestamp).toBeLessThanOrEqual(lateMs + 500 + maxGap);
      }
      max = Math.max(max, e.timestamp);
    }
    expect(checked).toBe(lateIds.size);
  });

  it("is deterministic by seed and leaves the stream alone with no perturbation asked", () => {
    const events = stream(5_000);
    const a = perturb(events, { seed: 4, duplicateRate: 0.1, disorderMs: 1_000, lateRate: 0.05, lateMs: 5_000 });
    const b = perturb(events, { seed: 4, duplicateRate: 0.1, disorderMs: 1_000, lateRate: 0.05, lateMs: 5_000 });
    const c = perturb(events, { seed: 5, duplicateRate: 0.1, disorderMs: 1_000, lateRate: 0.05, lateMs: 5_000 });
    expect(b.events.map((e) => e.eventId)).toEqual(a.events.map((e) => e.eventId));
    expect([...b.duplicateIds]).toEqual([...a.duplicateIds]);
    expect(c.events.map((e) => e.eventId)).not.toEqual(a.events.map((e) => e.eventId));
    expect(perturb(events, { seed: 4 }).events).toEqual(events);
  });
});
