// Public surface of ingest: the door, the embedded log, the worker pool and the event contract.
export * from "./event-types.ts";
export { parseBody, toWire, validateEvent, type ValidateContext, type Validation } from "./event.ts";
export {
  TIME_MAX,
  TIME_MIN,
  parseTimestamp,
  type TimestampCode,
  type TimestampOptions,
  type TimestampResult,
} from "./timestamp.ts";
export { createDoor, type Door, type IngestResult, type Sink } from "./door.ts";
export { openLogWriter, openLogReader, partitionOf, type LocalLogWriter, type LocalLogReader } from "./local-log.ts";
export { startWorkerPool, type WorkerPool } from "./worker-pool.ts";
export { createRingBuffer, ringConsumer, ringProducer } from "./ring-buffer.ts";
export * from "./kafka.ts";
