// Bench producer thread: replays a prebuilt record set into an SPSC ring in batches, as an ingest
// worker publishes finished events, so the main thread measures the real hand-off plus apply.

import { ringProducer } from "../src/ingest/index.ts";

declare const self: Worker;

export interface HandoffInit {
  source: SharedArrayBuffer;
  ring: SharedArrayBuffer;
  count: number;
  recordWords: number;
  /** records per publish (the worker publishes after each read batch) */
  batch: number;
}

self.onmessage = (ev: MessageEvent<HandoffInit>) => {
  const { source, ring: sab, count, recordWords, batch } = ev.data;
  const src = new Int32Array(source);
  const ring = ringProducer(sab);
  const cap = ring.capacity;
  const deadline = performance.now() + 120_000;
  let sent = 0;
  let waits = 0;
  while (sent < count) {
    let want = Math.min(batch, count - sent);
    if (ring.free(want) < want) {
      waits++;
      while (ring.free(want) < want) {
        ring.waitForSpace(want, 50);
        if (performance.now() > deadline) {
          self.postMessage({ type: "timeout", sent });
          return;
        }
      }
    }
    // copy contiguous runs up to the ring's wrap point: one memcpy per run
    let k = 0;
    while (k < want) {
      const slotRecord = ring.slot(k) / recordWords;
      const run = Math.min(want - k, cap - slotRecord);
      const from = (sent + k) * recordWords;
      ring.i32.set(src.subarray(from, from + run * recordWords), slotRecord * recordWords);
      k += run;
    }
    ring.publish(want);
    sent += want;
  }
  self.postMessage({ type: "done", sent, waits });
};
