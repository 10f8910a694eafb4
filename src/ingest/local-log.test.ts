// Tests of the embedded partitioned log: round trips, offsets across reopen, truncation, cross-thread reads, kill -9.

import { afterAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalLogError, openLogReader, openLogWriter, partitionOf, type LocalLogReader } from "./local-log.ts";
import type { LogReaderReply, LogReaderRequest } from "../../test/fixtures/log-reader.worker.ts";

const root = mkdtempSync(join(tmpdir(), "rtae-local-log-"));
let dirCount = 0;
const freshDir = (): string => join(root, `d${dirCount++}`);
afterAll(() => rmSync(root, { recursive: true, force: true }));

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Splits the reader's slices into (offset, value) pairs: the caller's side of the read contract. */
function readRecords(reader: LocalLogReader, partition: number, from: number, max: number): Array<{ offset: number; value: string }> {
  const out: Array<{ offset: number; value: string }> = [];
  for (const seg of reader.read(partition, from, max)) {
    const lines = seg.payload.split("\n");
    for (let i = seg.skip; i < seg.skip + seg.count; i++) out.push({ offset: seg.baseOffset + i, value: lines[i] });
  }
  return out;
}

function readAll(reader: LocalLogReader, partition: number, from = 0): string[] {
  return readRecords(reader, partition, from, Number.MAX_SAFE_INTEGER).map((r) => r.value);
}

describe("local log", () => {
  it("returns every appended record in order across many appends and partitions", () => {
    const dir = freshDir();
    const P = 5;
    const log = openLogWriter(dir, P);
    const reader = openLogReader(dir);
    const rnd = mulberry32(42);
    const expected: string[][] = Array.from({ length: P }, () => []);
    for (let a = 0; a < 300; a++) {
      const groups: string[][] = [];
      for (let p = 0; p < P; p++) {
        const n = rnd() < 0.3 ? 0 : Math.floor(rnd() * 40);
        const g: string[] = [];
        for (let i = 0; i < n; i++) g.push(JSON.stringify({ a, p, i, s: "é\u2028\"\\" + "z".repeat(Math.floor(rnd() * 50)) }));
        groups.push(g);
      }
      const results = log.append(groups);
      for (const r of results) {
        expect(r.baseOffset).toBe(expected[r.partition].length);
        expect(r.count).toBe(groups[r.partition].length);
      }
      expect(results.map((r) => r.partition)).toEqual(groups.flatMap((g, p) => (g.length > 0 ? [p] : [])));
      for (let p = 0; p < P; p++) expected[p].push(...groups[p]);
    }
    for (let p = 0; p < P; p++) {
      expect(log.endOffset(p)).toBe(expected[p].length);
      expect(reader.endOffset(p)).toBe(expected[p].length);
      expect(reader.startOffset(p)).toBe(0);
      expect(readAll(reader, p)).toEqual(expected[p]);
    }
    reader.close();
    log.close();
  });

  it("reads from the middle of a segment and stops exactly at maxRecords", () => {
    const dir = freshDir();
    const log = openLogWriter(dir, 1);
    const expected: string[] = [];
    for (const size of [5, 1, 7, 3, 9]) {
      const g = Array.from({ length: size }, (_, i) => `r${expected.length + i}`);
      log.append([g]);
      expected.push(...g);
    }
    const reader = openLogReader(dir);
    const middle = reader.read(0, 8, 3);
    expect(middle).toEqual([{ baseOffset: 6, payload: expected.slice(6, 13).join("\n"), skip: 2, count: 3 }]);
    for (let from = 0; from <= expected.length + 2; from++) {
      for (let max = 0; max <= 12; max++) {
        const got = readRecords(reader, 0, from, max);
        const want = expected.slice(from, from + max).map((value, i) => ({ offset: from + i, value }));
        expect(got).toEqual(want);
      }
    }
    reader.close();
    log.close();
  });

  it("keeps offsets across reopen and continues them", () => {
    const dir = freshDir();
    let log = openLogWriter(dir, 3);
    log.append([["a", "b"], [], ["c"]]);
    log.append([["d"], ["e", "f", "g"], []]);
    log.close();
    log = openLogWriter(dir, 3);
    expect([0, 1, 2].map((p) => log.endOffset(p))).toEqual([3, 3, 1]);
    expect(log.append([["h"], [], ["i", "j"]])).toEqual([
      { partition: 0, baseOffset: 3, count: 1 },
      { partition: 2, baseOffset: 1, count: 2 },
    ]);
    const reader = openLogReader(dir);
    expect(readAll(reader, 0)).toEqual(["a", "b", "d", "h"]);
    expect(readAll(reader, 1)).toEqual(["e", "f", "g"]);
    expect(readAll(reader, 2)).toEqual(["c", "i", "j"]);
    reader.close();
    log.close();
  });

  it("truncates only segments that lie wholly below the offset, and remembers offsets when all are gone", () => {
    const dir = freshDir();
    let log = openLogWriter(dir, 2);
    const sizes = [3, 4, 5]; // segments 0..2, 3..6, 7..11
    let n = 0;
    for (const s of sizes) {
      log.append([Array.from({ length: s }, () => `v${n++}`), ["other"]]);
    }
    expect(log.truncateBefore(0, 5)).toBe(3);
    const reader = openLogReader(dir);
    expect(reader.startOffset(0)).toBe(3);
    expect(reader.startOffset(1)).toBe(0);
    expect(readAll(reader, 0, 3)).toEqual(["v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11"]);
    expect(() => reader.read(0, 2, 10)).toThrow(LocalLogError);
    expect(log.truncateBefore(0, 6)).toBe(0);
    expect(log.truncateBefore(0, 7)).toBe(4);
    expect(log.truncateBefore(0, 100)).toBe(5);
    expect(reader.startOffset(0)).toBe(12);
    expect(reader.endOffset(0)).toBe(12);
    expect(reader.read(0, 12, 10)).toEqual([]);
    expect(readAll(reader, 1)).toEqual(["other", "other", "other"]);
    log.close();
    log = openLogWriter(dir, 2);
    expect(log.endOffset(0)).toBe(12);
    expect(log.append([["after"]])).toEqual([{ partition: 0, baseOffset: 12, count: 1 }]);
    expect(readAll(reader, 0, 12)).toEqual(["after"]);
    reader.close();
    log.close();
  });

  it("lets a reader in another Worker see records as soon as the writer commits them", async () => {
    const dir = freshDir();
    const log = openLogWriter(dir, 2);
    log.append([["w0", "w1"], ["x"]]);
    const worker = new Worker(new URL("../../test/fixtures/log-reader.worker.ts", import.meta.url).href);
    const ask = (req: LogReaderRequest): Promise<LogReaderReply> => {
      const { promise, resolve } = Promise.withResolvers<LogReaderReply>();
      worker.addEventListener("message", (ev: MessageEvent<LogReaderReply>) => resolve(ev.data), { once: true });
      worker.postMessage(req);
      return promise;
    };
    try {
      const first = await ask({ kind: "read", dir, partition: 0, from: 0, max: 100 });
      expect(first).toEqual({ kind: "records", endOffset: 2, records: [{ offset: 0, value: "w0" }, { offset: 1, value: "w1" }] });
      log.append([["w2", "w3", "w4"], []]);
      const second = await ask({ kind: "read", dir, partition: 0, from: 1, max: 3 });
      expect(second).toEqual({
        kind: "records",
        endOffset: 5,
        records: [1, 2, 3].map((o) => ({ offset: o, value: `w${o}` })),
      });
      await ask({ kind: "close" });
    } finally {
      worker.terminate();
      log.close();
    }
  });

  it("lets a second connection in the same thread see committed records", () => {
    const dir = freshDir();
    const log = openLogWriter(dir, 1);
    const reader = openLogReader(dir);
    expect(reader.endOffset(0)).toBe(0);
    for (let i = 0; i < 10; i++) {
      log.append([[`a${i}`]]);
      expect(reader.endOffset(0)).toBe(i + 1);
      expect(readRecords(reader, 0, i, 5)).toEqual([{ offset: i, value: `a${i}` }]);
    }
    reader.close();
    log.close();
  });

  it("keeps every acknowledged record, contiguous, after the writer process is killed with SIGKILL", async () => {
    const dir = freshDir();
    const P = 4;
    const acked: Array<{ partition: number; baseOffset: number; count: number }> = [];
    const script = new URL("../../test/fixtures/log-appender.ts", import.meta.url).pathname;
    // Two crash rounds: the second child reopens a log whose writer was killed and must continue its offsets.
    for (let round = 0; round < 2; round++) {
      const child = Bun.spawn([process.execPath, script, dir, String(P)], { stdout: "pipe", stderr: "inherit" });
      const decoder = new TextDecoder();
      let buffered = "";
      let lines = 0;
      const stdout = child.stdout.getReader();
      for (;;) {
        const { value, done } = await stdout.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          acked.push(...(JSON.parse(buffered.slice(0, nl)) as typeof acked));
          buffered = buffered.slice(nl + 1);
          lines++;
        }
        if (lines >= 300) break;
      }
      // Killed while it keeps appending: the pipe still has room, so the child is not parked on a full stdout.
      child.kill("SIGKILL");
      stdout.releaseLock();
      expect(await child.exited).not.toBe(0);
      expect(child.signalCode).toBe("SIGKILL");
    }

    const log = openLogWriter(dir, P);
    const reader = openLogReader(dir);
    const ackedEnd = new Array<number>(P).fill(0);
    for (const a of acked) ackedEnd[a.partition] = Math.max(ackedEnd[a.partition], a.baseOffset + a.count);
    for (let p = 0; p < P; p++) {
      expect(ackedEnd[p]).toBeGreaterThan(0);
      expect(log.endOffset(p)).toBeGreaterThanOrEqual(ackedEnd[p]);
      const records = readRecords(reader, p, 0, Number.MAX_SAFE_INTEGER);
      expect(records.length).toBe(log.endOffset(p));
      // Every stored record sits at the offset it was written for: contiguous, no gap, no duplicate.
      for (const r of records) expect(JSON.parse(r.value)).toMatchObject({ p, o: r.offset });
    }
    // And each acknowledged range is there, record for record.
    for (const a of acked) {
      const got = readRecords(reader, a.partition, a.baseOffset, a.count).map((r) => JSON.parse(r.value).o as number);
      expect(got).toEqual(Array.from({ length: a.count }, (_, i) => a.baseOffset + i));
    }
    reader.close();
    log.close();
  }, 20_000);

  it("refuses to reopen a data dir with a different partition count", () => {
    const dir = freshDir();
    openLogWriter(dir, 4).close();
    let caught: unknown;
    try {
      openLogWriter(dir, 6);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(LocalLogError);
    expect((caught as LocalLogError).code).toBe("partitions_mismatch");
    expect((caught as LocalLogError).message).toContain("4 partitions");
    openLogWriter(dir, 4).close();
  });

  it("refuses a record with a raw newline and writes nothing of that append", () => {
    const dir = freshDir();
    const log = openLogWriter(dir, 2);
    log.append([["ok"], []]);
    expect(() => log.append([["fine"], ["bad\nrecord"]])).toThrow(LocalLogError);
    expect([log.endOffset(0), log.endOffset(1)]).toEqual([1, 0]);
    const reader = openLogReader(dir);
    expect(readAll(reader, 0)).toEqual(["ok"]);
    expect(reader.endOffset(1)).toBe(0);
    reader.close();
    log.close();
  });

  it("stores dead letters once per record and lists the newest first", () => {
    const dir = freshDir();
    const log = openLogWriter(dir, 2);
    const before = Date.now();
    log.deadLetter([
      { partition: 0, offset: 3, value: "{bad", reason: "malformed JSON" },
      { partition: 1, offset: 0, value: "{}", reason: "missing eventId" },
    ]);
    log.deadLetter([
      { partition: 0, offset: 3, value: "{bad", reason: "replayed" },
      { partition: 0, offset: 9, value: "[]", reason: "not an object" },
    ]);
    const reader = openLogReader(dir);
    const all = reader.deadLetters(10);
    expect(all.map(({ time: _t, ...rest }) => rest)).toEqual([
      { partition: 0, offset: 9, value: "[]", reason: "not an object" },
      { partition: 1, offset: 0, value: "{}", reason: "missing eventId" },
      { partition: 0, offset: 3, value: "{bad", reason: "malformed JSON" },
    ]);
    for (const d of all) expect(d.time).toBeGreaterThanOrEqual(before);
    expect(reader.deadLetters(1).map((d) => d.offset)).toEqual([9]);
    reader.close();
    log.close();
  });

  it("partitions keys by murmur3-32 with seed 0, stably and evenly", () => {
    // Published murmur3_x86_32 vectors, seed 0.
    expect(Bun.hash.murmur32v3("hello", 0)).toBe(0x248bfa47);
    expect(partitionOf("hello", 7)).toBe(0x248bfa47 % 7);
    expect(partitionOf("The quick brown fox jumps over the lazy dog", 1000)).toBe(0x2e4ff723 % 1000);
    const counts = new Array<number>(8).fill(0);
    for (let i = 0; i < 80_000; i++) {
      const p = partitionOf(`session-${i}`, 8);
      expect(p).toBe(partitionOf(`session-${i}`, 8));
      counts[p]++;
    }
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
  });

  it("prints append throughput for 500-record batches over 8 partitions", () => {
    const dir = freshDir();
    const log = openLogWriter(dir, 8);
    const pool: string[] = [];
    for (let i = 0; i < 1024; i++) {
      pool.push(
        JSON.stringify({
          eventId: crypto.randomUUID(),
          type: "page_view",
          timestamp: 1_700_000_000_000 + i,
          userId: `user-${i % 997}`,
          sessionId: `session-${i % 4001}`,
          page: `/products/item-${i % 211}?ref=home&campaign=spring-sale-2024`,
          referrer: "https://www.example.com/search?q=shoes",
          loadTimeMs: i % 3000,
        }).padEnd(300, " "),
      );
    }
    const total = 400_000;
    let k = 0;
    const t0 = performance.now();
    for (let done = 0; done < total; done += 500) {
      const groups: string[][] = Array.from({ length: 8 }, () => []);
      for (let i = 0; i < 500; i++, k++) groups[k & 7].push(pool[k & 1023]);
      log.append(groups);
    }
    const ms = performance.now() - t0;
    console.log(`local log append: ${Math.round((total / ms) * 1000).toLocaleString("en-US")} records/s (500-record appends, 8 partitions, 300 B records)`);
    let sum = 0;
    for (let p = 0; p < 8; p++) sum += log.endOffset(p);
    expect(sum).toBe(total);
    log.close();
  });
});
