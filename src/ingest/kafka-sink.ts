// The door's Sink on Kafka: each partition's records go to that exact Kafka partition (the door already
// partitioned by sessionId), idempotent producer, acks=all; append resolves only once the broker acknowledged.

import { Partitioners, type Message, type Producer, type TopicMessages } from "kafkajs";
import type { Sink } from "./door.ts";
import { createClient, toKafkaError, type KafkaConnection } from "./kafka.ts";

export interface KafkaSinkConfig extends KafkaConnection {
  topic: string;
  /** partitions of `topic` (the door's partition count; ensureTopics checks they agree) */
  partitions: number;
  /** retries of one send before append fails with a retriable error (bounded: a request waits on it) */
  retries?: number;
}

export interface DeadLetterRow {
  partition: number;
  offset: number;
  value: string;
  reason: string;
}

export interface KafkaSink extends Sink {
  append(byPartition: string[][], maxTime: number[]): Promise<void>;
  /** Send rejected records to `<topic>.dlq`, keyed by source partition, with rtae-* headers. */
  deadLetter(rows: DeadLetterRow[]): Promise<void>;
  close(): Promise<void>;
}

// the broker's message.max.bytes (1 MiB default) bounds one partition's record batch in a request
const CHUNK_BYTES = 900 * 1024;
const RECORD_OVERHEAD = 32;

/**
 * Create the Kafka sink. The producer connects lazily on the first append and is replaced after a
 * failed send: kafkajs keeps the idempotence sequence numbers of a send it gave up on, and a fresh
 * producer id is the way out of the OUT_OF_ORDER_SEQUENCE_NUMBER loop that would follow.
 */
export function createKafkaSink(cfg: KafkaSinkConfig): KafkaSink {
  const kafka = createClient(cfg);
  const dlqTopic = `${cfg.topic}.dlq`;
  let producer: Producer | null = null;
  let connecting: Promise<Producer> | null = null;
  let closed = false;

  function get(): Promise<Producer> {
    if (producer) return Promise.resolve(producer);
    if (!connecting) {
      const p = kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        // records carry their partition; DLQ rows hash their key the way Java clients do (murmur2)
        createPartitioner: Partitioners.DefaultPartitioner,
        retry: { retries: cfg.retries ?? 5, initialRetryTime: 100, maxRetryTime: 2000 },
      });
      connecting = p.connect().then(
        () => {
          producer = p;
          connecting = null;
          return p;
        },
        (err) => {
          connecting = null;
          throw err;
        },
      );
    }
    return connecting;
  }

  async function send(topicMessages: TopicMessages[]): Promise<void> {
    if (closed) throw toKafkaError(new Error("sink is closed"), "append");
    const p = await get();
    try {
      await p.sendBatch({ topicMessages, acks: -1 });
    } catch (err) {
      if (producer === p) {
        producer = null;
        p.disconnect().catch(() => {});
      }
      throw err;
    }
  }

  return {
    partitions: cfg.partitions,
    async append(byPartition) {
      // round k carries chunk k of every partition: one request per round, each partition's batch bounded
      const chunks: Message[][][] = [];
      for (let p = 0; p < byPartition.length; p++) {
        const records = byPartition[p];
        let k = 0;
        let bytes = 0;
        for (const value of records) {
          const size = value.length * 3 + RECORD_OVERHEAD; // UTF-16 length x 3 bounds the UTF-8 size
          if (bytes > 0 && bytes + size > CHUNK_BYTES) {
            k++;
            bytes = 0;
          }
          bytes += size;
          (chunks[k] ??= [])[p] ??= [];
          chunks[k][p].push({ partition: p, value });
        }
      }
      try {
        for (const round of chunks) {
          const messages: Message[] = [];
          for (const part of round) if (part) for (const m of part) messages.push(m);
          await send([{ topic: cfg.topic, messages }]);
        }
      } catch (err) {
        throw toKafkaError(err, `cannot append to ${cfg.topic}`);
      }
    },
    async deadLetter(rows) {
      if (rows.length === 0) return;
      const messages: Message[] = rows.map((r) => ({
        key: String(r.partition), // one source partition's rejects stay in order
        value: r.value,
        headers: {
          "rtae-reason": r.reason,
          "rtae-source-partition": String(r.partition),
          "rtae-source-offset": String(r.offset),
        },
      }));
      try {
        await send([{ topic: dlqTopic, messages }]);
      } catch (err) {
        throw toKafkaError(err, `cannot dead-letter to ${dlqTopic}`);
      }
    },
    async close() {
      closed = true;
      const p = producer ?? (connecting ? await connecting.catch(() => null) : null);
      producer = null;
      await p?.disconnect();
    },
  };
}
