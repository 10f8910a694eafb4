// Tests of exact eventId dedupe: horizon by partition clock, restore to an offset after restart, chunk pruning, and the
// compact id memory (collisions, non-ASCII and long ids, segment recycling) against a plain Map written from the rule.

import { afterAll, describe, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import { heapStats } from "bun:jsc";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDeduper, createIdMemory } from "./dedupe.ts";
import { LIMITS } from "./event-types.ts";

const root = mkdtempSync(join(tmpdir(), "rtae-dedupe-"));
let dirCount = 0;
const freshDir = (): string => join(root, `d${dirCount++}`);
afterAll(() => rmSync(root, { recursive: true, force: true }));

const MIN = 60_000;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface LogRecord {
  offset: number;
  value: string;
}

/** A partition's log: mostly new ids, some resent ones, some records that fail validation (dead-lettered). */
function makeLog(partition: number, n: number, rnd: () => number, t0: number): LogRecord[] {
  const out: LogRecord[] = [];
  const ids: string[] = [];
  for (let o = 0; o < n; o++) {
    const r = rnd();
    if (r < 0.08) {
      out.push({ offset: o, value: "not json" });
      continue;
    }
    let id: string;
    if (r < 0.3 && ids.length > 0) id = ids[Math.floor(rnd() * ids.length)];
    else {
      id = `p${partition}-e${o}`;
      ids.push(id);
    }
    out.push({ offset: o, value: JSON.stringify({ eventId: id, time: t0 + Math.floor(rnd() * MIN) }) });
  }
  return out;
}

function extract(value: string): { eventId: string; time: number } | null {
  if (!value.startsWith("{")) return null;
  return JSON.parse(value) as { eventId: string; time: number };
}

/** Ids recorded (first occurrences of valid records) below `upto`: computed with a plain Set, not the deduper. */
function idsBefore(log: LogRecord[], upto: number): Set<string> {
  const seen = new Set<string>();
  for (const rec of log) {
    if (rec.offset >= upto) break;
    const ev = extract(rec.value);
    if (ev !== null) seen.add(ev.eventId);
  }
  return seen;
}

function countChunks(dir: string, partition: number): Array<{ first_offset: number; end_offset: number }> {
  const db = new Database(join(dir, "dedupe.db"), { readonly: true });
  try {
    return db
      .query<{ first_offset: number; end_offset: number }, [number]>(
        "SELECT first_offset, end_offset FROM chunks WHERE partition = ? ORDER BY first_offset",
      )
      .all(partition);
  } finally {
    db.close();
  }
}

/** The dedupe rule written plainly (id -> seen in a Map, expiry checked on read): the answer the compact memory must give. */
function referenceMemory(horizon: number): { check(id: string, t: number): boolean; size(): number; reRecorded: number } {
  const seenOf = new Map<string, number>();
  let clock = -Infinity;
  const ref = {
    reRecorded: 0,
    check(id: string, t: number): boolean {
      const s = seenOf.get(id);
      if (s !== undefined && s + horizon >= clock) return true;
      if (s !== undefined) ref.reRecorded++;
      if (t > clock) clock = t;
      seenOf.set(id, clock);
      return false;
    },
    size(): number {
      let n = 0;
      for (const s of seenOf.values()) if (s + horizon >= clock) n++;
      return n;
    },
  };
  return ref;
}

describe("dedupe", () => {
  it("drops duplicates within the horizon and passes distinct ids", () => {
    const d = createDeduper({ dir: freshDir(), horizonMs: 10 * MIN });
    const rnd = mulberry32(7);
    const first = new Set<string>();
    let dups = 0;
    for (let o = 0; o < 20_000; o++) {
      const id = `e${Math.floor(rnd() * 8_000)}`;
      const expectedDup = first.has(id);
      first.add(id);
      if (expectedDup) dups++;
      expect(d.check(0, id, o, 1_000_000 + Math.floor(rnd() * 5 * MIN))).toBe(expectedDup);
    }
    expect(dups).toBeGreaterThan(0);
    expect(d.size(0)).toBe(first.size);
    d.close();
  });

  it("keeps the same id in two partitions independent", () => {
    const d = createDeduper({ dir: freshDir(), horizonMs: 10 * MIN });
    expect(d.check(0, "same", 0, 1000)).toBe(false);
    expect(d.check(1, "same", 0, 1000)).toBe(false);
    expect(d.check(0, "same", 1, 1000)).toBe(true);
    expect(d.check(1, "same", 1, 1000)).toBe(true);
    expect(d.check(2, "same", 0, 1000)).toBe(false);
    expect([d.size(0), d.size(1), d.size(2), d.size()]).toEqual([1, 1, 1, 3]);
    d.close();
  });

  it("forgets an id only after its partition's clock passes the horizon", () => {
    const h = 1000;
    const d = createDeduper({ dir: freshDir(), horizonMs: h });
    expect(d.check(0, "a", 0, 0)).toBe(false);
    expect(d.check(0, "x1", 1, 1000)).toBe(false); // clock 1000 = 0 + h: not passed yet
    expect(d.check(0, "a", 2, 0)).toBe(true);
    // Another partition's clock does not age partition 0.
    expect(d.check(1, "far", 0, 1_000_000)).toBe(false);
    expect(d.check(0, "a", 3, 0)).toBe(true);
    // A duplicate carrying a later time does not move the clock, so "a" is still remembered.
    expect(d.check(0, "x1", 4, 5000)).toBe(true);
    expect(d.check(0, "a", 5, 0)).toBe(true);
    expect(d.check(0, "x2", 6, 1001)).toBe(false); // clock 1001 > 1000: "a" may go
    expect(d.size(0)).toBe(2);
    expect(d.check(0, "a", 7, 0)).toBe(false); // recorded again, with seen = clock 1001
    expect(d.check(0, "a", 8, 0)).toBe(true);
    // A late event is remembered from the clock at insert, not its own older time.
    expect(d.check(0, "late", 9, 100)).toBe(false);
    expect(d.check(0, "x3", 10, 2001)).toBe(false);
    expect(d.check(0, "late", 11, 100)).toBe(true); // seen 1001 + 1000 = 2001, not passed
    expect(d.check(0, "x4", 12, 2002)).toBe(false);
    expect(d.check(0, "late", 13, 100)).toBe(false);
    d.close();
  });

  it("expires ids in bulk as the clock moves, keeping only those inside the horizon", () => {
    const h = 10 * MIN;
    const d = createDeduper({ dir: freshDir(), horizonMs: h });
    const times: number[] = [];
    for (let i = 0; i < 50_000; i++) {
      const t = i * 100; // 10 events per second of event time
      times.push(t);
      d.check(3, `id${i}`, i, t);
    }
    const clock = times[times.length - 1];
    const live = times.filter((t) => t + h >= clock).length;
    expect(d.size(3)).toBe(live);
    expect(d.check(3, `id${times.length - live}`, 50_000, clock)).toBe(true);
    expect(d.check(3, `id${times.length - live - 1}`, 50_001, clock)).toBe(false);
    d.close();
  });

  it("restores exactly the ids below the restore offset after a restart", () => {
    const dir = freshDir();
    const P = 4;
    const N = 3000;
    const rnd = mulberry32(99);
    const logs = Array.from({ length: P }, (_, p) => makeLog(p, N, rnd, 1_700_000_000_000));
    const live = createDeduper({ dir, horizonMs: 10 * MIN });
    const liveDecisions: boolean[][] = Array.from({ length: P }, () => []);
    const feed = (d: typeof live, p: number, from: number, to: number, decisions?: boolean[]): void => {
      for (const rec of logs[p].slice(from, to)) {
        const ev = extract(rec.value);
        if (ev !== null) decisions?.push(d.check(p, ev.eventId, rec.offset, ev.time));
      }
    };
    for (let p = 0; p < P; p++) live.restore(p, 0, () => [], extract);
    // Partitions 0 and 1 are flushed twice, 2 once early, 3 never; then more records arrive that are not flushed.
    for (let p = 0; p < P; p++) feed(live, p, 0, 1000, liveDecisions[p]);
    for (const p of [0, 1, 2]) live.flush(p);
    for (let p = 0; p < P; p++) feed(live, p, 1000, 2000, liveDecisions[p]);
    for (const p of [0, 1]) live.flush(p);
    for (let p = 0; p < P; p++) feed(live, p, 2000, N, liveDecisions[p]);
    expect(live.neededFrom(0)).toBe(2000);
    expect(live.neededFrom(2)).toBe(1000);
    expect(live.neededFrom(3)).toBe(0);
    live.close();

    // Restore points: inside the flushed range, at its end, beyond it, and inside the first of two chunks.
    const upto = [1500, 2000, 2600, 400];
    const restored = createDeduper({ dir, horizonMs: 10 * MIN });
    const scans: Array<Array<[number, number]>> = Array.from({ length: P }, () => []);
    for (let p = 0; p < P; p++) {
      restored.restore(
        p,
        upto[p],
        (from, to) => {
          scans[p].push([from, to]);
          return logs[p].filter((r) => r.offset >= from && r.offset < to);
        },
        extract,
      );
    }
    // The log is re-read only past what the chunks cover.
    expect(scans).toEqual([[], [], [[1000, 2600]], [[0, 400]]]);
    for (let p = 0; p < P; p++) {
      const known = idsBefore(logs[p], upto[p]);
      expect(restored.size(p)).toBe(known.size);
      const all = idsBefore(logs[p], N);
      let later = 0;
      for (const id of known) expect(restored.check(p, id, N, 1_700_000_000_000)).toBe(true);
      for (const id of all) {
        if (known.has(id)) continue;
        later++;
        expect(restored.check(p, id, N, 1_700_000_000_000)).toBe(false);
      }
      expect(later).toBeGreaterThan(0);
    }
    restored.close();

    // Replaying from the restore point reproduces the live run's decisions, and a second restart stays exact.
    const again = createDeduper({ dir, horizonMs: 10 * MIN });
    for (let p = 0; p < P; p++) {
      again.restore(p, upto[p], (from, to) => logs[p].filter((r) => r.offset >= from && r.offset < to), extract);
      const decisions: boolean[] = [];
      feed(again, p, upto[p], N, decisions);
      const validBefore = logs[p].slice(0, upto[p]).filter((r) => extract(r.value) !== null).length;
      expect(decisions).toEqual(liveDecisions[p].slice(validBefore));
      again.flush(p);
      const lastValid = logs[p].findLast((r) => extract(r.value) !== null)?.offset ?? -1;
      expect(again.neededFrom(p)).toBe(lastValid + 1);
    }
    again.close();
    const final = createDeduper({ dir, horizonMs: 10 * MIN });
    for (let p = 0; p < P; p++) {
      const scanned: number[] = [];
      final.restore(
        p,
        N,
        (from, to) => {
          scanned.push(from);
          return logs[p].filter((r) => r.offset >= from && r.offset < to);
        },
        extract,
      );
      // Only a dead-lettered tail, if any, is re-read: every valid record is in the chunks.
      for (const from of scanned) expect(logs[p].slice(from).every((r) => extract(r.value) === null)).toBe(true);
      expect(final.size(p)).toBe(idsBefore(logs[p], N).size);
    }
    final.close();
  });

  it("drops ids on restore that had expired by the restore offset", () => {
    const dir = freshDir();
    const h = 1000;
    const live = createDeduper({ dir, horizonMs: h });
    live.restore(0, 0, () => [], extract);
    for (let o = 0; o < 10; o++) live.check(0, `old${o}`, o, 0);
    for (let o = 10; o < 20; o++) live.check(0, `new${o}`, o, 5000);
    live.flush(0);
    live.close();

    const later = createDeduper({ dir, horizonMs: h });
    later.restore(0, 20, () => [], extract);
    expect(later.size(0)).toBe(10);
    expect(later.check(0, "new15", 20, 5000)).toBe(true);
    expect(later.check(0, "old3", 21, 5000)).toBe(false);
    later.close();

    // As of offset 10 the clock was still 0, so the old ids were all alive then.
    const earlier = createDeduper({ dir, horizonMs: h });
    earlier.restore(0, 10, () => [], extract);
    expect(earlier.size(0)).toBe(10);
    expect(earlier.check(0, "old3", 10, 0)).toBe(true);
    expect(earlier.check(0, "new15", 11, 0)).toBe(false);
    earlier.close();
  });

  it("prunes chunks whose ids all expired before the restorable offset, and keeps the rest", () => {
    const dir = freshDir();
    const h = 1000;
    const d = createDeduper({ dir, horizonMs: h });
    d.restore(0, 0, () => [], extract);
    d.restore(1, 0, () => [], extract);
    // Chunk k holds 10 ids at event time k * 1000.
    for (let k = 0; k < 12; k++) {
      for (let i = 0; i < 10; i++) {
        d.check(0, `a${k}-${i}`, k * 10 + i, k * 1000);
        d.check(1, `b${k}-${i}`, k * 10 + i, k * 1000);
      }
      d.flush(0, (k + 1) * 10); // everything flushed is committed
      d.flush(1); // no committed offset given: a restore to 0 must stay possible
    }
    // Chunk j is expired once j * 1000 + h < 11 * 1000, i.e. j < 10.
    expect(countChunks(dir, 0)).toEqual([
      { first_offset: 100, end_offset: 110 },
      { first_offset: 110, end_offset: 120 },
    ]);
    expect(countChunks(dir, 1).length).toBe(12);
    // A committed offset inside the history prunes only against the clock known there (chunk 5, time 5000).
    d.flush(1, 60);
    expect(countChunks(dir, 1).map((c) => c.first_offset)).toEqual([40, 50, 60, 70, 80, 90, 100, 110]);
    d.close();

    // Restoring at the committed offset after pruning still gives the exact state there.
    const r = createDeduper({ dir, horizonMs: h });
    r.restore(1, 60, () => [], extract);
    const alive: string[] = [];
    for (let k = 0; k < 6; k++) for (let i = 0; i < 10; i++) if (k * 1000 + h >= 5000) alive.push(`b${k}-${i}`);
    expect(r.size(1)).toBe(alive.length);
    for (const id of alive) expect(r.check(1, id, 60, 5000)).toBe(true);
    r.close();
  });

  it("lets dedupers of different workers share one file, each owning its partitions", () => {
    const dir = freshDir();
    const a = createDeduper({ dir, horizonMs: 10 * MIN });
    const b = createDeduper({ dir, horizonMs: 10 * MIN });
    a.restore(0, 0, () => [], extract);
    b.restore(1, 0, () => [], extract);
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 20; i++) {
        a.check(0, `a${round}-${i}`, round * 20 + i, 1000);
        b.check(1, `b${round}-${i}`, round * 20 + i, 1000);
      }
      a.flush(0);
      b.flush(1);
    }
    a.close();
    b.close();
    const c = createDeduper({ dir, horizonMs: 10 * MIN });
    c.restore(0, 100, () => [], extract);
    c.restore(1, 60, () => [], extract);
    expect([c.size(0), c.size(1)]).toEqual([100, 60]);
    expect(c.check(1, "b2-19", 60, 1000)).toBe(true);
    expect(c.check(1, "b3-0", 61, 1000)).toBe(false);
    c.close();
  });


  it("rebuilds a partition's verdicts on another deduper by re-scanning from retainedFrom up to a later offset", () => {
    const h = 20_000;
    const p = 3;
    const N = 6000;
    const rnd = mulberry32(5);
    // ~200 ms of event time per record with up to 5 s of disorder: ids expire after about 100 records
    const log: LogRecord[] = [];
    const ids: string[] = [];
    for (let o = 0; o < N; o++) {
      const r = rnd();
      if (r < 0.05) {
        log.push({ offset: o, value: "not json" });
        continue;
      }
      let id: string;
      if (r < 0.25 && ids.length > 0) id = ids[Math.max(0, ids.length - 1 - Math.floor(rnd() * 150))]; // resent soon
      else if (r < 0.32 && ids.length > 0) id = ids[Math.floor(rnd() * ids.length)]; // resent any time later
      else {
        id = `e${o}`;
        ids.push(id);
      }
      log.push({ offset: o, value: JSON.stringify({ eventId: id, time: 1_700_000_000_000 + o * 200 - Math.floor(rnd() * 5000) }) });
    }
    const live = createDeduper({ dir: freshDir(), horizonMs: h });
    live.restore(p, 0, () => [], extract);
    const verdicts: Array<boolean | null> = [];
    const asked: Array<{ at: number; from: number }> = [];
    const EVERY = 250;
    for (let o = 0; o < N; o++) {
      const ev = extract(log[o].value);
      verdicts.push(ev === null ? null : live.check(p, ev.eventId, o, ev.time));
      if ((o + 1) % EVERY === 0) {
        // a checkpoint: the flush may prune up to the offset committed by the previous one
        live.flush(p, o + 1 - EVERY);
        asked.push({ at: o + 1, from: live.retainedFrom(p) });
      }
    }
    live.close();
    expect(verdicts.filter((v) => v === true).length).toBeGreaterThan(500);
    expect(asked.at(-1)!.from).toBeGreaterThan(N - 10 * EVERY); // chunks were pruned: the re-scan is short

    const rescan = (from: number, u: number) => {
      const d = createDeduper({ dir: freshDir(), horizonMs: h });
      for (let o = from; o < u; o++) {
        const ev = extract(log[o].value);
        if (ev !== null) d.check(p, ev.eventId, o, ev.time);
      }
      const got: Array<boolean | null> = [];
      for (let o = u; o < Math.min(N, u + 1500); o++) {
        const ev = extract(log[o].value);
        got.push(ev === null ? null : d.check(p, ev.eventId, o, ev.time));
      }
      d.close();
      return got;
    };
    let startedTooLate = 0;
    for (const { at, from } of asked.filter((_, i) => i % 3 === 1)) {
      expect(from).toBeLessThanOrEqual(at - EVERY);
      for (const u of [at - EVERY, at, at + 777]) {
        if (u >= N) continue;
        const want = verdicts.slice(u, Math.min(N, u + 1500));
        expect({ at, from, u, got: rescan(from, u) }).toEqual({ at, from, u, got: want });
        if (JSON.stringify(rescan(Math.max(from, u - 50), u)) !== JSON.stringify(want)) startedTooLate++;
      }
    }
    expect(startedTooLate).toBeGreaterThan(0); // the start matters: the last 50 records are not enough
  });

  it("forgets a partition's persisted chunks and leaves the other partitions alone", () => {
    const dir = freshDir();
    const t = 1_700_000_000_000;
    const d = createDeduper({ dir, horizonMs: 10 * MIN });
    for (const p of [0, 1]) {
      d.restore(p, 0, () => [], extract);
      for (let o = 0; o < 100; o++) d.check(p, `p${p}-${o}`, o, t + o);
      d.flush(p);
      for (let o = 100; o < 120; o++) d.check(p, `p${p}-${o}`, o, t + o);
    }
    expect(countChunks(dir, 1)).toEqual([{ first_offset: 0, end_offset: 100 }]);
    d.forget(1);
    expect(countChunks(dir, 1)).toEqual([]);
    expect(countChunks(dir, 0)).toEqual([{ first_offset: 0, end_offset: 100 }]);
    expect([d.size(0), d.size(1)]).toEqual([120, 0]);
    expect(d.check(1, "p1-5", 120, t)).toBe(false); // forgotten in memory too
    expect(d.check(0, "p0-5", 120, t)).toBe(true);
    d.flush(0);
    d.close();

    const again = createDeduper({ dir, horizonMs: 10 * MIN });
    const scans: Array<[number, number]> = [];
    again.restore(
      1,
      120,
      (from, to) => {
        scans.push([from, to]);
        return [];
      },
      extract,
    );
    expect(again.size(1)).toBe(0); // nothing of it was left to find
    expect(scans).toEqual([[0, 120]]); // its coverage is gone too: the log is re-read from the start
    again.restore(0, 121, () => [], extract);
    expect(again.size(0)).toBe(120);
    expect(again.check(0, "p0-119", 121, t)).toBe(true);
    again.close();
  });

  it("stays exact when all ids share one hash, or a few, in a tiny index and tiny segments", () => {
    for (const hashMask of [0, 3, 0xff, -1]) {
      const h = 50;
      const mem = createIdMemory(h, { minSlots: 2, segmentBytes: 64, hashMask });
      const ref = referenceMemory(h);
      const rnd = mulberry32(1000 + (hashMask & 0xffff));
      const n = hashMask === 0 ? 4000 : 30_000;
      const got: boolean[] = [];
      const want: boolean[] = [];
      const sizes: Array<[number, number]> = [];
      let t = 0;
      for (let i = 0; i < n; i++) {
        if ((i & 3) === 0) t++;
        // Mostly in order, some late events, and now and then a jump far past the horizon.
        const r = rnd();
        const time = r < 0.1 ? t - Math.floor(rnd() * 200) : r < 0.101 ? (t += 500) : t;
        const id = `k${Math.floor(rnd() * 400)}`;
        want.push(ref.check(id, time));
        got.push(mem.check(id, time));
        if (i % 997 === 0) sizes.push([mem.size(), ref.size()]);
      }
      expect(got).toEqual(want);
      for (const [a, b] of sizes) expect(a).toBe(b);
      expect(mem.size()).toBe(ref.size());
      expect(want.filter(Boolean).length).toBeGreaterThan(n / 10);
      expect(ref.reRecorded).toBeGreaterThan(n / 10);
    }
  });

  it("keeps exact horizons for fractional, huge and infinite event times", () => {
    const h = 2.5;
    const mem = createIdMemory(h, { segmentBytes: 128, minSlots: 64 });
    const ref = referenceMemory(h);
    const rnd = mulberry32(5);
    const got: boolean[] = [];
    const want: boolean[] = [];
    let maxBytes = 0;
    let t = 0.1;
    for (let i = 0; i < 20_000; i++) {
      const r = rnd();
      if (r < 0.6) t += 0.01; // not representable as an integer delta: goes to f64 segments
      else if (r < 0.602) t += 2 ** 33; // past a u32 delta from the segment base
      else if (r < 0.64) t = Math.floor(t) + 1;
      const time = i === 0 ? -Infinity : t;
      const id = `f${Math.floor(rnd() * 60)}`;
      want.push(ref.check(id, time));
      got.push(mem.check(id, time));
      if (i % 500 === 0) {
        expect(mem.size()).toBe(ref.size());
        maxBytes = Math.max(maxBytes, mem.bytes()); // swept: live entries only
      }
    }
    expect(got).toEqual(want);
    expect(mem.size()).toBe(ref.size());
    expect(want.filter(Boolean).length).toBeGreaterThan(1000);
    // About 60 live entries share f64 segments; one segment per fractional entry would need 60 and more.
    expect(maxBytes).toBeLessThanOrEqual(64 * 8 + 16 * 128);
  });

  it("tells apart non-ASCII ids, lone surrogates and UUID look-alikes, also after a restore", () => {
    const uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    const ids = [
      "é", "e\u0301", "中文", "中", "😀", "😀x", "\ud83d", "\ude00", "\ude00\ud83d", "\ud83d\ud83d", "a\ud800", "a\udbff",
      "a\udc00", "a\ufffd", "a\uffff", "\u0000", "\u0000\u0000", "\u007f", "\u0080", "\u07ff", "\u0800", "\u{10ffff}",
      uuid, uuid.toUpperCase(), uuid.slice(0, 9) + uuid.slice(9).toUpperCase(), "01234567-0123-0123-0123-012345678901",
      uuid.slice(0, 35) + "g", uuid.slice(0, 35) + "é", uuid.replace("-", "0").slice(0, 35) + "-", `${uuid}\u0000`,
      // A UUID and a 16-char string whose UTF-8 bytes equal the UUID's packed bytes: only the key header differs.
      "00112233-4455-6677-0011-223344556677",
      String.fromCharCode(0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77),
    ];
    expect(new Set(ids).size).toBe(ids.length);
    // Plain UTF-8 would merge these two (both become U+FFFD), so the test can catch a lossy encoding.
    expect(new TextEncoder().encode("a\ud800")).toEqual(new TextEncoder().encode("a\udbff"));

    const dir = freshDir();
    const d = createDeduper({ dir, horizonMs: 10 * MIN });
    d.restore(0, 0, () => [], extract);
    ids.forEach((id, o) => expect(d.check(0, id, o, 1000)).toBe(false));
    ids.forEach((id, o) => expect(d.check(0, id, ids.length + o, 1000)).toBe(true));
    expect(d.size(0)).toBe(ids.length);
    d.flush(0);
    d.close();

    const r = createDeduper({ dir, horizonMs: 10 * MIN });
    r.restore(0, 2 * ids.length, () => [], extract);
    expect(r.size(0)).toBe(ids.length);
    for (const id of ids) expect(r.check(0, id, 2 * ids.length, 1000)).toBe(true);
    for (const other of ["a\ud801", "\ud83e", uuid.slice(0, 35) + "1", "e"]) {
      expect(r.check(0, other, 2 * ids.length, 1000)).toBe(false);
    }
    r.close();
  });

  it("keeps ids at the 128-char limit exact, also when one id is larger than a segment", () => {
    const max = LIMITS.idMax;
    const ids: string[] = [];
    for (const unit of ["x", "é", "中", "😀"]) {
      const body = unit.repeat(Math.floor((max - 2) / unit.length));
      for (const tail of ["aa", "ab", "ba", "\ud800a"]) {
        const id = (body + tail).slice(0, max);
        ids.push(id.padEnd(max, "z"));
      }
      ids.push(body.slice(0, max - 1)); // one shorter
    }
    ids.push("x".repeat(max), "x".repeat(max - 1));
    const unique = [...new Set(ids)];
    expect(unique.length).toBe(ids.length);
    expect(ids.filter((id) => id.length === max).length).toBeGreaterThanOrEqual(16);
    for (const segmentBytes of [64, 1024, 65536]) {
      const h = 1; // with 20 checks per ms, about one id in seven expires before it comes again
      const mem = createIdMemory(h, { segmentBytes, minSlots: 4 });
      const ref = referenceMemory(h);
      const rnd = mulberry32(segmentBytes);
      const got: boolean[] = [];
      const want: boolean[] = [];
      for (let i = 0; i < 5000; i++) {
        const id = ids[Math.floor(rnd() * ids.length)];
        const t = Math.floor(i / 20);
        want.push(ref.check(id, t));
        got.push(mem.check(id, t));
      }
      expect(got).toEqual(want);
      expect(mem.size()).toBe(ref.size());
      expect(ref.reRecorded).toBeGreaterThan(100);
    }
  });

  it("keeps keys exact on both sides of each header length boundary", () => {
    const ids: string[] = [];
    for (const n of [1, 251, 252, 253, 65_535, 65_536, 70_000]) {
      const body = "k".repeat(n - 1);
      ids.push(`${body}a`, `${body}b`);
    }
    ids.push("中".repeat(84), "中".repeat(83) + "a"); // 252 bytes and 251 bytes
    for (const segmentBytes of [64, 65536]) {
      const mem = createIdMemory(0, { segmentBytes, minSlots: 2 });
      const ref = referenceMemory(0);
      const got: boolean[] = [];
      const want: boolean[] = [];
      // Each id comes twice while live, then once more after a new id moved the clock past the (zero) horizon.
      for (const [round, t] of [0, 0, 10].entries()) {
        if (round === 2) expect([ref.check("tick", t), mem.check("tick", t)]).toEqual([false, false]);
        for (const id of ids) {
          want.push(ref.check(id, t));
          got.push(mem.check(id, t));
        }
      }
      expect(got).toEqual(want);
      expect(want.filter(Boolean).length).toBe(ids.length);
      expect(mem.size()).toBe(ids.length + 1);
      // Expiry walks the arena entry by entry, reading each key's length from its header.
      mem.check("tock", 20);
      expect(mem.size()).toBe(1);
    }
  });

  it("recycles arena segments in a steady stream: 3 M ids keep size and bytes bounded", () => {
    const H = 10_000;
    const PER_MS = 10;
    const t0 = 1_700_000_000_000;
    const mem = createIdMemory(H);
    // UUID-shaped (so they pack) and cheap to make: the last group counts.
    const idOf = (i: number): string => `6ba7b810-9dad-41d1-80b4-${(0x800000000000 + i).toString(16)}`;
    const N = 3_000_000;
    const steadyFrom = 4 * H * PER_MS;
    let firstSteady = -1;
    let maxSteady = 0;
    let checkpoints = 0;
    let dupsWrong = 0;
    for (let i = 0; i < N; i++) {
      const t = t0 + Math.floor(i / PER_MS);
      if (mem.check(idOf(i), t)) dupsWrong++;
      // A resend of a recent id is a duplicate and changes nothing.
      if (i % 1000 === 999 && !mem.check(idOf(i - 5), t)) dupsWrong++;
      if ((i + 1) % 100_000 === 0) {
        // Ids at times >= now - H are alive: all of them, counted by arithmetic.
        const now = Math.floor(i / PER_MS);
        const live = i + 1 - Math.max(0, (now - H) * PER_MS);
        expect(mem.size()).toBe(live);
        const bytes = mem.bytes();
        expect(bytes).toBeGreaterThanOrEqual(live * 17); // a packed UUID cannot take less
        if (i + 1 >= steadyFrom) {
          if (firstSteady < 0) firstSteady = bytes;
          maxSteady = Math.max(maxSteady, bytes);
          checkpoints++;
        }
      }
    }
    expect(dupsWrong).toBe(0);
    expect(checkpoints).toBeGreaterThan(20);
    // Live ids hold at H * PER_MS; the footprint stays within a segment or two of where it settled.
    expect(maxSteady).toBeLessThanOrEqual(firstSteady + 2 * 65536);
    expect(maxSteady / (H * PER_MS)).toBeLessThan(64);
  }, 60_000);

  it("keeps a flushed, pruned deduper's footprint flat while partitions stream", () => {
    const dir = freshDir();
    const H = 2000;
    const d = createDeduper({ dir, horizonMs: H });
    const P = 2;
    for (let p = 0; p < P; p++) d.restore(p, 0, () => [], extract);
    const N = 200_000;
    const samples: number[] = [];
    for (let o = 0; o < N; o++) {
      for (let p = 0; p < P; p++) d.check(p, `p${p}-${crypto.randomUUID()}`, o, 1000 + Math.floor(o / 10));
      if ((o + 1) % 10_000 === 0) {
        for (let p = 0; p < P; p++) d.flush(p, o + 1);
        const now = Math.floor(o / 10);
        expect(d.size()).toBe(P * (o + 1 - Math.max(0, (now - H) * 10)));
        if (o + 1 >= 4 * H * 10) samples.push(d.memoryBytes?.() ?? Number.NaN);
      }
    }
    expect(samples.length).toBeGreaterThan(5);
    expect(Math.max(...samples)).toBeLessThanOrEqual(samples[0] + 4 * 65536);
    // Expired chunks are pruned: what is left covers about one horizon.
    expect(countChunks(dir, 0).length).toBeLessThanOrEqual(4);
    d.close();
  }, 30_000);

  it("prints the rate of 1 M checks and the memory per remembered id, next to a Map baseline", () => {
    const d = createDeduper({ dir: freshDir(), horizonMs: 10 * MIN });
    const N = 1_000_000;
    const ids = new Array<string>(N);
    for (let i = 0; i < N; i++) ids[i] = crypto.randomUUID();
    // Every 10th check resends an id of the same partition 4 checks back; 4 partitions; 500 s of event time in all.
    const idAt = (i: number): string => (i % 10 === 9 ? ids[i - 4] : ids[i]);
    const timeAt = (i: number): number => 1_700_000_000_000 + (i >> 1);
    Bun.gc(true);
    const heapBefore = heapStats().heapSize;
    let dups = 0;
    let t = performance.now();
    for (let i = 0; i < N; i++) if (d.check(i & 3, idAt(i), i >> 2, timeAt(i))) dups++;
    const ms = performance.now() - t;
    for (let p = 0; p < 4; p++) d.flush(p);
    Bun.gc(true);
    const heapPerId = (heapStats().heapSize - heapBefore) / d.size();
    const bytesPerId = (d.memoryBytes?.() ?? Number.NaN) / d.size();

    // The former layout, one Map<string, number> per partition with the same rule, on the same stream.
    const maps = [0, 1, 2, 3].map(() => new Map<string, number>());
    const clocks = [-Infinity, -Infinity, -Infinity, -Infinity];
    let mapDups = 0;
    t = performance.now();
    for (let i = 0; i < N; i++) {
      const m = maps[i & 3];
      const id = idAt(i);
      const seen = m.get(id);
      if (seen !== undefined && seen + 10 * MIN >= clocks[i & 3]) {
        mapDups++;
        continue;
      }
      clocks[i & 3] = Math.max(clocks[i & 3], timeAt(i));
      m.set(id, clocks[i & 3]);
    }
    const mapMs = performance.now() - t;
    const rate = (n: number, msTaken: number): string => Math.round((n / msTaken) * 1000).toLocaleString("en-US");
    console.log(
      `dedupe: ${rate(N, ms)} checks/s; ${bytesPerId.toFixed(1)} B/id held (memoryBytes), ` +
        `${heapPerId.toFixed(1)} B/id heap growth (${d.size().toLocaleString("en-US")} UUID ids). ` +
        `Map baseline: ${rate(N, mapMs)} checks/s, plus ~52 B per id string`,
    );
    expect(dups).toBe(N / 10);
    expect(mapDups).toBe(N / 10);
    expect(d.size()).toBe(N - N / 10);
    expect(bytesPerId).toBeLessThan(48);
    d.close();
  }, 30_000);
});
