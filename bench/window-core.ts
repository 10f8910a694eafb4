// Window core throughput: agg.apply over prebuilt ring records with agg.advance() every 4096 records,
// as the drain loop calls them; plus the same records through a real Worker and SPSC ring.

import { createRingBuffer, ringConsumer } from "../src/ingest/index.ts";
import { createAggregator, RECORD_WORDS, type Aggregator } from "../src/window/index.ts";
import type { RecordSet } from "./records.ts";

export const ADVANCE_EVERY = 4096;

export interface ApplyRun {
  records: number;
  ms: number;
  recordsPerSec: number;
}

function newAggregator(partitions: number): Aggregator {
  return createAggregator({
    partitions,
    outOfOrdernessMs: 5_000,
    allowedLatenessMs: 60_000,
    sessionGapMs: 30 * 60_000,
    idleTimeoutMs: 10_000,
  });
}

/** What drainDict does once per string: worker-local id -> aggregator dictionary id. */
function xlateFor(agg: Aggregator, strings: readonly string[]): Int32Array {
  const x = new Int32Array(Math.max(1024, strings.length)).fill(-1);
  for (let i = 0; i < strings.length; i++) x[i] = agg.dict.intern(strings[i]);
  // the translations stand for the workers' and must keep their ids, as the pool's do
  agg.dict.addHolder({
    mark(visit) {
      for (let i = 0; i < x.length; i++) if (x[i] >= 0) visit(x[i]);
    },
  });
  return x;
}

/**
 * One timed pass over the first `limit` records with a fresh aggregator. `captureEvery` > 0 also
 * runs capture() + committed() (a checkpoint without the sqlite write) every that many records.
 */
export function applyRun(set: RecordSet, partitions: number, limit: number, captureEvery = 0): ApplyRun {
  const agg = newAggregator(partitions);
  const xlate = xlateFor(agg, set.strings);
  const { i32, f64 } = set;
  const n = Math.min(limit, set.count);
  const t0 = performance.now();
  for (let k = 0, base = 0; k < n; k++, base += RECORD_WORDS) {
    agg.apply(i32, f64, base, xlate);
    if ((k & (ADVANCE_EVERY - 1)) === ADVANCE_EVERY - 1) {
      agg.advance();
      if (captureEvery > 0 && (k + 1) % captureEvery === 0) agg.committed(agg.capture());
    }
  }
  agg.advance();
  const ms = performance.now() - t0;
  return { records: n, ms, recordsPerSec: n / (ms / 1000) };
}

export interface HandoffRun extends ApplyRun {
  /** times the producer found the ring full (the consumer is the bottleneck when > 0) */
  producerWaits: number;
  applied: boolean;
}

/**
 * Streams the records through a Worker -> SharedArrayBuffer ring -> main thread. With `apply` the
 * main thread runs the drain loop's work (apply each record, advance every >= 4096); without it, it
 * only releases, measuring the hand-off alone. Bounded by `timeoutMs`.
 */
export async function handoffRun(set: RecordSet, partitions: number, apply: boolean, timeoutMs = 60_000): Promise<HandoffRun> {
  const capacity = 1 << 15; // the worker pool's default ring
  const sab = createRingBuffer(capacity, RECORD_WORDS);
  const ring = ringConsumer(sab);
  const agg = newAggregator(partitions);
  const xlate = xlateFor(agg, set.strings);
  const worker = new Worker(new URL("./ring-handoff.worker.ts", import.meta.url));
  const done = Promise.withResolvers<{ type: string; sent: number; waits?: number }>();
  let failure: Error | null = null;
  worker.onmessage = (ev) => done.resolve(ev.data);
  worker.onerror = (ev) => {
    failure = new Error(`ring hand-off worker failed: ${ev.message}`);
    done.reject(failure);
  };
  done.promise.catch(() => {}); // surfaced through `failure` in the loop
  const posted = performance.now();
  worker.postMessage({ source: set.sab, ring: sab, count: set.count, recordWords: RECORD_WORDS, batch: 4096 });
  let got = 0;
  let sinceAdvance = 0;
  let t0 = 0; // the clock starts at the first record, so worker start-up is not counted
  try {
    while (got < set.count) {
      if (failure) throw failure;
      const count = ring.available(ring.capacity);
      if (count === 0) {
        if (performance.now() - posted > timeoutMs) throw new Error(`ring hand-off timed out after ${got} records`);
        await ring.waitForData(50);
        continue;
      }
      if (got === 0) t0 = performance.now();
      if (apply) {
        const { i32, f64 } = ring;
        for (let k = 0; k < count; k++) agg.apply(i32, f64, ring.slot(k), xlate);
        sinceAdvance += count;
        if (sinceAdvance >= ADVANCE_EVERY) {
          agg.advance();
          sinceAdvance = 0;
        }
      }
      ring.release(count);
      got += count;
    }
    const ms = performance.now() - t0;
    const msg = await Promise.race([done.promise, Bun.sleep(5000).then(() => null)]);
    return { records: got, ms, recordsPerSec: got / (ms / 1000), producerWaits: msg?.waits ?? -1, applied: apply };
  } finally {
    worker.terminate();
  }
}
