// Kafka client comparison through rtae's KafkaSource interface: kafkajs (kafka-source.ts) against
// @platformatic/kafka (kafka-source-platformatic.ts), on the local broker (scripts/services.sh up kafka).
// Fills a fresh 6-partition topic with generator events (plus a browser-style context, ~330 B each) through
// the kafkajs sink, then reads all of it through each Source, each time in a fresh group, with the rounds
// alternating between the two. Both sources decode values to strings before onBatch; the handler checks
// that offsets are contiguous and touches every string. The broker's CPU is measured on its own, and it is
// not counted as contention.

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createGenerator } from "../src/generator/index.ts";
import { createKafkaSink, createKafkaSource, deleteTopics, ensureTopics, type KafkaSource, type KafkaSourceConfig } from "../src/ingest/kafka.ts";
import { createPlatformaticKafkaSource } from "../src/ingest/kafka-source-platformatic.ts";
import { partitionOf } from "../src/ingest/local-log.ts";
import { withContention, type Contention } from "./machine.ts";
import { processCpuS } from "./proc.ts";

const BROKERS = ["127.0.0.1:9092"];
const PARTITIONS = 6;
const APPEND_BATCH = 20_000; // records per sink.append, spread over the partitions

export interface ConsumeRun {
  client: "kafkajs" | "platformatic";
  round: number;
  records: number;
  bytes: number;
  /** start() until the first assignment */
  joinMs: number;
  /** start() until the last record's onBatch */
  totalMs: number;
  /** first onBatch until the last one: the steady-state read rate */
  recordsPerSec: number;
  mbPerSec: number;
  batches: number;
  /** this process's CPU seconds per million records (both clients run in-process) */
  cpuSPerMillion: number;
  brokerCpuS: number;
  /** records out of order, skipped or delivered twice (must be 0) */
  anomalies: number;
  contention: Contention;
}

export interface KafkaClientsResult {
  records: number;
  bytes: number;
  avgRecordBytes: number;
  partitions: number;
  produce: { ms: number; recordsPerSec: number; mbPerSec: number; brokerCpuS: number; contention: Contention };
  runs: ConsumeRun[];
  /** per client: the best round (least disturbed by the box) */
  best: Record<string, ConsumeRun | null>;
  /** per client: median records/s and CPU s per million records over its rounds */
  median: Record<string, { recordsPerSec: number; cpuSPerMillion: number } | null>;
  /** installed versions, read from node_modules */
  versions: Record<string, string>;
  /** a client that could not run at all: its error */
  failures: Record<string, string>;
}

const AGENTS = [
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
];
const LOCALES = ["en-US", "de-DE", "fr-FR", "en-GB", "es-ES", "pl-PL"];

function versionOf(pkg: string): string {
  try {
    return (JSON.parse(readFileSync(join(import.meta.dir, "..", "node_modules", pkg, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "?";
  }
}

/** The broker's pid (the JVM running kafka.Kafka), or null when it is not a local process. */
function brokerPid(): number | null {
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, "utf8").includes("kafka.Kafka")) return Number(d);
    } catch {
      // a process that ended meanwhile
    }
  }
  return null;
}

/**
 * `count` generator events as the door would log them, partitioned by sessionId the way the door does. A
 * browser SDK sends its context along (user agent, locale, screen); the door accepts and drops such fields.
 */
function buildRecords(count: number): { byPartition: string[][]; bytes: number } {
  const gen = createGenerator({ seed: 11, rate: 2_000, startTime: Date.now() - 3_600_000, users: 100_000, products: 10_000 });
  const byPartition: string[][] = Array.from({ length: PARTITIONS }, () => []);
  let bytes = 0;
  let n = 0;
  while (n < count) {
    for (const e of gen.next(Math.min(10_000, count - n))) {
      const h = n * 2654435761;
      const context = { userAgent: AGENTS[h % AGENTS.length], locale: LOCALES[(h >>> 3) % LOCALES.length], screen: n % 3 === 0 ? "390x844" : "1920x1080", sdk: "rtae-js/1.4.2" };
      const line = JSON.stringify({ ...e, context });
      bytes += Buffer.byteLength(line);
      byPartition[partitionOf(e.sessionId ?? e.productId ?? e.eventId, PARTITIONS)].push(line);
      n++;
    }
  }
  return { byPartition, bytes };
}

async function consumeAll(client: ConsumeRun["client"], round: number, topic: string, expected: number[], pid: number | null, maxMs: number): Promise<ConsumeRun> {
  const cfg: KafkaSourceConfig = { brokers: BROKERS, topic, groupId: `${topic}.${client}.${round}`, logLevel: "error" };
  const src: KafkaSource = client === "kafkajs" ? createKafkaSource(cfg) : createPlatformaticKafkaSource(cfg);
  const total = expected.reduce((a, x) => a + x, 0);
  const next = new Array<number>(PARTITIONS).fill(0);
  let records = 0;
  let bytes = 0;
  let anomalies = 0;
  let firstAt = 0;
  let lastAt = 0;
  const { promise: done, resolve } = Promise.withResolvers<void>();
  const broker0 = pid === null ? 0 : processCpuS(pid);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let joinMs = 0;
  const { contention } = await withContention(
    async () => {
      await src.start({
        async onAssigned(parts) {
          return new Map(parts.map((p) => [p, null]));
        },
        async onRevoked() {},
        async onBatch(p, batch) {
          if (firstAt === 0) firstAt = performance.now();
          for (const r of batch) {
            if (r.offset !== next[p]) anomalies++;
            next[p] = r.offset + 1;
            // UTF-16 length x 1 is the byte count here: the records are ASCII
            bytes += r.value === null ? 0 : r.value.length;
          }
          records += batch.length;
          if (records >= total) {
            lastAt = performance.now();
            resolve();
          }
        },
      });
      joinMs = performance.now() - t0;
      const timer = setTimeout(resolve, maxMs);
      await done;
      clearTimeout(timer);
    },
    () => (pid === null ? 0 : processCpuS(pid)),
  );
  const cpu = process.cpuUsage(cpu0);
  const totalMs = (lastAt || performance.now()) - t0;
  const steadyS = ((lastAt || performance.now()) - firstAt) / 1000;
  await src.stop();
  if (records < total) throw new Error(`${client}: only ${records} of ${total} records within ${maxMs} ms`);
  for (let p = 0; p < PARTITIONS; p++) if (next[p] !== expected[p]) anomalies++;
  return {
    client,
    round,
    records,
    bytes,
    joinMs: Math.round(joinMs),
    totalMs: Math.round(totalMs),
    recordsPerSec: Math.round(records / steadyS),
    mbPerSec: Math.round((bytes / 1e6 / steadyS) * 10) / 10,
    batches: src.stats().batches,
    cpuSPerMillion: Math.round(((cpu.user + cpu.system) / 1e6 / (records / 1e6)) * 100) / 100,
    brokerCpuS: pid === null ? NaN : Math.round((processCpuS(pid) - broker0) * 100) / 100,
    anomalies,
    contention,
  };
}

/** True when the local broker accepts TCP connections within 2 s (the full run skips this bench without one). */
export async function brokerReachable(): Promise<boolean> {
  try {
    const socket = await Promise.race([
      Bun.connect({ hostname: "127.0.0.1", port: 9092, socket: { data() {} } }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error("timeout")), 2000)),
    ]);
    socket.end();
    return true;
  } catch {
    return false;
  }
}

/** Produce `records` events into a fresh topic, then read them through both sources, `rounds` times each. */
export async function kafkaClientsBench(o: { records: number; rounds: number; say: (m: string) => void }): Promise<KafkaClientsResult> {
  const topic = `rtae.bench.clients.${crypto.randomUUID().slice(0, 8)}`;
  const pid = brokerPid();
  o.say(`kafka-clients: building ${o.records.toLocaleString("en-US")} records (broker pid ${pid ?? "not local"})...`);
  const { byPartition, bytes } = buildRecords(o.records);
  const expected = byPartition.map((l) => l.length);
  await ensureTopics({ brokers: BROKERS, topic, partitions: PARTITIONS, replicationFactor: 1 });
  try {
    // the door's append shape: each call carries one slice of every partition
    const sink = createKafkaSink({ brokers: BROKERS, topic, partitions: PARTITIONS });
    const per = Math.ceil(APPEND_BATCH / PARTITIONS);
    const broker0 = pid === null ? 0 : processCpuS(pid);
    const t0 = performance.now();
    const { contention: produceContention } = await withContention(
      async () => {
        for (let i = 0; i * per < Math.max(...expected); i++) {
          await sink.append(byPartition.map((l) => l.slice(i * per, (i + 1) * per)), new Array(PARTITIONS).fill(0));
        }
      },
      () => (pid === null ? 0 : processCpuS(pid)),
    );
    const produceMs = performance.now() - t0;
    await sink.close();
    const produce = {
      ms: Math.round(produceMs),
      recordsPerSec: Math.round(o.records / (produceMs / 1000)),
      mbPerSec: Math.round((bytes / 1e6 / (produceMs / 1000)) * 10) / 10,
      brokerCpuS: pid === null ? NaN : Math.round((processCpuS(pid) - broker0) * 100) / 100,
      contention: produceContention,
    };
    o.say(`kafka-clients: produced with the kafkajs sink at ${produce.recordsPerSec.toLocaleString("en-US")} rec/s, ${produce.mbPerSec} MB/s`);

    const runs: ConsumeRun[] = [];
    const failures: Record<string, string> = {};
    for (let round = 1; round <= o.rounds; round++) {
      for (const client of ["kafkajs", "platformatic"] as const) {
        if (failures[client]) continue;
        try {
          const r = await consumeAll(client, round, topic, expected, pid, 120_000);
          runs.push(r);
          o.say(`kafka-clients: ${client} round ${round}: ${r.recordsPerSec.toLocaleString("en-US")} rec/s, ${r.mbPerSec} MB/s, join ${r.joinMs} ms, ${r.batches} batches, ${r.cpuSPerMillion} CPU s/M, anomalies ${r.anomalies}`);
        } catch (err) {
          failures[client] = (err as Error).stack ?? String(err);
          o.say(`kafka-clients: ${client} failed: ${failures[client]}`);
        }
      }
    }
    const best: Record<string, ConsumeRun | null> = {};
    const median: KafkaClientsResult["median"] = {};
    const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    for (const c of ["kafkajs", "platformatic"]) {
      const mine = runs.filter((r) => r.client === c);
      best[c] = mine.length === 0 ? null : mine.reduce((a, b) => (b.recordsPerSec > a.recordsPerSec ? b : a));
      median[c] = mine.length === 0 ? null : { recordsPerSec: mid(mine.map((r) => r.recordsPerSec)), cpuSPerMillion: mid(mine.map((r) => r.cpuSPerMillion)) };
    }
    const versions = { kafkajs: versionOf("kafkajs"), platformatic: versionOf("@platformatic/kafka") };
    return { records: o.records, bytes, avgRecordBytes: Math.round(bytes / o.records), partitions: PARTITIONS, produce, runs, best, median, versions, failures };
  } finally {
    await deleteTopics({ brokers: BROKERS, topics: [topic, `${topic}.dlq`] }).catch(() => {});
  }
}
