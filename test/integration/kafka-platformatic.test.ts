// The @platformatic/kafka KafkaSource against a real broker (scripts/services.sh up kafka): delivery once in
// order, start offsets from onAssigned, commits, rebalance. Topics are written with the kafkajs sink.
// Skipped only when no broker answers on 127.0.0.1:9092 outside CI; every wait is bounded by a deadline.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Kafka, logLevel } from "kafkajs";
import { createKafkaSink, deleteTopics, ensureTopics, type KafkaRecord, type KafkaSource, type KafkaSourceHandlers } from "../../src/ingest/kafka.ts";
import { createPlatformaticKafkaSource } from "../../src/ingest/kafka-source-platformatic.ts";
import { tcpReachable } from "../helpers.ts";

const BROKERS = ["127.0.0.1:9092"];
const RUN = `rtae.test.pk.${crypto.randomUUID().slice(0, 8)}`;
const P = 6;
const WAIT_MS = 30_000;
const TEST_MS = 45_000;

const up = await tcpReachable(9092);
const skip = !up && !process.env.CI;

const topics: string[] = [];
function topicName(name: string): string {
  const t = `${RUN}.${name}`;
  topics.push(t, `${t}.dlq`);
  return t;
}

const waiters = new Set<() => void>();
function poke(): void {
  for (const w of [...waiters]) w();
}
/** Resolves when `cond` holds; re-checked whenever `poke()` runs; rejects after the deadline. */
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

function recorder(starts: (p: number) => number | null = () => null) {
  const got = new Map<number, KafkaRecord[]>();
  const assignedCalls: number[][] = [];
  const revokedCalls: number[][] = [];
  const errors: unknown[] = [];
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
    onError(err) {
      errors.push(err);
    },
  };
  const count = () => [...got.values()].reduce((n, l) => n + l.length, 0);
  return { got, assignedCalls, revokedCalls, errors, handlers, count };
}

function source(topic: string, groupId: string): KafkaSource {
  return createPlatformaticKafkaSource({ brokers: BROKERS, topic, groupId, sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, maxWaitMs: 200 });
}

function makeRecords(perPartition: number, tag = ""): string[][] {
  return Array.from({ length: P }, (_, p) => Array.from({ length: perPartition + p }, (_, i) => `{"p":${p},"i":${i},"tag":"${tag}"}`));
}

async function filled(name: string, records: string[][]): Promise<string> {
  const topic = topicName(name);
  await ensureTopics({ brokers: BROKERS, topic, partitions: P });
  const sink = createKafkaSink({ brokers: BROKERS, topic, partitions: P });
  await sink.append(records, new Array(P).fill(0));
  await sink.close();
  return topic;
}

const admin = new Kafka({ clientId: "rtae-test", brokers: BROKERS, logLevel: logLevel.NOTHING }).admin();

describe.skipIf(skip)("platformatic kafka source on a real broker", () => {
  beforeAll(async () => {
    if (!up) throw new Error("CI is set but no Kafka broker answers on 127.0.0.1:9092 (bash scripts/services.sh up kafka)");
    await admin.connect();
  });

  afterAll(async () => {
    if (!up) return;
    await deleteTopics({ brokers: BROKERS, topics }).catch(() => {});
    await admin.disconnect().catch(() => {});
  });

  it("delivers every record once, in order per partition, and revokes everything on stop", async () => {
    // partition 2 carries ~2.5 MB more, so it takes several fetches
    const records = makeRecords(50);
    const big = "x".repeat(1000);
    for (let i = 0; i < 2500; i++) records[2].push(`{"p":2,"big":${i},"pad":"${big}"}`);
    const topic = await filled("order", records);
    const rec = recorder();
    const src = source(topic, `${topic}.g`);
    await src.start(rec.handlers);
    expect(src.assigned()).toEqual([0, 1, 2, 3, 4, 5]);
    const total = records.reduce((n, r) => n + r.length, 0);
    await until(() => rec.count() >= total, `${total} records`);
    await Bun.sleep(500); // a duplicate would show up here
    for (let p = 0; p < P; p++) {
      const list = rec.got.get(p) ?? [];
      expect(list.map((r) => r.value)).toEqual(records[p]);
      expect(list.map((r) => r.offset)).toEqual(records[p].map((_, i) => i));
      expect(list.every((r) => r.utf8 && r.key === null)).toBe(true);
    }
    expect(src.stats()).toMatchObject({ joins: 1, records: total });
    expect(rec.assignedCalls).toEqual([[0, 1, 2, 3, 4, 5]]);
    await src.stop();
    expect(rec.revokedCalls).toEqual([[0, 1, 2, 3, 4, 5]]);
    expect(src.assigned()).toEqual([]);
    expect(rec.errors).toEqual([]);
  }, TEST_MS);

  it("starts each partition where onAssigned says, or at the group offset for null, and commits nothing on its own", async () => {
    const records = makeRecords(10);
    const topic = await filled("seek", records);
    const groupId = `${topic}.g`;
    // partition 5: null (no committed offset: the earliest); partition 4: past the end (clamped to the end)
    const start = (p: number) => (p === 5 ? null : p === 4 ? 1000 : 2 * p + 1);
    const from = (p: number) => (p === 4 ? records[4].length : (start(p) ?? 0));
    const rec = recorder(start);
    const src = source(topic, groupId);
    await src.start(rec.handlers);
    let expected = 0;
    for (let p = 0; p < P; p++) expected += records[p].length - from(p);
    await until(() => rec.count() >= expected, `${expected} records`);
    const tail = createKafkaSink({ brokers: BROKERS, topic, partitions: P });
    await tail.append([[], [], [], [], ['{"late":4}'], []], new Array(P).fill(0));
    await tail.close();
    await until(() => rec.count() >= expected + 1, "the record appended to partition 4");
    for (let p = 0; p < P; p++) {
      const want = records[p].slice(from(p)).map((value, i) => ({ offset: from(p) + i, value }));
      if (p === 4) want.push({ offset: records[4].length, value: '{"late":4}' });
      expect((rec.got.get(p) ?? []).map((r) => ({ offset: r.offset, value: r.value }))).toEqual(want);
    }
    await src.stop();
    const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
    expect(committed[0].partitions.map((x) => x.offset)).toEqual(new Array(P).fill("-1"));
  }, TEST_MS);

  it("commits the offsets passed to commit, and a restarted source resumes from them", async () => {
    const records = makeRecords(20);
    const topic = await filled("commit", records);
    const groupId = `${topic}.g`;
    const first = recorder();
    const a = source(topic, groupId);
    await a.start(first.handlers);
    const total = records.reduce((n, r) => n + r.length, 0);
    await until(() => first.count() >= total, "every record delivered");
    const durable = new Map(records.map((r, p) => [p, Math.floor(r.length / 2) + p]));
    await a.commit(durable);
    await a.stop();
    const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
    expect(new Map(committed[0].partitions.map((x) => [x.partition, Number(x.offset)]))).toEqual(durable);

    const second = recorder();
    const b = source(topic, groupId);
    await b.start(second.handlers);
    let expected = 0;
    for (const [p, from] of durable) expected += records[p].length - from;
    await until(() => second.count() >= expected, `${expected} records after restart`);
    await Bun.sleep(300);
    for (const [p, from] of durable) {
      expect((second.got.get(p) ?? []).map((r) => r.offset)).toEqual(records[p].slice(from).map((_, i) => from + i));
    }
    // final offsets committed from onRevoked during stop() still land
    second.handlers.onRevoked = async (parts) => {
      await b.commit(new Map(parts.map((p) => [p, records[p].length])));
    };
    await b.stop();
    const after = await admin.fetchOffsets({ groupId, topics: [topic] });
    expect(after[0].partitions.sort((x, y) => x.partition - y.partition).map((x) => Number(x.offset))).toEqual(records.map((r) => r.length));
  }, TEST_MS);

  it("keeps its membership through a batch longer than the session timeout (the library heartbeats on its own)", async () => {
    const records = makeRecords(3);
    const topic = await filled("heartbeat", records);
    const rec = recorder();
    let slowDone = false;
    const onBatch = rec.handlers.onBatch;
    rec.handlers.onBatch = async (p, list, heartbeat) => {
      if (!slowDone) {
        // 1.3 x the 6 s session timeout, yielding to the event loop but never calling heartbeat()
        const end = performance.now() + 7800;
        while (performance.now() < end) await Bun.sleep(200);
        slowDone = true;
      }
      return onBatch(p, list, heartbeat);
    };
    const src = source(topic, `${topic}.g`);
    await src.start(rec.handlers);
    const total = records.reduce((n, r) => n + r.length, 0);
    await until(() => rec.count() >= total, `${total} records`);
    const sink = createKafkaSink({ brokers: BROKERS, topic, partitions: P });
    await sink.append([['{"after":1}'], [], [], [], [], []], new Array(P).fill(0));
    await sink.close();
    await until(() => rec.count() >= total + 1, "the record sent after the long batch");
    expect(src.stats().joins).toBe(1);
    expect(rec.revokedCalls).toEqual([]);
    expect((rec.got.get(0) ?? []).map((r) => r.value)).toEqual([...records[0], '{"after":1}']);
    await src.stop();
  }, TEST_MS);

  it("delivers a tombstone and invalid UTF-8 as such, without blocking the partition", async () => {
    const topic = topicName("poison");
    await ensureTopics({ brokers: BROKERS, topic, partitions: P });
    const raw = new Kafka({ clientId: "rtae-test-raw", brokers: BROKERS, logLevel: logLevel.NOTHING }).producer();
    await raw.connect();
    await raw.send({
      topic,
      acks: -1,
      messages: [
        { partition: 0, value: "not json" },
        { partition: 0, value: null },
        { partition: 0, key: "k", value: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) },
        { partition: 0, value: '{"ok":true}' },
      ],
    });
    await raw.disconnect();
    const rec = recorder();
    const src = source(topic, `${topic}.g`);
    await src.start(rec.handlers);
    await until(() => (rec.got.get(0)?.length ?? 0) >= 4, "four records on partition 0");
    const got = rec.got.get(0)!;
    expect(got.map((r) => r.offset)).toEqual([0, 1, 2, 3]);
    expect(got.map((r) => r.value)).toEqual(["not json", null, "{\uFFFD\uFFFD}", '{"ok":true}']);
    expect(got.map((r) => r.utf8)).toEqual([true, true, false, true]);
    expect(got.map((r) => r.key)).toEqual([null, null, "k", null]);
    await src.stop();
  }, TEST_MS);

  it("splits six partitions between two members and gives all six back to the survivor without re-delivery", async () => {
    const firstRecords = makeRecords(5, "a");
    const topic = await filled("rebalance", firstRecords);
    const groupId = `${topic}.g`;
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
    const first = firstRecords.reduce((n, r) => n + r.length, 0);
    await until(() => a.count() >= first, "A consumed the first records");

    await srcB.start(b.handlers);
    await until(() => srcA.assigned().length === 3 && srcB.assigned().length === 3 && a.revokedCalls.length === 1, "a 3/3 split");
    expect([...srcA.assigned(), ...srcB.assigned()].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(a.revokedCalls[0]).toEqual(srcB.assigned());
    const bParts = srcB.assigned();
    await srcB.stop();
    expect(b.revokedCalls).toEqual([bParts]);
    await until(() => srcA.assigned().length === 6, "the survivor owns all six");
    expect(a.assignedCalls).toEqual([[0, 1, 2, 3, 4, 5], bParts]);

    const second = makeRecords(2, "b");
    const sink = createKafkaSink({ brokers: BROKERS, topic, partitions: P });
    await sink.append(second, new Array(P).fill(0));
    await sink.close();
    await until(() => a.got.size === P && [...a.got].every(([p, l]) => l.length >= firstRecords[p].length + second[p].length), "records after takeover");
    await Bun.sleep(300);
    for (let p = 0; p < P; p++) {
      expect((a.got.get(p) ?? []).map((r) => r.offset)).toEqual(Array.from({ length: firstRecords[p].length + second[p].length }, (_, i) => i));
    }
    await srcA.stop();
  }, 2 * TEST_MS);
});
