// Topic setup for the distributed mode: the events topic and its dead-letter topic `<topic>.dlq`.
// Idempotent and race-safe (another instance may create the same topics at the same time); never repartitions.

import type { Admin } from "kafkajs";
import { createClient, KafkaError, toKafkaError, type KafkaConnection } from "./kafka.ts";

export interface TopicsConfig extends KafkaConnection {
  topic: string;
  partitions: number;
  /** default -1: the broker's default.replication.factor */
  replicationFactor?: number;
}

async function partitionCounts(admin: Admin, topics: string[]): Promise<Map<string, number>> {
  const existing = new Set(await admin.listTopics());
  const present = topics.filter((t) => existing.has(t));
  const counts = new Map<string, number>();
  if (present.length === 0) return counts;
  const meta = await admin.fetchTopicMetadata({ topics: present });
  for (const t of meta.topics) counts.set(t.name, t.partitions.length);
  return counts;
}

/**
 * Create `<topic>` with `partitions` partitions and `<topic>.dlq` (same count) when absent.
 * Throws a `topic_mismatch` KafkaError when `<topic>` exists with another partition count:
 * the door partitions by sessionId modulo the count, so a silent difference would split sessions.
 */
export async function ensureTopics(cfg: TopicsConfig): Promise<{ created: string[] }> {
  if (!Number.isInteger(cfg.partitions) || cfg.partitions < 1) {
    throw new KafkaError("kafka_rejected", `partitions must be a positive integer, got ${cfg.partitions}`, false);
  }
  const dlq = `${cfg.topic}.dlq`;
  const admin = createClient(cfg).admin();
  try {
    await admin.connect();
    const before = await partitionCounts(admin, [cfg.topic, dlq]);
    const missing = [cfg.topic, dlq].filter((t) => !before.has(t));
    let created: string[] = [];
    if (missing.length > 0) {
      try {
        await admin.createTopics({
          waitForLeaders: true,
          topics: missing.map((topic) => ({
            topic,
            numPartitions: cfg.partitions,
            replicationFactor: cfg.replicationFactor ?? -1,
          })),
        });
        created = missing;
      } catch (err) {
        // lost a creation race: fine as long as the winner's topics match (checked below)
        if ((err as { type?: string }).type !== "TOPIC_ALREADY_EXISTS") throw err;
      }
    }
    const after = missing.length > 0 ? await partitionCounts(admin, [cfg.topic, dlq]) : before;
    const n = after.get(cfg.topic);
    if (n === undefined) throw new KafkaError("kafka_unavailable", `topic ${cfg.topic} not visible after creation`, true);
    if (n !== cfg.partitions) {
      throw new KafkaError(
        "topic_mismatch",
        `topic ${cfg.topic} has ${n} partitions but ${cfg.partitions} are configured; ` +
          `use --partitions ${n} or another --kafka-topic (rtae never repartitions an existing topic)`,
        false,
      );
    }
    return { created };
  } catch (err) {
    throw toKafkaError(err, `cannot set up topics ${cfg.topic} and ${dlq}`);
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** Delete topics (tests and tooling); absent topics are ignored. */
export async function deleteTopics(cfg: KafkaConnection & { topics: string[] }): Promise<void> {
  const admin = createClient(cfg).admin();
  try {
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    const topics = cfg.topics.filter((t) => existing.has(t));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 10_000 });
  } catch (err) {
    throw toKafkaError(err, `cannot delete topics ${cfg.topics.join(", ")}`);
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** The end offset (next offset to be written) per partition of a topic, over one kept admin connection: lag and catch-up. */
export function createTopicEnds(cfg: KafkaConnection & { topic: string }): { fetch(): Promise<Map<number, number>>; close(): Promise<void> } {
  const admin = createClient(cfg).admin();
  let connected: Promise<void> | null = null;
  return {
    async fetch() {
      try {
        connected ??= admin.connect();
        await connected;
        const out = new Map<number, number>();
        for (const o of await admin.fetchTopicOffsets(cfg.topic)) out.set(o.partition, Number(o.high));
        return out;
      } catch (err) {
        connected = null;
        throw toKafkaError(err, `cannot read the end offsets of ${cfg.topic}`);
      }
    },
    close: () => admin.disconnect().catch(() => {}),
  };
}
