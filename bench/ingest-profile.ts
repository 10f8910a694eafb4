// In-process cost per event of each ingest stage, on the same NDJSON bodies the HTTP bench sends:
// the door's parse, validate, partition + wire form and sqlite log append (main thread), and the
// worker's decode, validate and dedupe. Single-threaded timings; they say where HTTP ingest time goes.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDoor, openLogWriter, parseBody, partitionOf, toWire, validateEvent, type ShopEvent } from "../src/ingest/index.ts";
import { createDeduper } from "../src/ingest/dedupe.ts";

export interface StageCosts {
  events: number;
  /** microseconds per event */
  usPerEvent: Record<string, number>;
}

const MAX_AGE_MS = 400 * 24 * 3_600_000;

/** Times each stage over `bodies` (NDJSON, all valid) in a temporary data dir, removed afterwards. */
export async function profileIngest(bodies: Uint8Array[]): Promise<StageCosts> {
  const dir = mkdtempSync(join(tmpdir(), "rtae-bench-profile-"));
  try {
    const ctx = { now: Date.now(), maxAgeMs: MAX_AGE_MS, currency: "USD" };
    const P = 8;
    const us: Record<string, number> = {};
    const time = (name: string, fn: () => void) => {
      const t = performance.now();
      fn();
      us[name] = (us[name] ?? 0) + (performance.now() - t) * 1000;
    };

    // warm-up so the JIT has compiled every stage before it is timed
    for (const b of bodies.slice(0, 5)) {
      const p = parseBody(b, "application/x-ndjson", { maxEvents: 100_000 });
      if (p.ok) for (const it of p.items) validateEvent(it.value, ctx);
    }

    let events = 0;
    const parsed: unknown[][] = [];
    time("door: UTF-8 decode + split + JSON.parse (parseBody)", () => {
      for (const b of bodies) {
        const p = parseBody(b, "application/x-ndjson", { maxEvents: 100_000 });
        if (!p.ok) throw new Error(`profile body refused: ${p.message}`);
        parsed.push(p.items.map((i) => i.value));
        events += p.items.length;
      }
    });
    const valid: ShopEvent[][] = [];
    time("door: validateEvent", () => {
      for (const items of parsed) {
        const out: ShopEvent[] = [];
        for (const v of items) {
          const r = validateEvent(v, ctx);
          if (r.ok) out.push(r.event);
        }
        valid.push(out);
      }
    });
    const grouped: Array<{ byPartition: string[][]; maxTime: number[] }> = [];
    time("door: partitionOf + toWire", () => {
      for (const evs of valid) {
        const byPartition: string[][] = Array.from({ length: P }, () => []);
        const maxTime = new Array<number>(P).fill(0);
        for (const e of evs) {
          const p = partitionOf(e.sessionId ?? e.productId ?? e.eventId, P);
          byPartition[p].push(toWire(e));
          if (e.time > maxTime[p]) maxTime[p] = e.time;
        }
        grouped.push({ byPartition, maxTime });
      }
    });
    const writer = openLogWriter(join(dir, "log-a"), P);
    time("door: sqlite log append (1 txn per batch)", () => {
      for (const g of grouped) writer.append(g.byPartition, g.maxTime);
    });
    writer.close();

    // the whole door as the server runs it, on a fresh log
    const writer2 = openLogWriter(join(dir, "log-b"), P);
    const door = createDoor({
      sink: { partitions: P, append: (b, m) => void writer2.append(b, m) },
      context: () => ctx,
      maxEvents: 100_000,
    });
    const t = performance.now();
    for (const b of bodies) await door.ingest(b, "application/x-ndjson");
    us["door.ingest total"] = (performance.now() - t) * 1000;
    writer2.close();

    // worker side: each log line is parsed and validated again, then deduped
    const lines = grouped.flatMap((g) => g.byPartition.flatMap((recs, p) => recs.map((line) => ({ p, line }))));
    const reparsed: ShopEvent[] = [];
    time("worker: JSON.parse + validateEvent", () => {
      for (const { line } of lines) {
        const r = validateEvent(JSON.parse(line), ctx);
        if (r.ok) reparsed.push(r.event);
      }
    });
    const dedupe = createDeduper({ dir: join(dir, "dedupe"), horizonMs: 600_000 });
    const offsets = new Array<number>(P).fill(0);
    time("worker: dedupe.check", () => {
      for (let i = 0; i < reparsed.length; i++) {
        const p = lines[i].p;
        dedupe.check(p, reparsed[i].eventId, offsets[p]++, reparsed[i].time);
      }
    });
    time("worker: dedupe.flush (sqlite)", () => {
      for (let p = 0; p < P; p++) dedupe.flush(p);
    });
    time("worker: murmur32v3 x4 (user/session hashes)", () => {
      let x = 0;
      for (const e of reparsed) {
        const u = e.userId ?? "";
        const s = e.sessionId ?? "";
        x ^= Bun.hash.murmur32v3(u, 1) ^ Bun.hash.murmur32v3(u, 2) ^ Bun.hash.murmur32v3(s, 1) ^ Bun.hash.murmur32v3(s, 2);
      }
      if (x === 0.5) console.log(x);
    });
    dedupe.close();

    const usPerEvent: Record<string, number> = {};
    for (const [k, v] of Object.entries(us)) usPerEvent[k] = Math.round((v / events) * 100) / 100;
    return { events, usPerEvent };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
