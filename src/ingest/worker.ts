// Ingest worker (one of a fixed pool): reads its partitions of the log, decodes and validates each
// record, drops duplicates by eventId, interns strings and writes fixed-size records into its ring.
// String ids are released when the main thread says nothing needs them (forget → forgot → reusable).

import { validateEvent } from "./event.ts";
import { createDeduper, type Deduper } from "./dedupe.ts";
import { openLogReader, type LocalLogReader } from "./local-log.ts";
import { createKafkaSource, type KafkaRecord, type KafkaSource } from "./kafka-source.ts";
import { join } from "node:path";
import { ringProducer, type RingProducer } from "./ring-buffer.ts";
import type { FromWorker, PartitionStart, ToWorker, WorkerInit } from "./worker-protocol.ts";
import {
  DICT_MAX_BYTES,
  FLAG_END,
  K_DUPLICATE,
  K_ITEM,
  K_SKIP,
  W_CATEGORY,
  W_KIND,
  W_LOAD_US,
  W_OFFSET,
  W_PARTITION,
  W_PRICE,
  W_PRODUCT,
  W_QTY,
  W_SESSION_HI,
  W_SESSION_LO,
  W_SOURCE,
  W_TIME,
  W_USER_HI,
  W_USER_LO,
  HLL_SEED_HI,
  HLL_SEED_LO,
} from "../window/index.ts";
import { TYPE_CODE, type ShopEvent } from "./event-types.ts";

declare const self: Worker;

// every producer hashes with the sketch's seeds, so sketches of all partitions merge
const SEED_LO = HLL_SEED_LO;
const SEED_HI = HLL_SEED_HI;
const READ_BATCH = 4096;
const FLUSH_EVERY_MS = 1000;
/** ring records one event may need (itself and its items); larger events fall back to waiting in slot() */
const ROOM = 64;

function post(m: FromWorker): void {
  self.postMessage(m);
}

interface Running {
  committed(offsets: Array<[number, number]>): void;
  forget(ids: number[]): void;
  reusable(ids: number[]): void;
  starts(m: Extract<ToWorker, { type: "starts" }>): void;
  stop(): Promise<void>;
}

function run(init: WorkerInit): Running {
  // Kafka mode keeps dedupe chunks per worker: a partition moving between workers of one instance is
  // forgotten by one file and rebuilt in another, never both at once in a shared one
  const kafkaMode = init.kafka !== undefined;
  const log: LocalLogReader | null = kafkaMode ? null : openLogReader(init.dataDir);
  const dedupe: Deduper = createDeduper({
    dir: kafkaMode ? join(init.dataDir, "kafka-dedupe", `w${init.workerIndex}`) : init.dataDir,
    horizonMs: init.dedupeHorizonMs,
  });
  const ring: RingProducer = ringProducer(init.ring);
  const dict: RingProducer = ringProducer(init.dictRing);
  const dictBytes = new Uint8Array(dict.i32.buffer, dict.i32.byteOffset, dict.i32.byteLength);
  const control = new Int32Array(init.control);
  const encoder = new TextEncoder();
  // string ids of this worker: id -> string and back; released ids wait in `freeIds` until the main thread
  // has applied every record that used them (an id reused earlier would translate those records wrongly)
  const localIds = new Map<string, number>();
  const localStrs: Array<string | undefined> = [];
  const freeIds: number[] = [];
  const next = new Map<number, number>();
  const committed = new Map<number, number>();
  const ctx = { now: Date.now(), maxAgeMs: init.maxAgeMs, currency: init.currency };
  let pendingDict = 0;
  let pending = 0; // records written, not yet published
  let complete = 0; // of those, records up to the last finished event (the only ones ever published)
  let stopping = false;
  let processed = 0;
  let duplicates = 0;
  let invalid = 0;
  let dlq: Array<{ partition: number; offset: number; value: string; reason: string }> = [];

  const extract = (value: string) => {
    try {
      const v = validateEvent(JSON.parse(value), ctx);
      return v.ok ? { eventId: v.event.eventId, time: v.event.time } : null;
    } catch {
      return null;
    }
  };
  for (const { partition, from } of log ? init.partitions : []) {
    next.set(partition, from);
    dedupe.restore(
      partition,
      from,
      function* (lo: number, hi: number) {
        if (!log) return;
        let at = Math.max(lo, log.startOffset(partition));
        while (at < hi) {
          const slices = log.read(partition, at, Math.min(READ_BATCH, hi - at));
          if (slices.length === 0) return;
          for (const s of slices) {
            const lines = s.payload.split("\n");
            for (let i = s.skip; i < s.skip + s.count && at < hi; i++, at++) yield { offset: s.baseOffset + i, value: lines[i] };
          }
        }
      },
      extract,
    );
  }

  function publishAll(): void {
    if (pendingDict > 0) {
      dict.publish(pendingDict);
      pendingDict = 0;
    }
    if (complete > 0) {
      ring.publish(complete);
      pending -= complete;
      complete = 0;
    }
  }

  /** next free record slot, flushing and waiting for the aggregator when the ring is full */
  function slot(): number {
    if (ring.free(pending + 1) < pending + 1) {
      // a checkpoint must never see half an event, so only finished events are published
      publishAll();
      while (ring.free(pending + 1) < pending + 1) ring.waitForSpace(pending + 1, 50);
    }
    const base = ring.slot(pending);
    pending++;
    return base;
  }

  function intern(s: string | undefined): number {
    if (s === undefined) return -1;
    let id = localIds.get(s);
    if (id !== undefined) return id;
    const bytes = encoder.encode(s);
    if (bytes.length > DICT_MAX_BYTES) throw new Error("string too long to intern");
    id = freeIds.length > 0 ? freeIds.pop()! : localStrs.length;
    if (dict.free(pendingDict + 1) < pendingDict + 1) {
      publishAll();
      while (dict.free(1) < 1) dict.waitForSpace(1, 50);
    }
    const base = dict.slot(pendingDict);
    dict.i32[base] = id;
    dict.i32[base + 1] = bytes.length;
    dictBytes.set(bytes, (base + 2) * 4);
    pendingDict++;
    localIds.set(s, id);
    localStrs[id] = s;
    return id;
  }

  /** The main thread needs these ids no more: forget their strings, publish what used them, say so. */
  function forget(ids: number[]): void {
    for (const id of ids) {
      const s = localStrs[id];
      if (s === undefined) continue;
      if (localIds.get(s) === id) localIds.delete(s);
      localStrs[id] = undefined;
    }
    // handlers run between events, so every record written so far is complete
    publishAll();
    post({ type: "forgot", workerIndex: init.workerIndex, ids });
  }

  function reusable(ids: number[]): void {
    for (const id of ids) if (localStrs[id] === undefined) freeIds.push(id);
  }

  function header(base: number, kind: number, p: number, offset: number, t: number): void {
    const i32 = ring.i32;
    i32[base + W_KIND] = kind;
    i32[base + W_PARTITION] = p;
    ring.f64[(base + W_OFFSET) >> 1] = offset;
    ring.f64[(base + W_TIME) >> 1] = t;
  }

  function emit(e: ShopEvent, p: number, offset: number): void {
    // strings first: their dictionary records are published before the records that use them. Categories
    // are not interned: no metric reads them, and each distinct one would only hold memory on both sides
    const product = intern(e.productId);
    const source = intern(e.utmSource);
    const items = e.items;
    const itemIds = items ? items.map((it) => intern(it.productId)) : null;
    const kind = TYPE_CODE[e.type];
    const base = slot();
    const i32 = ring.i32;
    header(base, items && items.length > 0 ? kind : kind | FLAG_END, p, offset, e.time);
    const u = e.userId ?? "";
    const s = e.sessionId ?? "";
    i32[base + W_USER_LO] = Bun.hash.murmur32v3(u, SEED_LO);
    i32[base + W_USER_HI] = Bun.hash.murmur32v3(u, SEED_HI);
    i32[base + W_SESSION_LO] = Bun.hash.murmur32v3(s, SEED_LO);
    i32[base + W_SESSION_HI] = Bun.hash.murmur32v3(s, SEED_HI);
    i32[base + W_PRODUCT] = product;
    i32[base + W_CATEGORY] = -1;
    i32[base + W_SOURCE] = source;
    i32[base + W_PRICE] = e.priceCents ?? 0;
    i32[base + W_QTY] = e.type === "inventory_update" ? (e.stock ?? 0) : (e.quantity ?? 1);
    i32[base + W_LOAD_US] = e.loadTimeMs === undefined ? -1 : Math.round(e.loadTimeMs * 1000);
    if (items && itemIds) {
      for (let k = 0; k < items.length; k++) {
        const b = slot();
        header(b, k === items.length - 1 ? K_ITEM | FLAG_END : K_ITEM, p, offset, e.time);
        ring.i32[b + W_PRODUCT] = itemIds[k];
        ring.i32[b + W_CATEGORY] = -1;
        ring.i32[b + W_PRICE] = items[k].priceCents;
        ring.i32[b + W_QTY] = items[k].quantity;
      }
    }
    complete = pending;
  }

  function marker(kind: number, p: number, offset: number, t: number): void {
    header(slot(), kind | FLAG_END, p, offset, t);
    complete = pending;
  }

  function processRecord(p: number, offset: number, line: string): void {
    processed++;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (err) {
      return reject(p, offset, line, `malformed JSON: ${(err as Error).message}`);
    }
    const v = validateEvent(raw, ctx);
    if (!v.ok) return reject(p, offset, line, v.reason);
    if (dedupe.check(p, v.event.eventId, offset, v.event.time)) {
      duplicates++;
      return marker(K_DUPLICATE, p, offset, v.event.time);
    }
    try {
      emit(v.event, p, offset);
    } catch (err) {
      reject(p, offset, line, `cannot process: ${(err as Error).message}`);
    }
  }

  function reject(p: number, offset: number, value: string, reason: string): void {
    invalid++;
    dlq.push({ partition: p, offset, value: value.length > 65536 ? value.slice(0, 65536) : value, reason });
    marker(K_SKIP, p, offset, 0);
  }

  /** one pass over every owned partition; returns records handled */
  function pass(): number {
    ctx.now = Date.now();
    let n = 0;
    if (!log) return 0;
    for (const [p, from] of next) {
      let at = from;
      const slices = log.read(p, at, READ_BATCH);
      for (const s of slices) {
        const lines = s.payload.split("\n");
        for (let i = s.skip; i < s.skip + s.count; i++) {
          processRecord(p, s.baseOffset + i, lines[i]);
          at = s.baseOffset + i + 1;
          n++;
        }
      }
      next.set(p, at);
    }
    publishAll();
    if (dlq.length > 0) {
      post({ type: "dlq", rows: dlq });
      dlq = [];
    }
    return n;
  }

  function flushDlq(): void {
    if (dlq.length > 0) {
      post({ type: "dlq", rows: dlq });
      dlq = [];
    }
  }

  // Kafka mode: where each partition's dedupe re-scan started (ids older than that had expired for the previous owner)
  const rescanFrom = new Map<number, number>();
  let lastFlush = Date.now();
  function flushDedupe(): void {
    for (const p of next.keys()) dedupe.flush(p, committed.get(p));
    lastFlush = Date.now();
    post({
      type: "progress",
      workerIndex: init.workerIndex,
      // embedded: the log offset dedupe still needs kept; Kafka: where a new owner's re-scan must start
      neededFrom: [...next.keys()].map((p) =>
        kafkaMode ? [p, Math.max(rescanFrom.get(p) ?? 0, dedupe.retainedFrom(p))] : [p, dedupe.neededFrom(p)],
      ),
      processed,
      duplicates,
      invalid,
    });
  }

  if (init.kafka) return runKafka();

  // ready before the first pass: the pass may block on a full ring until the main thread drains it
  post({ type: "ready", workerIndex: init.workerIndex });
  const done = (async () => {
    while (!stopping) {
      const seq = Atomics.load(control, 0);
      let n: number;
      try {
        n = pass();
      } catch (err) {
        post({ type: "error", workerIndex: init.workerIndex, message: (err as Error).message });
        n = 0;
      }
      if (Date.now() - lastFlush >= FLUSH_EVERY_MS) flushDedupe();
      if (n === 0) {
        const w = Atomics.waitAsync(control, 0, seq, 100);
        if (w.async) await w.value;
        else await new Promise((r) => setTimeout(r, 0));
      } else if (n < READ_BATCH) {
        await new Promise((r) => setTimeout(r, 0)); // let control messages in between busy passes
      }
    }
    flushDedupe();
  })();

  return {
    committed(offsets: Array<[number, number]>) {
      for (const [p, o] of offsets) if (next.has(p)) committed.set(p, o);
    },
    forget,
    reusable,
    starts() {},
    async stop() {
      stopping = true;
      Atomics.add(control, 0, 0);
      Atomics.notify(control, 0);
      await done;
      dedupe.close();
      log?.close();
    },
  };

  /**
   * One consumer-group member per worker. An assigned partition starts at its checkpoint's offset, after a
   * re-scan (dedupe only, nothing emitted) from where its remembered ids begin; offsets are committed to
   * Kafka only after the main thread made a checkpoint covering them durable.
   */
  function runKafka(): Running {
    const k = init.kafka!;
    const source: KafkaSource = createKafkaSource({
      brokers: k.brokers,
      clientId: k.clientId,
      topic: k.topic,
      groupId: k.groupId,
      sessionTimeoutMs: k.sessionTimeoutMs,
      heartbeatIntervalMs: k.heartbeatIntervalMs,
      logLevel: k.logLevel,
      maxWaitMs: 100,
    });
    const replayUntil = new Map<number, number>();
    const waiting = new Map<number, (m: Extract<ToWorker, { type: "starts" }>) => void>();
    let requestSeq = 0;
    let lastCommit: Promise<void> = Promise.resolve();
    const warn = (message: string) => post({ type: "warn", workerIndex: init.workerIndex, message });
    const flushTimer = setInterval(() => {
      if (Date.now() - lastFlush >= FLUSH_EVERY_MS) flushDedupe();
    }, FLUSH_EVERY_MS);

    function handle(p: number, r: KafkaRecord): void {
      if (r.offset < (replayUntil.get(p) ?? 0)) {
        // re-scan: remember the ids of records the checkpoint already covers, emit nothing
        if (r.value === null || !r.utf8) return;
        const ev = extract(r.value);
        if (ev) dedupe.check(p, ev.eventId, r.offset, ev.time);
        return;
      }
      if (r.value === null) return reject(p, r.offset, "", "record has no value (tombstone)");
      if (!r.utf8) return reject(p, r.offset, r.value, "record value is not valid UTF-8");
      processRecord(p, r.offset, r.value);
    }

    const started = source
      .start({
        async onAssigned(parts) {
          const requestId = ++requestSeq;
          const answer = new Promise<Extract<ToWorker, { type: "starts" }>>((resolve) => waiting.set(requestId, resolve));
          post({ type: "assigned", workerIndex: init.workerIndex, requestId, partitions: parts });
          const m = await answer;
          if (m.error !== undefined) throw new Error(m.error); // the source backs off and asks again
          const out = new Map<number, number | null>();
          for (const s of m.starts as PartitionStart[]) {
            const from = Math.min(s.dedupeFrom, s.from);
            dedupe.forget(s.partition);
            next.set(s.partition, s.from);
            replayUntil.set(s.partition, s.from);
            rescanFrom.set(s.partition, from);
            out.set(s.partition, from);
          }
          return out;
        },
        async onRevoked(parts) {
          publishAll();
          flushDlq();
          for (const p of parts) {
            next.delete(p);
            replayUntil.delete(p);
            rescanFrom.delete(p);
            committed.delete(p);
            dedupe.forget(p);
          }
          post({ type: "revoked", workerIndex: init.workerIndex, partitions: parts });
        },
        async onBatch(p, records, heartbeat) {
          ctx.now = Date.now();
          for (let i = 0; i < records.length; i++) {
            if (!next.has(p)) break;
            // a full ring means the main thread holds back (its store is failing) or is busy: wait without
            // blocking this thread, so the group keeps hearing from us, and fetch nothing more meanwhile
            if (ring.free(pending + ROOM) < pending + ROOM) {
              publishAll();
              let beat = Date.now();
              while (ring.free(pending + ROOM) < pending + ROOM && !stopping) {
                await Bun.sleep(5);
                if (Date.now() - beat >= 1000) {
                  beat = Date.now();
                  await heartbeat();
                }
              }
            }
            handle(p, records[i]);
            if ((i & 2047) === 2047) {
              publishAll();
              await heartbeat();
            }
          }
          const last = records[records.length - 1];
          if (last && next.has(p)) next.set(p, last.offset + 1);
          publishAll();
          flushDlq();
        },
        onError(err, restarting) {
          warn(`kafka consumer: ${err.message}${restarting ? " (restarting)" : " (stopped)"}`);
        },
      })
      .then(
        () => post({ type: "ready", workerIndex: init.workerIndex }),
        (err: Error) => post({ type: "error", workerIndex: init.workerIndex, message: `kafka consumer cannot start: ${err.message}` }),
      );

    return {
      committed(offsets) {
        const mine = new Map<number, number>();
        for (const [p, o] of offsets) {
          if (!next.has(p)) continue;
          committed.set(p, o);
          mine.set(p, o);
        }
        if (mine.size === 0) return;
        lastCommit = lastCommit
          .then(() => source.commit(mine))
          .catch((err: Error) => warn(`offset commit failed (the next checkpoint commits again): ${err.message}`));
      },
      forget,
      reusable,
      starts(m) {
        const resolve = waiting.get(m.requestId);
        waiting.delete(m.requestId);
        resolve?.(m);
      },
      async stop() {
        stopping = true;
        clearInterval(flushTimer);
        await started;
        await lastCommit;
        // answer pending assignment requests so the source can wind down
        for (const [id, resolve] of waiting) resolve({ type: "starts", requestId: id, starts: [], error: "stopping" });
        waiting.clear();
        await source.stop().catch((err: Error) => warn(`kafka consumer stop: ${err.message}`));
        flushDedupe();
        dedupe.close();
      },
    };
  }
}

let running: ReturnType<typeof run> | null = null;
self.onmessage = async (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  if (m.type === "init") {
    try {
      running = run(m);
    } catch (err) {
      post({ type: "error", workerIndex: m.workerIndex, message: (err as Error).message });
    }
  } else if (m.type === "committed") {
    running?.committed(m.offsets);
  } else if (m.type === "forget") {
    running?.forget(m.ids);
  } else if (m.type === "reusable") {
    running?.reusable(m.ids);
  } else if (m.type === "starts") {
    running?.starts(m);
  } else if (m.type === "stop") {
    await running?.stop();
    post({ type: "stopped", workerIndex: -1 });
  }
};
