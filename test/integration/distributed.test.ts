// Distributed mode against real Kafka, Cassandra and Redis: rtae processes killed with SIGKILL mid-stream,
// restarted, and a second instance taking over a dead one's partitions; every answer is compared with
// totals computed here over the events. Poison records go to the DLQ while their partition keeps flowing.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Kafka, logLevel } from "kafkajs";
import { createGenerator, perturb, type WireEvent } from "../../src/generator/index.ts";
import { deleteTopics } from "../../src/ingest/kafka-admin.ts";
import { expectedOf } from "../ground-truth.ts";
import { tcpReachable } from "../helpers.ts";
import { spawnRtae, type RtaeProcess } from "../rtae-process.ts";
import { startPrivateRedis } from "../private-redis.ts";
import { startTcpProxy } from "../tcp-proxy.ts";

const ROOT = `${import.meta.dir}/../..`;
const BROKERS = ["127.0.0.1:9092"];
const up = (await tcpReachable(9092)) && (await tcpReachable(9042)) && (await tcpReachable(6379));
if (!up && process.env.CI) throw new Error("Kafka (9092), Cassandra (9042) and Redis (6379) must run under CI: bash scripts/services.sh up");
const d = up ? describe : describe.skip;

const run = Date.now().toString(36);
const topics: string[] = [];
const all: Instance[] = [];

/** Names for one isolated deployment: its own topic, group, keyspace and Redis prefix. */
async function deployment(name: string, over: { redisUrl?: string; cassandra?: string } = {}) {
  const id = `${name}_${run}`;
  const keyspace = `rtae_${id}`.slice(0, 48);
  const topic = `rtae.${id}`;
  topics.push(topic, `${topic}.dlq`);
  const m = Bun.spawnSync(
    [process.execPath, "src/main.ts", "migrate", "--cassandra-contact-points", "127.0.0.1:9042", "--cassandra-keyspace", keyspace, "--log-level", "error"],
    { cwd: ROOT, stderr: "pipe" },
  );
  if (m.exitCode !== 0) throw new Error(`migrate failed: ${m.stderr.toString()}`);
  return {
    topic,
    args: [
      "--kafka-brokers", BROKERS.join(","), "--kafka-topic", topic, "--consumer-group", `g.${id}`,
      "--cassandra-contact-points", over.cassandra ?? "127.0.0.1:9042", "--cassandra-keyspace", keyspace,
      "--redis-url", over.redisUrl ?? "redis://127.0.0.1:6379", "--redis-prefix", `${id}:`,
      "--partitions", "6", "--workers", "2", "--checkpoint-interval", "200ms", "--log-level", "error",
      // the test is about exactly-once: a taken-over partition's backlog must never count as late
      "--allowed-lateness", "5m",
    ],
  };
}

/** One rtae process over restarts (same port and data dir), with the calls these tests make. */
class Instance {
  private proc: RtaeProcess | null = null;
  private last: RtaeProcess | null = null;
  constructor(private readonly args: string[]) {
    all.push(this);
  }
  get url(): string {
    return this.last!.url;
  }
  async start(): Promise<void> {
    this.proc = this.last ? this.last.respawn() : spawnRtae(this.args);
    this.last = this.proc;
    await this.proc.ready(60_000);
  }
  async kill9(): Promise<void> {
    await this.proc?.kill9();
    this.proc = null;
  }
  async stop(): Promise<void> {
    await this.proc?.stop(30_000);
    this.proc = null;
  }
  removeDataDir(): void {
    this.last?.removeDataDir();
  }
  send(batch: WireEvent[]): Promise<Response> {
    return fetch(`${this.url}/api/events`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: batch.map((e) => JSON.stringify(e)).join("\n"),
    });
  }
  async summary(from: number, to: number): Promise<any> {
    return (await fetch(`${this.url}/api/metrics/summary?from=${from}&to=${to}`)).json();
  }
}

/** Send until acknowledged: a 503 or a dropped connection (instance killed) is retried, maybe elsewhere. */
async function sendAcked(pick: () => Instance, batch: WireEvent[]): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      const r = await pick().send(batch);
      if (r.status === 202) return;
    } catch {
      // killed mid-request: its outcome is unknown, so the batch is sent again (dedupe makes that safe)
    }
    await Bun.sleep(100);
  }
  throw new Error("batch never acknowledged");
}

function dataset(seed: number, n: number) {
  // dense event time (the whole set spans about a minute): a backlog replayed after a takeover stays within lateness
  const gen = createGenerator({ seed, rate: 500, startTime: Date.now() - 5 * 60_000, diurnal: false, bursts: false, products: 300, users: 4000 });
  const p = perturb(gen.next(n), { seed: seed + 1, duplicateRate: 0.01, disorderMs: 1000 });
  const events = p.events;
  const from = Math.min(...events.map((e) => e.timestamp));
  const to = Math.max(...events.map((e) => e.timestamp)) + 1;
  // the independent answer: the shared plain-loop oracle over every arrival (nothing here is late-dropped)
  const x = expectedOf(events, new Set(), from, to);
  const batches: WireEvent[][] = [];
  for (let i = 0; i < events.length; i += 1000) batches.push(events.slice(i, i + 1000));
  return { events, batches, unique: x.total, byType: x.byType, revenue: x.revenue, orders: x.orders, units: x.units, duplicates: p.duplicateIds.size, from, to };
}

async function metric(inst: Instance, name: string): Promise<number> {
  const text = await (await fetch(`${inst.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) if (line.startsWith(name) && (line[name.length] === " " || line[name.length] === "{")) sum += Number(line.split(" ").pop());
  return sum;
}

/** Poll until the instance's totals reach the truth (or time runs out), then compare everything exactly. */
async function expectExact(inst: Instance, t: ReturnType<typeof dataset>, timeoutMs = 120_000): Promise<void> {
  let s: any = null;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      s = await inst.summary(t.from, t.to);
      if (s.events?.total === t.unique && Math.round(s.revenue * 100) === t.revenue) break;
    } catch {
      // instance busy restarting
    }
    await Bun.sleep(250);
  }
  expect(s.events.total).toBe(t.unique);
  for (const [type, n] of Object.entries(t.byType)) expect([type, s.events[type]]).toEqual([type, n]);
  expect(Math.round(s.revenue * 100)).toBe(t.revenue);
  expect(s.orders).toBe(t.orders);
  expect(s.units).toBe(t.units);
  expect(s.late.dropped).toBe(0);
  // injected duplicates, plus re-sent batches whose first attempt had reached Kafka before a kill
  expect(s.duplicates).toBeGreaterThanOrEqual(t.duplicates);
  expect(s.duplicates).toBeLessThanOrEqual(t.duplicates + 2000);
}

afterAll(async () => {
  for (const i of all) {
    await i.kill9();
    i.removeDataDir();
  }
  if (up) await deleteTopics({ brokers: BROKERS, topics }).catch(() => {});
});

d("distributed: kill -9 and restart", () => {
  it("(a) counts every acknowledged event exactly once after a SIGKILL mid-stream and a restart", async () => {
    const dep = await deployment("a");
    const t = dataset(11, 30_000);
    const inst = new Instance(dep.args);
    await inst.start();
    let i = 0;
    for (; i < 12; i++) await sendAcked(() => inst, t.batches[i]);
    const inflight = inst.send(t.batches[i]).catch(() => null); // outcome unknown: re-sent below
    await inst.kill9();
    await inflight;
    await inst.start();
    for (; i < t.batches.length; i++) await sendAcked(() => inst, t.batches[i]);
    await inst.kill9(); // again right after the last acknowledgement, with work in flight
    await inst.start();
    await expectExact(inst, t);
    await inst.stop();
  }, 300_000);
});

d("distributed: scale-out", () => {
  it("(b) two instances split the partitions, answer for the whole stream, and the survivor of a kill -9 takes over", async () => {
    const dep = await deployment("b");
    const t = dataset(21, 30_000);
    const a = new Instance(dep.args);
    const b = new Instance(dep.args);
    await a.start();
    await b.start();
    let i = 0;
    for (; i < 10; i++) await sendAcked(() => (i % 2 ? a : b), t.batches[i]);
    // both answer for the whole stream so far: each merges the other's partitions (Cassandra + Redis partials)
    const uniq = new Set(t.events.slice(0, 10_000).map((e) => e.eventId)).size;
    for (const inst of [a, b]) {
      let s: any = null;
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        s = await inst.summary(t.from, t.to);
        if (s.events.total === uniq) break;
        await Bun.sleep(200);
      }
      expect(s.events.total).toBe(uniq);
    }
    const owned = async (inst: Instance) => (await (await fetch(`${inst.url}/metrics`)).text()).match(/rtae_partitions_owned (\d+)/)?.[1];
    expect(Number(await owned(a)) + Number(await owned(b))).toBe(6);
    expect(Number(await owned(a))).toBeGreaterThan(0);
    expect(Number(await owned(b))).toBeGreaterThan(0);
    await a.kill9();
    for (; i < t.batches.length; i++) await sendAcked(() => b, t.batches[i]);
    await expectExact(b, t);
    expect(Number(await owned(b))).toBe(6);
    await b.stop();
  }, 300_000);
});

d("distributed: poison records", () => {
  it("(e) sends undecodable and invalid records to the DLQ with their reason while the partition keeps flowing", async () => {
    const dep = await deployment("e");
    const inst = new Instance(dep.args);
    await inst.start();
    const kafka = new Kafka({ clientId: "rtae-test-poison", brokers: BROKERS, logLevel: logLevel.NOTHING });
    const producer = kafka.producer();
    await producer.connect();
    const gen = createGenerator({ seed: 5, rate: 20, startTime: Date.now() - 10 * 60_000, diurnal: false, bursts: false });
    const good = gen.next(600);
    const poison: Array<{ value: Buffer | string | null; reason: RegExp }> = [
      { value: "{not json", reason: /malformed JSON/ },
      { value: JSON.stringify({ ...good[0], eventId: "x-1", type: "teleport" }), reason: /type/ },
      { value: JSON.stringify({ ...good[0], eventId: "x-2", timestamp: "yesterday" }), reason: /timestamp/ },
      { value: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), reason: /UTF-8/ },
      { value: null, reason: /tombstone/ },
      { value: JSON.stringify([1, 2, 3]), reason: /object/ },
    ];
    // everything on partition 0: poison in the middle of good records
    const messages = [
      ...good.slice(0, 300).map((e) => ({ value: JSON.stringify(e), partition: 0 })),
      ...poison.map((p) => ({ value: p.value, partition: 0 })),
      ...good.slice(300).map((e) => ({ value: JSON.stringify(e), partition: 0 })),
    ];
    await producer.send({ topic: dep.topic, messages });
    await producer.disconnect();

    const from = Math.min(...good.map((e) => e.timestamp));
    const to = Math.max(...good.map((e) => e.timestamp)) + 1;
    let s: any = null;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      s = await inst.summary(from, to);
      if (s.events.total >= good.length) break;
      await Bun.sleep(200);
    }
    expect(s.events.total).toBe(good.length);

    const consumer = kafka.consumer({ groupId: `${dep.topic}.dlq-check`, maxWaitTimeInMs: 200 });
    await consumer.connect();
    await consumer.subscribe({ topic: `${dep.topic}.dlq`, fromBeginning: true });
    const got: Array<{ reason: string; partition: string; offset: number; value: Buffer | null }> = [];
    await consumer.run({
      eachMessage: async ({ message }) => {
        got.push({
          reason: String(message.headers?.["rtae-reason"]),
          partition: String(message.headers?.["rtae-source-partition"]),
          offset: Number(String(message.headers?.["rtae-source-offset"])),
          value: message.value,
        });
      },
    });
    const until = Date.now() + 30_000;
    while (got.length < poison.length && Date.now() < until) await Bun.sleep(100);
    await consumer.disconnect();
    got.sort((x, y) => x.offset - y.offset);
    expect(got.length).toBe(poison.length);
    poison.forEach((p, k) => {
      expect(got[k].partition).toBe("0");
      expect(got[k].offset).toBe(300 + k);
      expect(got[k].reason).toMatch(p.reason);
    });
    // workers report their counters about once a second
    await waitUntil(async () => /rtae_events_invalid_total 6\b/.test(await (await fetch(`${inst.url}/metrics`)).text()), 10_000, "the invalid count");
    expect(await (await fetch(`${inst.url}/metrics`)).text()).toMatch(/rtae_events_invalid_total 6/);
    await inst.stop();
  }, 180_000);
});

d("distributed: store outages", () => {
  it("(c) Redis stopped and restarted mid-stream: nothing lost, each instance's view of the other's live windows recovers", async () => {
    const redis = await startPrivateRedis();
    try {
      const dep = await deployment("c", { redisUrl: redis.url });
      const t = dataset(31, 20_000);
      const a = new Instance(dep.args);
      const b = new Instance(dep.args);
      await a.start();
      await b.start();
      let i = 0;
      for (; i < 6; i++) await sendAcked(() => (i % 2 ? a : b), t.batches[i]);
      await redis.stop();
      // ingest and processing go on without Redis (Kafka and Cassandra are up); the breaker opens
      for (; i < 14; i++) await sendAcked(() => (i % 2 ? a : b), t.batches[i]);
      await waitUntil(async () => (await metric(a, "rtae_circuit_state")) === 2, 20_000, "the hot cache breaker to open");
      await Bun.sleep(1000);
      await redis.restart();
      for (; i < t.batches.length; i++) await sendAcked(() => (i % 2 ? a : b), t.batches[i]);
      // both answer for the whole stream again, open windows of the other's partitions included
      await expectExact(a, t, 60_000);
      await expectExact(b, t, 60_000);
      expect(await metric(a, "rtae_circuit_state")).toBe(0);
      await a.stop();
      await b.stop();
    } finally {
      await redis.stop().catch(() => {});
    }
  }, 300_000);

  it("(d) Cassandra unreachable for 30 s: consumption backs off, nothing is lost, it catches up", async () => {
    const proxy = await startTcpProxy({ targetPort: 9042 });
    try {
      const dep = await deployment("d", { cassandra: `127.0.0.1:${proxy.port}` });
      const t = dataset(41, 20_000);
      const inst = new Instance(dep.args);
      await inst.start();
      let i = 0;
      for (; i < 6; i++) await sendAcked(() => inst, t.batches[i]);
      proxy.block();
      const blockedAt = Date.now();
      await Bun.sleep(7000); // checkpoints have been failing for longer than the engine tolerates
      // the door writes to Kafka, so ingest goes on; checkpoints fail, and after a few seconds the engine
      // stops applying records: the backlog waits in Kafka, not in memory
      for (; i < 14; i++) await sendAcked(() => inst, t.batches[i]);
      await waitUntil(async () => (await metric(inst, "rtae_consumer_lag_records")) > 0, 20_000, "consumer lag to build up");
      const lagDuring = await metric(inst, "rtae_consumer_lag_records");
      // the history circuit is open and readiness says degraded (events are still accepted)
      expect(await (await fetch(`${inst.url}/metrics`)).text()).toMatch(/rtae_circuit_state\{store="history"\} 2/);
      expect(((await (await fetch(`${inst.url}/ready`)).json()) as any).status).toBe("degraded");
      await Bun.sleep(Math.max(0, 30_000 - (Date.now() - blockedAt)));
      expect(await metric(inst, "rtae_consumer_lag_records")).toBeGreaterThanOrEqual(lagDuring);
      proxy.unblock();
      for (; i < t.batches.length; i++) await sendAcked(() => inst, t.batches[i]);
      await expectExact(inst, t, 90_000);
      await waitUntil(async () => (await metric(inst, "rtae_consumer_lag_records")) === 0, 30_000, "consumer lag to drain");
      expect(await (await fetch(`${inst.url}/metrics`)).text()).toMatch(/rtae_circuit_state\{store="history"\} 0/);
      expect(((await (await fetch(`${inst.url}/ready`)).json()) as any).status).toBe("ready");
      await inst.stop();
    } finally {
      await proxy.stop();
    }
  }, 300_000);
});

async function waitUntil(fn: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await fn()) return;
    } catch {
      // not yet
    }
    await Bun.sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

d("distributed: rtae produce to Kafka", () => {
  it("writes generated events straight to the topic, partitioned by session, and an instance counts them all", async () => {
    const dep = await deployment("p");
    const produce = Bun.spawnSync(
      [process.execPath, "src/main.ts", "produce", "--kafka-brokers", BROKERS.join(","), "--kafka-topic", dep.topic, "--partitions", "6",
        "--count", "4000", "--rate", "50000", "--batch-size", "500", "--seed", "13", "--log-level", "warn"],
      { cwd: ROOT, stderr: "pipe" },
    );
    expect(produce.exitCode).toBe(0);
    // the same seed to stdout: the events, to check partitioning and totals against
    const out = Bun.spawnSync(
      [process.execPath, "src/main.ts", "produce", "--target", "-", "--count", "4000", "--rate", "50000", "--batch-size", "500", "--seed", "13", "--log-level", "warn"],
      { cwd: ROOT },
    );
    const events = out.stdout.toString().trim().split("\n").map((l) => JSON.parse(l) as WireEvent);
    expect(events.length).toBe(4000);
    const admin = new Kafka({ clientId: "rtae-test-produce", brokers: BROKERS, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(dep.topic);
    await admin.disconnect();
    expect(ends.reduce((a, o) => a + Number(o.high), 0)).toBe(4000);
    expect(ends.filter((o) => Number(o.high) > 0).length).toBe(6);

    const inst = new Instance(dep.args);
    await inst.start();
    // paced runs stamp events with the wall clock: the two runs agree on ids, not on timestamps
    const from = Date.now() - 3_600_000;
    const to = Date.now() + 600_000;
    const unique = new Set(events.map((e) => e.eventId)).size;
    let last: any = null;
    await waitUntil(async () => (last = await inst.summary(from, to)).events.total === unique, 60_000, "all produced events counted").catch((err) => {
      throw new Error(`${err.message}: want ${unique}, last ${JSON.stringify(last)}`);
    });
    await inst.stop();
  }, 120_000);
});
