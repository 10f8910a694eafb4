// Messages between the main thread and the ingest workers. Data moves through SharedArrayBuffer
// rings; these messages only set up, wake, report dead letters, release string ids and stop.

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
  /** Kafka mode: this worker is one member of the consumer group; `partitions` is empty and assignments come from Kafka */
  kafka?: {
    brokers: string[];
    clientId: string;
    topic: string;
    groupId: string;
    sessionTimeoutMs?: number;
    heartbeatIntervalMs?: number;
    logLevel?: "nothing" | "error" | "warn" | "info" | "debug";
  };
}

/** Where an assigned partition starts: the checkpoint's next offset, and the offset its dedupe re-scan starts at. */
export interface PartitionStart {
  partition: number;
  from: number;
  dedupeFrom: number;
}

export type ToWorker =
  | WorkerInit
  | { type: "stop" }
  /** offsets made durable by the last checkpoint: dedupe chunks below them may be pruned */
  | { type: "committed"; offsets: Array<[number, number]> }
  /** answer to an "assigned" request (Kafka mode); `error` set when the state could not be loaded (the worker asks again) */
  | { type: "starts"; requestId: number; starts: PartitionStart[]; error?: string }
  /**
   * Release of string ids, step 1: nothing but the worker's translation needs these ids any more. The worker
   * forgets their strings (a string seen again gets a new id and dictionary record), publishes every record
   * written so far and answers "forgot". It does not reuse the ids until "reusable".
   */
  | { type: "forget"; ids: number[] }
  /** step 3: the main thread applied every record that used these ids and dropped their translations */
  | { type: "reusable"; ids: number[] };

export type FromWorker =
  | { type: "ready"; workerIndex: number }
  | { type: "dlq"; rows: Array<{ partition: number; offset: number; value: string; reason: string }> }
  | { type: "progress"; workerIndex: number; neededFrom: Array<[number, number]>; processed: number; duplicates: number; invalid: number }
  | { type: "stopped"; workerIndex: number }
  /** Kafka mode: the group gave this worker partitions; the main thread loads their state and answers with "starts" */
  | { type: "assigned"; workerIndex: number; requestId: number; partitions: number[] }
  /** Kafka mode: partitions taken away; every record of them this worker produced is already published */
  | { type: "revoked"; workerIndex: number; partitions: number[] }
  /** step 2 of a release: no record written from now on uses these ids, and every earlier one is published */
  | { type: "forgot"; workerIndex: number; ids: number[] }
  /** a non-fatal problem worth logging (Kafka connection trouble, a failed offset commit) */
  | { type: "warn"; workerIndex: number; message: string }
  | { type: "error"; workerIndex: number; message: string };
