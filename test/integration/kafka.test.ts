// Kafka adapters against a real broker (scripts/services.sh up kafka): topics, sink, source, rebalance, DLQ.
// Skipped only when no broker answers on 127.0.0.1:9092 outside CI; every wait is bounded by a deadline.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Kafka, logLevel } from "kafkajs";
import {
  createKafkaSink,
  createKafkaSource,
  deleteTopics,
  ensureTopics,
  KafkaError,
  type KafkaRecord,
  type KafkaSource,
  type KafkaSourceHandlers,
} from "../../src/ingest/kafka.ts";
import { tcpReachable } from "../helpers.ts";

const BROKERS = ["127.0.0.1:9092"];
const RUN = `rtae.test.${crypto.randomUUID().slice(0, 8)}`;
const P = 6;
const WAIT_MS = 30_000;
// a test may wait on a rebalance or two, each bounded by WAIT_MS
const TEST_MS = 45_000;

const reachable = () => tcpReachable(9092);
const up = await reachable();
const skip = !up && !process.env.CI;

// ---------------------------------------------------------------- helpers

const topics: string[] = [];
function topicName(name: string): string {
  const t = `${RUN}.${name}`;
  topics.push(t, `${t}.dlq`);
  return t;
}

/** Resolves when `cond` holds; re-checked whenever `poke()` runs; rejects after the deadline. */
const waiters = new Set<() => void>();
function poke(): void {
  for (const w of [...waiters]) w();
}
function until(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  if (cond()) return Promise.resolve();
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  const check = () => {
    if (!cond()) return;
    waiters.delete(check);
    clearTimeout(timer);
    resolve();
  };
  const timer = setTimeout(() => {
    waiters.delete(check);
    reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
  }, ms);
  waiters.add(check);
  return promise;
}

/** A source whose handlers record everything; `starts` answers onAssigned (default null = group offset). */
function recorder(starts: (p: number) => number | null = () => null) {
  const got = new Map<number, KafkaRecord[]>();
  const assignedCalls: number[][] = [];
  const revokedCalls: number[][] = [];
  const handlers: KafkaSourceHandlers = {
    async onAssigned(parts) {
      assignedCalls.push([...parts].sort((a, b) => a - b));
      poke();
      return new Map(parts.map((p) => [p, starts(p)]));
    },
    async onRevoked(parts) {
      revokedCalls.push([...parts].sort((a, b) => a - b));
      poke();
    },
    async onBatch(p, records) {
      const list = got.get(p) ?? [];
      list.push(...records);
      got.set(p, list);
      poke();
    },
  };
  const count = () => [...got.values()].reduce((n, l) => n + l.length, 0);
  return { got, assignedCalls, revokedCalls, handlers, count };
}

function source(topic: string, groupId: string): KafkaSource {
  return createKafkaSource({ brokers: BROKERS, topic, groupId, sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, maxWaitMs: 200 });
}

/** records[p] = the values for partition p: `p<p>-<i>` plus some padding to make batches non-trivial */
function makeRecords(perPartition: number, tag = ""): string[][] {
  return Array.from({ length: P }, (_, p) => Array.from({ length: perPartition + p }, (_, i) => `{"p":${p},"i":${i},"tag":"${tag}"}`));
}

const admin = new Kafka({ clientId: "rtae-test", brokers: BROKERS, logLevel: logLevel.NOTHING }).admin();

async function highWatermarks(topic: string): Promise<number[]> {
  const offsets = await admin.fetchTopicOffsets(topic);
  const hw = new Array<number>(P).fill(-1);
  for (const o of offsets) hw[o.partition] = Number(o.high);
  return hw;
}

// ---------------------------------------------------------------- tests

describe.skipIf(skip)("kafka adapters on a real broker", () => {
  beforeAll(async () => {
    if (!up) throw new Error("CI is set but no Kafka broker answers on 127.0.0.1:9092 (bash scripts/services.sh up kafka)");
    await admin.connect();
  });

  afterAll(async () => {
    if (!up) return;
    await deleteTopics({ brokers: BROKERS, topics }).catch(() => {});
    await admin.disconnect().catch(() => {});
  });

  it("creates the topic and its dead-letter topic with the configured partitions, idempotently", async () => {
    const topic = topicName("admin");
    const first = await ensureTopics({ brokers: BROKERS, topic, partitions: P, replicationFactor: 1 });
    expect(first.created.sort()).toEqual([topic, `${topic}.dlq`].sort());
    const meta = await admin.fetchTopicMetadata({ topics: [topic, `${topic}.dlq`] });
    const counts = Object.fromEntries(meta.topics.map((t) => [t.name, t.partitions.length]));
    expect(counts).toEqual({ [topic]: P, [`${topic}.dlq`]: P });

    const again = await ensureTopics({ brokers: BROKERS, topic, partitions: P });
    expect(again.created).toEqual([]);

    const mismatch = await ensureTopics({ brokers: BROKERS, topic, partitions: 4 }).catch((e: unknown) => e);
    expect(mismatch).toBeInstanceOf(KafkaError);
    expect((mismatch as KafkaError).code).toBe("topic_mismatch");
    expect((mismatch as KafkaError).message).toContain(`has ${P} partitions but 4`);
  }, TEST_MS);

  it("lands each partition's records in exactly that partition, acknowledged before append resolves, and delivers each once in order", async () => {
    const topic = topicName("sink");
    await ensureTopics({ brokers: BROKERS, topic, partitions: P });
    const sink = createKafkaSink({ brokers: BROKERS, topic, partitions: P });
    const records = makeRecords(50);
    // partition 2 gets ~2.5 MB more so one append needs several produce rounds (1 MiB batch limit)
    const big = "x".repeat(1000);
    for (let i = 0; i < 2500; i++) records[2].push(`{"p":2,"big":${i},"pad":"${big}"}`);
    const t0 = performance.now();
    await sink.append(records, new Array(P).fill(0));
    const appendMs = performance.now() - t0;
    // acknowledged means already visible in the high watermarks, with no wait
    expect(await highWatermarks(topic)).toEqual(records.map((r) => r.length));
    await sink.close();

    const rec = recorder();
    const src = source(topic, `${topic}.g`);
    const t1 = performance.now();
    await src.start(rec.handlers);
    const joinMs = performance.now() - t1;
    const total = records.reduce((n, r) => n + r.length, 0);
    await until(() => rec.count() >= total, `${total} records`);
    for (let p = 0; p < P; p++) {
      const list = rec.got.get(p) ?? [];
      expect(list.map((r) => r.value)).toEqual(records[p]);
      expect(list.map((r) => r.offset)).toEqual(records[p].map((_, i) => i));
    }
    expect(rec.assignedCalls).toEqual([[0, 1, 2, 3, 4, 5]]);
    await src.stop();
    expect(rec.revokedCalls).toEqual([[0, 1, 2, 3, 4, 5]]);
    console.log(`[kafka] append of ${total} records (${P} partitions, 3 rounds): ${appendMs.toFixed(0)} ms; first join: ${joinMs.toFixed(0)} ms`);
  }, TEST_MS);

  it("resumes a restarted consumer from the offsets passed to commit, not from what was delivered", async () => {
    const topic = topicName("commit");
    await ensureTopics({ brokers: BROKERS, topic, partitions: P });
    const sink = createKafkaSink({ brokers: BROKERS, topic, partitions: P });
    const records = makeRecords(20);
    await sink.append(records, new Array(P).fill(0));
    await sink.close();
    const groupId = `${topic}.g`;

    const first = recorder();
    const a = source(topic, groupId);
    await a.start(first.handlers);
    const total = records.reduce((n, r) => n + r.length, 0);
    await until(() => first.count() >= total, "every record delivered");
    // only the first half of each partition is "durable" for the caller
    const durable = new Map(records.map((r, p) => [p, Math.floor(r.length / 2) + p]));
    await a.commit(durable);
    await a.stop();

    const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
    const byPartition = new Map(committed[0].partitions.map((x) => [x.partition, Number(x.offset)]));
    expect(byPartition).toEqual(durable);

    const second = recorder();
    const b = source(topic, groupId);
    await b.start(second.handlers);
    let expected = 0;
    for (const [p, from] of durable) expected += records[p].length - from;
    await until(() => second.count() >= expected, `${expected} records after restart`);
    for (const [p, from] of durable) {
      expect((second.got.get(p) ?? []).map((r) => r.offset)).toEqual(records[p].slice(from).map((_, i) => from + i));
    }
    await b.stop();
  }, TEST_MS);

  it("starts each partition where onAssigned says, or at the group offset for null", async () => {
    const topic = topicName("seek");
    await ensureTopics({ brokers: BROKERS, topic, partitions: P });
    const sink = createKafkaSink({ brokers: BROKERS, topic, partitions: P });
    const records = makeRecords(10);
    await sink.append(records, new Array(P).fill(0));
    await sink.close();
    // partition 5: null (no committed offset, so the earliest); partition 4: past the end (clamped to the
    // end, no reset commit); others: 2p+1
    const start = (p: number) => (p === 5 ? null : p === 4 ? 1000 : 2 * p + 1);
    const from = (p: number) => (p === 4 ? records[4].length : (start(p) ?? 0));
    const rec = recorder(start);
    const src = source(topic, `${topic}.g`);
    await src.start(rec.handlers);
    let expected = 0;
    for (let p = 0; p < P; p++) expected += records[p].length - from(p);
    await until(() => rec.count() >= expected, `${expected} records`);
    const tail = createKafkaSink({ brokers: BROKERS, topic, partitions: P });
    await tail.append([[], [], [], [], ["{\"late\":4}"], []], new Array(P).fill(0));
    await tail.close();
    await until(() => rec.count() >= expected + 1, "the record appended to partition 4");
    for (let p = 0; p < P; p++) {
      const want = records[p].slice(from(p)).map((value, i) => ({ offset: from(p) + i, value }));
      if (p === 4) want.push({ offset: records[4].length, value: "{\"late\":4}" });
      expect((rec.got.get(p) ?? []).map((r) => ({ offset: r.offset, value: r.value }))).toEqual(want);
    }
    await src.stop();
    // nothing was committed: the adapter commits only through commit(), never on a seek or a reset
    const committed = await admin.fetchOffsets({ groupId: `${topic}.g`, topics: [topic] });
    expect(committed[0].partitions.map((x) => x.offset)).toEqual(new Array(P).fill("-1"));
  }, TEST_MS);

  it("keeps its group membership through a batch handler longer than the session timeout that heartbeats", async () => {
    const topic = topicName("heartbeat");
    await ensureTopics({ brokers: BROKERS, topic, partitions: P });
    const sink = createKafkaSink({ brokers: BROKERS, topic, partitions: P });
    const records = makeRecords(3);
    await sink.append(records, new Array(P).fill(0));
    const rec = recorder();
    let slowDone = false;
    let heartbeats = 0;
    const onBatch = rec.handlers.onBatch;
    rec.handlers.onBatch = async (p, list, heartbeat) => {
      if (!slowDone) {
        // simulated work: 1.3 x the 6 s session timeout, heartbeating as a real handler would
        const until = performance.now() + 7800;
        while (performance.now() < until) {
          await Bun.sleep(200);
          await heartbeat();
          heartbeats++;
        }
        slowDone = true;
      }
      return onBatch(p, list, heartbeat);
    };
    const src = source(topic, `${topic}.g`);
    await src.start(rec.handlers);
    const total = records.reduce((n, r) => n + r.length, 0);
    await until(() => rec.count() >= total, `${total} records`);
    // prove the group is still live after the long batch: a new record arrives without a rejoin
    await sink.append([["{\"after\":1}"], [], [], [], [], []], new Array(P).fill(0));
    await until(() => rec.count() >= total + 1, "the record sent after the long batch");
    expect(heartbeats).toBeGreaterThan(20);
    expect(src.stats().joins).toBe(1);
    expect(rec.revokedCalls).toEqual([]);
    for (let p = 0; p < P; p++) {
      const want = p === 0 ? [...records[p], "{\"after\":1}"] : records[p];
      expect((rec.got.get(p) ?? []).map((r) => r.value)).toEqual(want);
    }
    await src.stop();
    await sink.close();
  }, TEST_MS);

  it("splits six partitions between two consumers and gives all six to the survivor when one stops", async () => {
    const topic = topicName("rebalance");
    await ensureTopics({ brokers: BROKERS, topic, partitions: P });
    const sink = createKafkaSink({ brokers: BROKERS, topic, partitions: P });
    const groupId = `${topic}.g`;
    await sink.append(makeRecords(5, "a"), new Array(P).fill(0));

    // A answers onAssigned with the positions it reached (its "checkpoint"), so nothing is ever re-delivered
    const aNext = new Map<number, number>();
    const a = recorder((p) => aNext.get(p) ?? null);
    const onBatchA = a.handlers.onBatch;
    a.handlers.onBatch = async (p, list, hb) => {
      aNext.set(p, list[list.length - 1].offset + 1);
      return onBatchA(p, list, hb);
    };
    const b = recorder();
    const srcA = source(topic, groupId);
    const srcB = source(topic, groupId);
    await srcA.start(a.handlers);
    const first = makeRecords(5, "a").reduce((n, r) => n + r.length, 0);
    await until(() => a.count() >= first, "A consumed the first records");

    const t0 = performance.now();
    await srcB.start(b.handlers);
    await until(() => srcA.assigned().length === 3 && srcB.assigned().length === 3 && a.revokedCalls.length === 1, "a 3/3 split");
    const splitMs = performance.now() - t0;
    expect([...srcA.assigned(), ...srcB.assigned()].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(a.revokedCalls[0]).toEqual(srcB.assigned());
    expect(b.assignedCalls).toEqual([srcB.assigned()]);
    const bParts = srcB.assigned();

    const t1 = performance.now();
    await srcB.stop();
    expect(b.revokedCalls).toEqual([bParts]);
    await until(() => srcA.assigned().length === 6, "the survivor owns all six");
    const takeoverMs = performance.now() - t1;
    expect(a.assignedCalls).toEqual([[0, 1, 2, 3, 4, 5], bParts]);

    // new records on every partition reach the survivor, and nothing it had is delivered twice
    const second = makeRecords(2, "b");
    await sink.append(second, new Array(P).fill(0));
    const firstRecords = makeRecords(5, "a");
    await until(() => [...a.got].every(([p, l]) => l.length >= firstRecords[p].length + second[p].length) && a.got.size === P, "records after takeover");
    for (let p = 0; p < P; p++) {
      const offsets = (a.got.get(p) ?? []).map((r) => r.offset);
      expect(offsets).toEqual(Array.from({ length: firstRecords[p].length + second[p].length }, (_, i) => i));
    }
    await srcA.stop();
    await sink.close();
    console.log(`[kafka] second member joined and split 3/3 in ${splitMs.toFixed(0)} ms; takeover after stop in ${takeoverMs.toFixed(0)} ms`);
  }, 2 * TEST_MS);

  it("delivers poison records without blocking the partition and dead-letters them with their headers", async () => {
    const topic = topicName("poison");
    await ensureTopics({ brokers: BROKERS, topic, partitions: P });
    const sink = createKafkaSink({ brokers: BROKERS, topic, partitions: P });
    // bytes the door would never write: a tombstone and invalid UTF-8, from a foreign producer
    const raw = new Kafka({ clientId: "rtae-test-raw", brokers: BROKERS, logLevel: logLevel.NOTHING }).producer();
    await raw.connect();
    await sink.append([["not json", ""], [], [], [], [], []], new Array(P).fill(0));
    await raw.send({ topic, acks: -1, messages: [{ partition: 0, value: null }, { partition: 0, value: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) }] });
    await sink.append([["{\"ok\":true}"], [], [], [], [], []], new Array(P).fill(0));
    await raw.disconnect();

    const rec = recorder();
    const src = source(topic, `${topic}.g`);
    await src.start(rec.handlers);
    await until(() => (rec.got.get(0)?.length ?? 0) >= 5, "five records on partition 0");
    const got = rec.got.get(0)!;
    expect(got.map((r) => r.offset)).toEqual([0, 1, 2, 3, 4]);
    expect(got.map((r) => r.value)).toEqual(["not json", "", null, "{\uFFFD\uFFFD}", "{\"ok\":true}"]);
    expect(got.map((r) => r.utf8)).toEqual([true, true, true, false, true]);
    await src.stop();

    // the caller's verdict: everything that is not a JSON object goes to the DLQ
    const rows = got.flatMap((r) => {
      let reason: string | null = null;
      if (r.value === null) reason = "null value";
      else if (!r.utf8) reason = "invalid UTF-8";
      else {
        try {
          JSON.parse(r.value);
        } catch {
          reason = "malformed JSON";
        }
      }
      return reason === null ? [] : [{ partition: 0, offset: r.offset, value: r.value ?? "", reason }];
    });
    expect(rows.map((r) => r.offset)).toEqual([0, 1, 2, 3]);
    await sink.deadLetter(rows);
    await sink.close();

    const seen: Array<{ value: string; headers: Record<string, string> }> = [];
    const c = new Kafka({ clientId: "rtae-test-dlq", brokers: BROKERS, logLevel: logLevel.NOTHING }).consumer({ groupId: `${topic}.dlq.g`, maxWaitTimeInMs: 200 });
    await c.connect();
    await c.subscribe({ topic: `${topic}.dlq`, fromBeginning: true });
    await c.run({
      eachMessage: async ({ message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        seen.push({ value: message.value?.toString("utf8") ?? "", headers });
        poke();
      },
    });
    await until(() => seen.length >= rows.length, `${rows.length} dead letters`);
    await c.disconnect();
    expect(seen).toEqual(
      rows.map((r) => ({
        value: r.value,
        headers: { "rtae-reason": r.reason, "rtae-source-partition": "0", "rtae-source-offset": String(r.offset) },
      })),
    );
  }, TEST_MS);
});

describe("kafka adapters without a broker", () => {
  it("fails an append and a topic setup with a retriable KafkaError when no broker answers", async () => {
    const nowhere = ["127.0.0.1:1"];
    const sink = createKafkaSink({ brokers: nowhere, topic: "rtae.none", partitions: 2, logLevel: "nothing" });
    const t0 = performance.now();
    const err = await sink.append([["{}"], []], [0, 0]).catch((e: unknown) => e);
    const ms = performance.now() - t0;
    expect(err).toBeInstanceOf(KafkaError);
    expect((err as KafkaError).code).toBe("kafka_unavailable");
    expect((err as KafkaError).retriable).toBe(true);
    expect(ms).toBeLessThan(15_000);
    await sink.close();
    const setup = await ensureTopics({ brokers: nowhere, topic: "rtae.none", partitions: 2, logLevel: "nothing" }).catch((e: unknown) => e);
    expect(setup).toBeInstanceOf(KafkaError);
    expect((setup as KafkaError).retriable).toBe(true);
  }, TEST_MS);
});
