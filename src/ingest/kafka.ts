// Kafka adapters' shared ground: the typed error, the kafkajs client factory and the public re-exports.
// kafkajs (maintenance mode) stays behind these files: nothing outside them imports it.

import { Kafka, logLevel, type KafkaConfig, type LogEntry } from "kafkajs";
import { logger } from "../log.ts";

export type KafkaErrorCode =
  | "kafka_unavailable" // broker unreachable, timed out or refused for a transient reason: retry
  | "kafka_rejected" // the broker refused the request for good (record too large, bad config)
  | "topic_mismatch" // the topic exists with another partition count than configured
  | "not_running"; // the source was used before start() or after stop()

/** An error of the Kafka adapters; `retriable` says whether the same call may succeed later. */
export class KafkaError extends Error {
  readonly code: KafkaErrorCode;
  readonly retriable: boolean;
  constructor(code: KafkaErrorCode, message: string, retriable: boolean, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "KafkaError";
    this.code = code;
    this.retriable = retriable;
  }
}

/** Wrap whatever kafkajs threw: retriable unless kafkajs says it is not (its own `retriable` flag). */
export function toKafkaError(err: unknown, what: string): KafkaError {
  if (err instanceof KafkaError) return err;
  const e = err as { message?: string; retriable?: boolean; name?: string; cause?: { retriable?: boolean } };
  const retriable = e?.retriable !== false || e?.name === "KafkaJSNumberOfRetriesExceeded";
  return new KafkaError(
    retriable ? "kafka_unavailable" : "kafka_rejected",
    `${what}: ${e?.message ?? String(err)}`,
    retriable,
    err,
  );
}

/** Connection settings every adapter takes. */
export interface KafkaConnection {
  brokers: string[];
  clientId?: string;
  /** per-request timeout (ms); kafkajs' default of 30 s is too long for a request waiting on a 202 */
  requestTimeoutMs?: number;
  /** threshold for kafkajs' own lines (default warn); they go through our JSON logger, namespace `kafka.<Ns>` */
  logLevel?: "nothing" | "error" | "warn" | "info" | "debug";
}

const LEVELS = { nothing: logLevel.NOTHING, error: logLevel.ERROR, warn: logLevel.WARN, info: logLevel.INFO, debug: logLevel.DEBUG };

// kafkajs logs every error response of the protocol at ERROR, including the REBALANCE_IN_PROGRESS that a
// rebalance is made of; those reach us as thrown errors, so its Connection lines are demoted to debug
function logCreator() {
  return ({ namespace, level, log }: LogEntry) => {
    const { message, timestamp: _t, ...fields } = log;
    const l = logger(`kafka.${namespace || "client"}`);
    // the idempotent producer's warning about bounded retries: bounded on purpose (see kafka-sink.ts)
    if (namespace === "Connection" || level >= logLevel.DEBUG || message.startsWith("Limiting retries")) l.debug(message, fields);
    else if (level === logLevel.ERROR) l.error(message, fields);
    else if (level === logLevel.WARN) l.warn(message, fields);
    else l.info(message, fields);
  };
}

// kafkajs arms one timer with a negative delay per connection (its request queue computes it from -1); Bun
// prints a TimeoutNegativeWarning for each, noise in every log. Process warnings go through our logger instead,
// except that one.
let warningsRouted = false;
function routeWarnings(): void {
  if (warningsRouted) return;
  warningsRouted = true;
  const warnings = logger("process");
  process.removeAllListeners("warning");
  process.on("warning", (w: Error) => {
    if (w.name !== "TimeoutNegativeWarning") warnings.warn(w.message, { warning: w.name });
  });
}

/** One kafkajs client per adapter, so closing one never disconnects another. */
export function createClient(c: KafkaConnection, extra: Partial<KafkaConfig> = {}): Kafka {
  routeWarnings();
  return new Kafka({
    clientId: c.clientId ?? "rtae",
    brokers: c.brokers,
    connectionTimeout: 3000,
    requestTimeout: c.requestTimeoutMs ?? 10_000,
    logLevel: LEVELS[c.logLevel ?? "warn"],
    logCreator,
    // kafkajs' default backoff (300 ms doubling, 5 retries) keeps a caller waiting ~10 s on a dead broker
    retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 5 },
    ...extra,
  });
}

export { ensureTopics, deleteTopics, type TopicsConfig } from "./kafka-admin.ts";
export { createKafkaSink, type KafkaSink, type KafkaSinkConfig, type DeadLetterRow } from "./kafka-sink.ts";
export {
  createKafkaSource,
  type KafkaSource,
  type KafkaSourceConfig,
  type KafkaSourceHandlers,
  type KafkaRecord,
} from "./kafka-source.ts";
