// Session table against a plain Map model: random opens, touches and watermark closes on a tiny
// table, so rebuilds (growth and tombstone clean-up) renumber slots many times.

import { describe, expect, it } from "bun:test";
import { S_LAST, S_PARTITION, S_START, S_STRIDE, createSessionTable } from "./sessions.ts";

const GAP = 30 * 60_000;

interface ModelSession {
  partition: number;
  start: number;
  last: number;
}

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

describe("session table", () => {
  it("keeps every open session findable with its row through rebuilds, dirty drains and closes", () => {
    const rand = rng(7);
    const table = createSessionTable(4);
    const model = new Map<number, ModelSession>();
    const dirtyModel = new Set<number>();
    const closedModel = new Set<number>();
    const keys = Array.from({ length: 3000 }, (_, i) => (i * 2654435761) % 2 ** 53);
    let t = 1_700_000_000_000;
    let closedTotal = 0;
    for (let step = 0; step < 40_000; step++) {
      t += Math.floor(rand() * 400);
      const k = keys[Math.floor(rand() * keys.length)];
      let slot = table.slotOf(k);
      expect(slot >= 0).toBe(model.has(k));
      if (slot < 0) {
        const p = Math.floor(rand() * 8);
        slot = table.open(k, p, t);
        model.set(k, { partition: p, start: t, last: t });
        closedModel.delete(k);
      } else {
        const rec = table.rec;
        rec[slot * S_STRIDE + S_LAST] = t;
        table.touched(slot);
        model.get(k)!.last = t;
      }
      dirtyModel.add(k);
      if (step % 997 === 0) {
        const wm = t - 5_000;
        table.closeBefore(wm, GAP, () => {});
        // closing works by whole minutes of `last`: a session goes once its minute is past wm - gap
        const limit = Math.floor((wm - GAP) / 60_000);
        for (const [mk, s] of model) {
          if (Math.floor(s.last / 60_000) < limit && s.last + GAP < wm) {
            model.delete(mk);
            dirtyModel.delete(mk);
            closedModel.add(mk);
          }
        }
      }
      if (step % 1499 === 0) {
        const got = table.drainDirty().map((s) => table.keyOf(s));
        expect(new Set(got).size).toBe(got.length);
        expect(new Set(got)).toEqual(dirtyModel);
        dirtyModel.clear();
        const closed = table.drainClosed().map((c) => c.key);
        closedTotal += closed.length;
        expect(new Set(closed)).toEqual(closedModel);
        closedModel.clear();
      }
    }
    expect(closedTotal).toBeGreaterThan(100); // the run really closed (and so tombstoned) sessions
    expect(table.size).toBe(model.size);
    const seen = new Set<number>();
    table.forEach((slot) => seen.add(table.keyOf(slot)));
    expect(seen).toEqual(new Set(model.keys()));
    const rec = table.rec;
    for (const [k, s] of model) {
      const o = table.slotOf(k) * S_STRIDE;
      expect([rec[o + S_PARTITION], rec[o + S_START], rec[o + S_LAST]]).toEqual([s.partition, s.start, s.last]);
    }
  });
});
