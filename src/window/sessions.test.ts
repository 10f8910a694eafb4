// Session table against a plain Map model: random opens, touches and watermark closes on a tiny
// table, so rebuilds (growth and tombstone clean-up) renumber slots many times.

import { describe, expect, it } from "bun:test";
import { S_BITS, S_LAST, S_PARTITION, S_START, S_STRIDE, createSessionTable } from "./sessions.ts";

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

  it("drops the sessions of some partitions without reporting them closed, and keeps the rest exact", () => {
    const rand = rng(11);
    const table = createSessionTable(4);
    const model = new Map<number, ModelSession>();
    const t0 = 1_700_000_000_000;
    const key = (i: number) => (i * 2654435761 + 12345) % 2 ** 53;
    for (let i = 0; i < 3000; i++) {
      const k = key(i);
      const p = i % 5;
      const t = t0 + i * 100;
      const slot = table.open(k, p, t);
      table.rec[slot * S_STRIDE + S_BITS] = i % 16;
      model.set(k, { partition: p, start: t, last: t });
    }
    table.drainDirty();
    // some sessions go on (dirty), then the oldest close (closed, not drained yet)
    const dirtyModel = new Set<number>();
    for (let n = 0; n < 500; n++) {
      const k = key(Math.floor(rand() * 3000));
      const s = model.get(k)!;
      s.last += 1000 + Math.floor(rand() * 100_000);
      const slot = table.slotOf(k);
      table.rec[slot * S_STRIDE + S_LAST] = s.last;
      table.touched(slot);
      dirtyModel.add(k);
    }
    const wm = t0 + 120_000 + GAP;
    table.closeBefore(wm, GAP, () => {});
    const limit = Math.floor((wm - GAP) / 60_000);
    const closedModel = new Map<number, number>(); // key -> partition
    for (const [k, s] of model) {
      if (Math.floor(s.last / 60_000) < limit && s.last + GAP < wm) {
        model.delete(k);
        dirtyModel.delete(k);
        closedModel.set(k, s.partition);
      }
    }
    expect(closedModel.size).toBeGreaterThan(100);

    const gone = (p: number) => p === 1 || p === 3;
    const goneKeys = [...model].filter(([, s]) => gone(s.partition)).map(([k]) => k);
    const closedKept = [...closedModel].filter(([, p]) => !gone(p)).map(([k]) => k);
    expect(table.dropPartitions(gone)).toBe(goneKeys.length);
    for (const k of goneKeys) {
      model.delete(k);
      dirtyModel.delete(k);
    }
    expect(table.size).toBe(model.size);
    for (const k of goneKeys) expect(table.slotOf(k)).toBe(-1);
    expect(new Set(table.drainDirty().map((s) => table.keyOf(s)))).toEqual(dirtyModel);
    const closed = table.drainClosed();
    expect(closedKept.length).toBeGreaterThan(0);
    expect(closedKept.length).toBeLessThan(closedModel.size);
    expect(new Set(closed.map((c) => c.key))).toEqual(new Set(closedKept));
    expect(closed.every((c) => closedModel.get(c.key) === c.partition)).toBe(true);

    // dropped keys open again as new sessions, and rebuilds keep every row findable
    for (let i = 0; i < 6000; i++) {
      const k = i < goneKeys.length ? goneKeys[i] : key(10_000 + i);
      const t = t0 + 500_000 + i;
      table.open(k, 0, t);
      model.set(k, { partition: 0, start: t, last: t });
    }
    expect(table.size).toBe(model.size);
    const rec = table.rec;
    for (const [k, s] of model) {
      const slot = table.slotOf(k);
      expect(slot).toBeGreaterThanOrEqual(0);
      const o = slot * S_STRIDE;
      expect([rec[o + S_PARTITION], rec[o + S_START], rec[o + S_LAST]]).toEqual([s.partition, s.start, s.last]);
    }
  });
});
