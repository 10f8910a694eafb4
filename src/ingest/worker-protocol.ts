// Messages between the main thread and the ingest workers. Data moves through SharedArrayBuffer
// rings; these messages only set up, wake, report dead letters and stop.

export interface WorkerInit {
  type: "init";
  workerIndex: number;
  dataDir: string;
  /** partitions this worker owns, with the next offset to consume (from the checkpoint) */
  partitions: Array<{ partition: number; from: number }>;
  ring: SharedArrayBuffer;
  dictRing: SharedArrayBuffer;
  /** Int32Array[0] = append sequence: bumped and notified by the main thread after each log append */
  control: SharedArrayBuffer;
  currency: string;
  maxAgeMs: number;
  dedupeHorizonMs: number;
}

export type ToWorker =
  | WorkerInit
  | { type: "stop" }
  /** offsets made durable by the last checkpoint: dedupe chunks below them may be pruned */
  | { type: "committed"; offsets: Array<[number, number]> };

export type FromWorker =
  | { type: "ready"; workerIndex: number }
  | { type: "dlq"; rows: Array<{ partition: number; offset: number; value: string; reason: string }> }
  | { type: "progress"; workerIndex: number; neededFrom: Array<[number, number]>; processed: number; duplicates: number; invalid: number }
  | { type: "stopped"; workerIndex: number }
  | { type: "error"; workerIndex: number; message: string };
