// Main-thread side of the ingest workers: a fixed pool (never spawned per task), one ring and one
// dictionary ring per worker, and the drain loop that feeds the window aggregator in place. Each worker's
// string ids translate to the aggregator's dictionary; translations nothing else needs are released with
// the worker in three steps, so no record is ever applied with an id that meant another string.

import { createDeduper } from "./dedupe.ts";
import { createRingBuffer, ringConsumer, type RingConsumer } from "./ring-buffer.ts";
import type { FromWorker, PartitionStart, ToWorker, WorkerInit } from "./worker-protocol.ts";
import { DICT_RECORD_WORDS, RECORD_WORDS, type Aggregator } from "../window/index.ts";

export interface WorkerPoolOptions {
  workers: number;
  partitions: number;
  dataDir: string;
  currency: string;
  maxAgeMs: number;
  dedupeHorizonMs: number;
  ringCapacity?: number;
  aggregator: Aggregator;
  onDeadLetters(rows: Array<{ partition: number; offset: number; value: string; reason: string }>): void;
  onError?(message: string): void;
  /** called after each drain that applied records */
  onApplied?(records: number): void;
  /** while true the drain loop applies nothing: rings fill and the workers stop consuming (the store is failing) */
  holdBack?(): boolean;
  /** worker script; defaults to ./worker.ts next to this file (listed as a build entry point) */
  workerUrl?: string | URL;
  /**
   * Kafka mode: every worker joins the consumer group (client id `<clientId>-w<index>`). The pool asks
   * onAssigned for the state of partitions the group hands a worker (the caller restores them into the
   * aggregator and says where each starts) and tells onRevoked about partitions taken away, after every
   * record of them the worker produced was applied.
   */
  kafka?: Omit<NonNullable<WorkerInit["kafka"]>, "clientId"> & {
    clientId: string;
    /** `drain` applies every record already in the rings: call it right before restoring, so none of another worker's stays behind */
    onAssigned(partitions: number[], drain: () => void, dedupeFrom: (partition: number) => number | undefined): Promise<PartitionStart[]>;
    onRevoked(partitions: number[]): void;
    onWarn?(message: string): void;
  };
}

export interface WorkerPool {
  /** wake the workers after a log append */
  notify(): void;
  /** tell the workers which offsets the last checkpoint made durable */
  committed(offsets: Map<number, number>): void;
  /** lowest log offset each partition still needs (min of checkpointed and dedupe needs) */
  neededFrom(partition: number): number;
  /** Kafka mode: where a new owner's dedupe re-scan of the partition must start */
  dedupeFrom(partition: number): number | undefined;
  /** `workerDictionaryIds`: string ids the workers hold (translations into the aggregator's dictionary) */
  stats(): { processed: number; duplicates: number; invalid: number; ringUsed: number[]; workerDictionaryIds: number };
  stop(): Promise<void>;
}

interface Slot {
  worker: Worker;
  ring: RingConsumer;
  dict: RingConsumer;
  /** worker string id -> aggregator dictionary id, -1 = none */
  xlate: Int32Array;
  /** 1 while a release of that id is under way (asked to forget, not yet reusable) */
  forgetting: Uint8Array;
  /** ids with a translation */
  held: number;
  /** ids the worker has forgotten ("forgot"): dropped after the next drain of its ring */
  forgotten: number[][];
  progress: { processed: number; duplicates: number; invalid: number };
}

const decoder = new TextDecoder();

/** In the compiled binary the worker is an embedded entry point addressed by its source path. */
function defaultWorkerUrl(): string | URL {
  if (import.meta.url.includes("$bunfs")) return "/$bunfs/root/ingest/worker.ts"; // entries are rooted at src/
  return new URL("./worker.ts", import.meta.url);
}

/** Start the pool; resolves once every worker has restored its dedupe state and is consuming. */
export async function startWorkerPool(opts: WorkerPoolOptions): Promise<WorkerPool> {
  const agg = opts.aggregator;
  const control = new SharedArrayBuffer(64);
  const ctl = new Int32Array(control);
  const needed = new Map<number, number>();
  const slots: Slot[] = [];
  const ready: Array<Promise<void>> = [];
  const url = opts.workerUrl ?? defaultWorkerUrl();
  const n = Math.max(1, Math.min(opts.workers, opts.partitions));
  // create dedupe.db (schema, WAL mode) once here, so workers opening it together never race on setup
  if (!opts.kafka) createDeduper({ dir: opts.dataDir, horizonMs: opts.dedupeHorizonMs }).close();
  const kafka = opts.kafka;
  const ownerWorker = new Map<number, number>(); // Kafka mode: partition -> worker that owns it now

  for (let w = 0; w < n; w++) {
    const ringSab = createRingBuffer(opts.ringCapacity ?? 1 << 15, RECORD_WORDS);
    const dictSab = createRingBuffer(256, DICT_RECORD_WORDS);
    const worker = new Worker(url);
    const slot: Slot = {
      worker,
      ring: ringConsumer(ringSab),
      dict: ringConsumer(dictSab),
      xlate: new Int32Array(1024).fill(-1),
      forgetting: new Uint8Array(1024),
      held: 0,
      forgotten: [],
      progress: { processed: 0, duplicates: 0, invalid: 0 },
    };
    slots.push(slot);
    const owned: WorkerInit["partitions"] = [];
    if (!kafka) for (let p = w; p < opts.partitions; p += n) owned.push({ partition: p, from: agg.applied.get(p) ?? 0 });
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    ready.push(promise);
    worker.onmessage = (ev: MessageEvent<FromWorker>) => {
      const m = ev.data;
      switch (m.type) {
        case "ready":
          resolve();
          break;
        case "dlq":
          opts.onDeadLetters(m.rows);
          break;
        case "progress":
          for (const [p, o] of m.neededFrom) needed.set(p, o);
          slot.progress = { processed: m.processed, duplicates: m.duplicates, invalid: m.invalid };
          break;
        case "error":
          opts.onError?.(m.message);
          reject(new Error(m.message));
          break;
        case "warn":
          kafka?.onWarn?.(m.message);
          break;
        case "forgot":
          // every record using these ids is published already; the next drain applies them, then drops the ids
          slot.forgotten.push(m.ids);
          break;
        case "assigned":
          void assigned(w, m.requestId, m.partitions);
          break;
        case "revoked": {
          // the worker published everything of these partitions before saying so: apply it, then forget them
          drain();
          const gone = m.partitions.filter((p) => ownerWorker.get(p) === w);
          for (const p of gone) {
            ownerWorker.delete(p);
            needed.delete(p);
          }
          if (gone.length > 0) kafka?.onRevoked(gone);
          break;
        }
      }
    };
    worker.onerror = (ev) => {
      opts.onError?.(`worker ${w} failed: ${ev.message}`);
      reject(new Error(ev.message));
    };
    const init: WorkerInit = {
      type: "init",
      workerIndex: w,
      dataDir: opts.dataDir,
      partitions: owned,
      ring: ringSab,
      dictRing: dictSab,
      control,
      currency: opts.currency,
      maxAgeMs: opts.maxAgeMs,
      dedupeHorizonMs: opts.dedupeHorizonMs,
      kafka: kafka
        ? {
            brokers: kafka.brokers,
            clientId: `${kafka.clientId}-w${w}`,
            topic: kafka.topic,
            groupId: kafka.groupId,
            sessionTimeoutMs: kafka.sessionTimeoutMs,
            heartbeatIntervalMs: kafka.heartbeatIntervalMs,
            logLevel: kafka.logLevel,
          }
        : undefined,
    };
    worker.postMessage(init);
  }

  /** A worker was given partitions: whatever memory holds of them is dropped, their checkpoint restored. */
  async function assigned(w: number, requestId: number, parts: number[]): Promise<void> {
    const reply = (m: Omit<Extract<ToWorker, { type: "starts" }>, "type">) => slots[w].worker.postMessage({ type: "starts", ...m });
    try {
      const starts = await kafka!.onAssigned(parts, () => void drain(), (p) => needed.get(p));
      for (const s of starts) {
        ownerWorker.set(s.partition, w);
        needed.set(s.partition, Math.min(s.dedupeFrom, s.from));
      }
      reply({ requestId, starts });
    } catch (err) {
      reply({ requestId, starts: [], error: (err as Error).message });
    }
  }
  function drainDict(s: Slot): void {
    const d = s.dict;
    const count = d.available(d.capacity);
    if (count === 0) return;
    const bytes = new Uint8Array(d.i32.buffer, d.i32.byteOffset, d.i32.byteLength);
    for (let k = 0; k < count; k++) {
      const base = d.slot(k);
      const id = d.i32[base];
      const len = d.i32[base + 1];
      const str = decoder.decode(bytes.subarray((base + 2) * 4, (base + 2) * 4 + len));
      if (id >= s.xlate.length) {
        const n = Math.max(id + 1, s.xlate.length * 2);
        const grown = new Int32Array(n).fill(-1);
        grown.set(s.xlate);
        s.xlate = grown;
        const flags = new Uint8Array(n);
        flags.set(s.forgetting);
        s.forgetting = flags;
      }
      if (s.xlate[id] < 0) s.held++;
      s.xlate[id] = agg.dict.intern(str);
    }
    d.release(count);
  }

  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | null = null;

  /** Step 3 of a release: the records that used these ids are applied; drop them and let the worker reuse them. */
  function dropForgotten(s: Slot, lists: number[][]): void {
    const all: number[] = [];
    for (const ids of lists)
      for (const id of ids) {
        if (s.forgetting[id] === 0) continue;
        s.forgetting[id] = 0;
        s.xlate[id] = -1;
        s.held--;
        all.push(id);
      }
    if (!stopped && all.length > 0) s.worker.postMessage({ type: "reusable", ids: all } satisfies ToWorker);
  }

  // The workers' translations keep aggregator ids alive; on a sweep, those nothing else needs are released:
  // "forget" to the worker, its "forgot" once it published every record using them, the drain that applies
  // those records, then "reusable". Until then the translation stays, and keeps its id marked.
  agg.dict.addHolder({
    prune(needed) {
      if (stopped) return;
      for (const s of slots) {
        const ids: number[] = [];
        const x = s.xlate;
        const f = s.forgetting;
        for (let id = 0; id < x.length; id++) {
          const g = x[id];
          if (g >= 0 && f[id] === 0 && !needed(g)) {
            f[id] = 1;
            ids.push(id);
          }
        }
        if (ids.length > 0) s.worker.postMessage({ type: "forget", ids } satisfies ToWorker);
      }
    },
    mark(visit) {
      for (const s of slots) {
        const x = s.xlate;
        for (let id = 0; id < x.length; id++) if (x[id] >= 0) visit(x[id]);
      }
    },
  });

  /** drain every ring once; records are read in place and released in one store */
  function drain(): number {
    let total = 0;
    for (const s of slots) {
      const r = s.ring;
      // ids the worker forgot before this drain: every record using them is published, so counted below
      const forgotten = s.forgotten.length > 0 ? s.forgotten.splice(0) : null;
      // read the record count before the dictionary so every string a record uses is known
      const count = r.available(r.capacity);
      drainDict(s);
      if (count > 0) {
        const { i32, f64 } = r;
        for (let k = 0; k < count; k++) agg.apply(i32, f64, r.slot(k), s.xlate);
        r.release(count);
        total += count;
      }
      if (forgotten) dropForgotten(s, forgotten);
    }
    agg.advance();
    if (total > 0) opts.onApplied?.(total);
    return total;
  }

  function loop(): void {
    if (stopped) return;
    let n = 0;
    try {
      if (!opts.holdBack?.()) n = drain();
    } catch (err) {
      opts.onError?.(`aggregator: ${(err as Error).stack ?? err}`);
    }
    timer = setTimeout(loop, n > 0 ? 0 : 2);
  }
  // drain from the start: a worker replaying a backlog fills its rings before it reports ready
  loop();
  try {
    await Promise.all(ready);
  } catch (err) {
    stopped = true;
    if (timer) clearTimeout(timer);
    for (const s of slots) s.worker.terminate();
    throw err;
  }

  return {
    notify() {
      Atomics.add(ctl, 0, 1);
      Atomics.notify(ctl, 0);
    },
    committed(offsets) {
      const list = [...offsets];
      for (const s of slots) s.worker.postMessage({ type: "committed", offsets: list });
    },
    neededFrom(p) {
      return Math.min(agg.applied.get(p) ?? 0, needed.get(p) ?? 0);
    },
    dedupeFrom(p) {
      return needed.get(p);
    },
    stats() {
      const acc = { processed: 0, duplicates: 0, invalid: 0, workerDictionaryIds: 0 };
      for (const s of slots) {
        acc.processed += s.progress.processed;
        acc.duplicates += s.progress.duplicates;
        acc.invalid += s.progress.invalid;
        acc.workerDictionaryIds += s.held;
      }
      return { ...acc, ringUsed: slots.map((s) => (s.ring.available(s.ring.capacity))) };
    },
    async stop() {
      const acks = slots.map(
        (s) =>
          new Promise<void>((resolve) => {
            const prev = s.worker.onmessage;
            s.worker.onmessage = (ev: MessageEvent<FromWorker>) => {
              if (ev.data.type === "stopped") resolve();
              else prev?.call(s.worker, ev);
            };
          }),
      );
      for (const s of slots) s.worker.postMessage({ type: "stop" });
      // keep draining so a worker blocked on a full ring can finish
      const drainer = setInterval(() => drain(), 1);
      await Promise.race([Promise.all(acks), new Promise((r) => setTimeout(r, 5000))]);
      clearInterval(drainer);
      stopped = true;
      if (timer) clearTimeout(timer);
      drain();
      for (const s of slots) s.worker.terminate();
    },
  };
}
