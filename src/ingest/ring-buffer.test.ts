// Tests for the SPSC record ring: bookkeeping, wrap-around (slots and 32-bit counters), full ring, f64 alignment,
// and a real Bun Worker producing 2 M checksummed records that the main thread drains and verifies.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import {
  RING_HEADER,
  createRingBuffer,
  ringConsumer,
  ringLayout,
  ringProducer,
  ringStats,
  type RingConsumer,
  type RingProducer,
} from "./ring-buffer.ts";
import type { RingProducerReply, RingProducerRequest } from "../../test/fixtures/ring-producer.worker.ts";

const WORDS = 16;

// Independent of the worker's copy on purpose: the consumer checks against its own computation.
function expectedWord(seq: number, j: number): number {
  if (j === 0) return seq | 0;
  if (j < 15) {
    let x = Math.imul(seq ^ Math.imul(j, 0x9e3779b9), 0x85ebca6b);
    x ^= x >>> 13;
    return Math.imul(x, 0xc2b2ae35) | 0;
  }
  let sum = Math.imul(seq, 0x01000193) ^ 0x811c9dc5;
  for (let k = 1; k < 15; k++) sum = Math.imul(sum ^ expectedWord(seq, k), 0x01000193);
  return sum;
}

function fill(p: RingProducer, k: number, seq: number): void {
  const at = p.slot(k);
  for (let j = 0; j < WORDS; j++) p.i32[at + j] = expectedWord(seq, j);
}

/** Index of the first word of the record that differs from `seq`'s, or -1. */
function mismatch(c: RingConsumer, k: number, seq: number): number {
  const at = c.slot(k);
  for (let j = 0; j < WORDS; j++) if (c.i32[at + j] !== expectedWord(seq, j)) return j;
  return -1;
}

/**
 * Interleaves producer batches and consumer drains of varying sizes until `total` records passed,
 * returning the sequence numbers in the order the consumer saw them and any corrupted ones.
 */
function pump(sab: SharedArrayBuffer, total: number): { seen: number[]; corrupt: number[] } {
  const p = ringProducer(sab);
  const c = ringConsumer(sab);
  const writes = [1, 3, 8, 5, 2, 7, 4];
  const drains = [2, 5, 1, 8, 3, 6];
  const seen: number[] = [];
  const corrupt: number[] = [];
  let next = 0;
  for (let round = 0; seen.length < total; round++) {
    const want = Math.min(writes[round % writes.length], total - next);
    const n = Math.min(want, p.free(want));
    for (let k = 0; k < n; k++) fill(p, k, next + k);
    p.publish(n);
    next += n;
    const m = Math.min(drains[round % drains.length], c.available(drains[round % drains.length]));
    for (let k = 0; k < m; k++) {
      const seq = c.i32[c.slot(k)];
      seen.push(seq);
      if (mismatch(c, k, seq) !== -1) corrupt.push(seq);
    }
    c.release(m);
    if (round > total * 10) throw new Error("pump made no progress");
  }
  return { seen, corrupt };
}

function range(n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(i);
  return out;
}

describe("ring buffer, one thread", () => {
  it("starts empty and rebuilds its layout from the buffer alone", () => {
    const sab = createRingBuffer(8, WORDS);
    expect(ringLayout(sab)).toEqual({ capacity: 8, recordWords: WORDS });
    const c = ringConsumer(sab);
    const p = ringProducer(sab);
    expect(c.available()).toBe(0);
    expect(p.free(8)).toBe(8);
    expect(c.i32.length).toBe(8 * WORDS);
    expect(c.i32.byteOffset % 64).toBe(0);
    expect(ringStats(sab)).toEqual({ capacity: 8, recordWords: WORDS, used: 0, fullWaits: 0 });
  });

  it("shows records only after publish and returns space only after release", () => {
    const sab = createRingBuffer(8, WORDS);
    const p = ringProducer(sab);
    const c = ringConsumer(sab);
    for (let k = 0; k < 3; k++) fill(p, k, k);
    expect(c.available(8)).toBe(0);
    p.publish(3);
    expect(c.available(8)).toBe(3);
    expect(ringStats(sab).used).toBe(3);
    expect([0, 1, 2].map((k) => mismatch(c, k, k))).toEqual([-1, -1, -1]);
    c.release(2);
    expect(c.available(8)).toBe(1);
    expect(c.i32[c.slot(0)]).toBe(2);
    // The default answer may come from the cached read index: never more than the truth, never 0 here.
    const cached = p.free();
    expect(cached).toBeGreaterThan(0);
    expect(cached).toBeLessThanOrEqual(7);
    expect(p.free(8)).toBe(7);
    expect(ringStats(sab).used).toBe(1);
  });

  it("rejects publishing or releasing more than it holds", () => {
    const sab = createRingBuffer(4, WORDS);
    const p = ringProducer(sab);
    const c = ringConsumer(sab);
    expect(() => p.publish(5)).toThrow(RangeError);
    expect(() => p.publish(1.5)).toThrow(RangeError);
    expect(() => p.publish(-1)).toThrow(RangeError);
    expect(() => c.release(1)).toThrow(RangeError);
    p.publish(2);
    c.available();
    expect(() => c.release(3)).toThrow(RangeError);
    c.release(2);
    expect(c.available(4)).toBe(0);
  });

  it("refuses bad geometry and foreign buffers", () => {
    expect(() => createRingBuffer(6, WORDS)).toThrow(RangeError);
    expect(() => createRingBuffer(0, WORDS)).toThrow(RangeError);
    expect(() => createRingBuffer(8, 15)).toThrow(RangeError);
    expect(() => createRingBuffer(8, 0)).toThrow(RangeError);
    expect(() => ringConsumer(new SharedArrayBuffer(4096))).toThrow(TypeError);
    expect(() => ringProducer(new SharedArrayBuffer(16))).toThrow(TypeError);
  });

  it("delivers every record in order across more than three laps with varying batch sizes", () => {
    const total = 8 * 3 * 4 + 5; // > 3 x capacity, and not a multiple of it
    const { seen, corrupt } = pump(createRingBuffer(8, WORDS), total);
    expect(seen).toEqual(range(total));
    expect(corrupt).toEqual([]);
  });

  for (const start of [0x7ffffffb, -5]) {
    it(`keeps order and occupancy when the 32-bit counters wrap (start ${start})`, () => {
      const sab = createRingBuffer(8, WORDS);
      const h = new Int32Array(sab);
      h[RING_HEADER.WRITE] = start;
      h[RING_HEADER.READ] = start;
      const { seen, corrupt } = pump(sab, 60);
      expect(seen).toEqual(range(60));
      expect(corrupt).toEqual([]);
      // Independent of the ring's arithmetic: both counters advanced by exactly 60 modulo 2^32.
      expect(h[RING_HEADER.WRITE]).toBe((start + 60) | 0);
      expect(h[RING_HEADER.READ]).toBe((start + 60) | 0);
      expect(Math.sign(h[RING_HEADER.WRITE])).not.toBe(Math.sign(start));
    });
  }

  it("stops at capacity when full and gets space back after release", () => {
    const sab = createRingBuffer(4, WORDS);
    const p = ringProducer(sab);
    const c = ringConsumer(sab);
    for (let k = 0; k < 4; k++) fill(p, k, k);
    p.publish(4);
    expect(p.free()).toBe(0);
    expect(p.free(4)).toBe(0);
    expect(() => p.publish(1)).toThrow(RangeError);
    expect(p.waitForSpace(1, 0)).toBe(false);
    expect(p.waitForSpace(1, 5)).toBe(false);
    expect(ringStats(sab).fullWaits).toBe(2);
    expect(() => p.waitForSpace(5, 0)).toThrow(RangeError);
    expect(c.available()).toBe(4);
    c.release(1);
    expect(p.free()).toBe(1);
    expect(p.waitForSpace(1, 0)).toBe(true);
    expect(p.waitForSpace(2, 0)).toBe(false);
    fill(p, 0, 4);
    p.publish(1);
    expect(p.free()).toBe(0);
    const order: number[] = [];
    for (let k = 0; k < c.available(4); k++) order.push(c.i32[c.slot(k)]);
    expect(order).toEqual([1, 2, 3, 4]);
    c.release(4);
    expect(p.free(4)).toBe(4);
    expect(p.waitForSpace(4, 0)).toBe(true);
  });

  it("aligns the f64 view so a float written by the producer reads back on the consumer", () => {
    const sab = createRingBuffer(4, WORDS);
    const p = ringProducer(sab);
    const c = ringConsumer(sab);
    const values = [Math.PI, -0, 2 ** 53 + 2, -1234567.89, Number.MIN_VALUE, 1e308];
    // Fill a whole lap plus two, so records sit in every slot including the wrapped ones.
    let v = 0;
    for (let lap = 0; lap < 3; lap++) {
      const n = p.free(4);
      for (let k = 0; k < n; k++, v++) {
        const at = p.slot(k);
        p.i32[at] = v;
        p.i32[at + 1] = -1;
        p.f64[(at + 2) >> 1] = values[v % values.length];
        p.i32[at + WORDS - 1] = ~v;
      }
      p.publish(n);
      const m = c.available(4);
      const view = new DataView(sab);
      for (let k = 0; k < m; k++) {
        const at = c.slot(k);
        const seq = c.i32[at];
        const want = values[seq % values.length];
        expect(Object.is(c.f64[(at + 2) >> 1], want)).toBe(true);
        // Independent of the f64 view: read the bytes where word at+2 lives.
        expect(Object.is(view.getFloat64(c.i32.byteOffset + (at + 2) * 4, true), want)).toBe(true);
        expect(c.i32[at + 1]).toBe(-1);
        expect(c.i32[at + WORDS - 1]).toBe(~seq);
      }
      c.release(m);
    }
    expect(v).toBe(12);
    expect(c.f64.byteOffset % 8).toBe(0);
    // Writing every data word left the header intact.
    expect(ringLayout(sab)).toEqual({ capacity: 4, recordWords: WORDS });
  });

  it("resolves waitForData at once when records are already published", async () => {
    const sab = createRingBuffer(4, WORDS);
    const p = ringProducer(sab);
    const c = ringConsumer(sab);
    p.publish(1);
    expect(await c.waitForData(0)).toBe(true);
    expect(c.available()).toBe(1);
  });
});

describe("ring buffer with a real Bun Worker as producer", () => {
  let worker: Worker;
  const inbox: RingProducerReply[] = [];
  const waiters: Array<(m: RingProducerReply) => void> = [];

  function nextReply(): Promise<RingProducerReply> {
    const queued = inbox.shift();
    if (queued) return Promise.resolve(queued);
    const { promise, resolve } = Promise.withResolvers<RingProducerReply>();
    waiters.push(resolve);
    return promise;
  }

  function send(req: RingProducerRequest): void {
    worker.postMessage(req);
  }

  beforeAll(() => {
    worker = new Worker(new URL("../../test/fixtures/ring-producer.worker.ts", import.meta.url));
    const deliver = (m: RingProducerReply): void => {
      const w = waiters.shift();
      if (w) w(m);
      else inbox.push(m);
    };
    worker.onmessage = (e: MessageEvent<RingProducerReply>) => deliver(e.data);
    worker.onerror = (e: ErrorEvent) => deliver({ kind: "error", message: e.message });
  });

  afterAll(() => {
    worker.terminate();
  });

  it("resolves waitForData false on an empty ring after the timeout, and true soon after a worker publishes", async () => {
    const sab = createRingBuffer(16, WORDS);
    const c = ringConsumer(sab);
    const t0 = performance.now();
    expect(await c.waitForData(30)).toBe(false);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
    expect(c.available()).toBe(0);

    const pending = c.waitForData(10_000);
    const t1 = performance.now();
    send({ kind: "one", sab, seq: 41 });
    expect(await pending).toBe(true);
    expect(performance.now() - t1).toBeLessThan(5_000);
    expect(c.available()).toBe(1);
    expect(mismatch(c, 0, 41)).toBe(-1);
    c.release(1);
    expect(await nextReply()).toEqual({ kind: "published", seq: 41 });
  });

  it("streams 2 000 000 records through a 1024-record ring in order and intact", async () => {
    const N = 2_000_000;
    const sab = createRingBuffer(1024, WORDS);
    const c = ringConsumer(sab);
    const done = nextReply();
    const t0 = performance.now();
    send({ kind: "stream", sab, count: N, maxBatch: 256 });

    let expected = 0;
    let outOfOrder = -1;
    let corruptAt = -1;
    let timedOut = false;
    let waits = 0;
    while (expected < N) {
      const n = c.available();
      if (n === 0) {
        waits++;
        if (!(await c.waitForData(10_000))) {
          timedOut = true;
          break;
        }
        continue;
      }
      for (let k = 0; k < n; k++) {
        const at = c.slot(k);
        const seq = c.i32[at];
        if (seq !== expected + k && outOfOrder < 0) outOfOrder = expected + k;
        else if (corruptAt < 0 && mismatch(c, k, seq) !== -1) corruptAt = seq;
      }
      c.release(n);
      expected += n;
    }
    const elapsed = performance.now() - t0;
    const reply = await done;

    expect(timedOut).toBe(false);
    expect(reply.kind).toBe("done");
    expect(reply.kind === "done" ? reply.written : -1).toBe(N);
    expect(outOfOrder).toBe(-1);
    expect(corruptAt).toBe(-1);
    expect(expected).toBe(N);
    expect(c.available(1024)).toBe(0);
    const stats = ringStats(sab);
    expect(stats.used).toBe(0);
    console.log(
      `ring: ${N} records in ${elapsed.toFixed(0)} ms = ${((N / elapsed) * 1000 / 1e6).toFixed(2)} M records/s ` +
        `(consumer waits ${waits}, producer full waits ${stats.fullWaits})`,
    );
  }, 20_000);
});
