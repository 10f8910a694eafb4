// Kafka pipeline on one `rtae serve` child over Kafka + Cassandra + Redis (scripts/services.sh up): (1) catch-up
// of a topic pre-filled before rtae starts, timed from its first assignment to all processed with lag 0; (2) lag
// while a paced producer writes straight into Kafka; (3) freshness, 202 (accepted into Kafka) -> SSE delta.
// Phase 1 events are 2 h old, so (3), run second, starts with an empty last-hour summary as freshness.ts needs.
// Every deployment name is fresh and removed afterwards (topics, keyspace, Redis keys).

import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import cassandra from "cassandra-driver";
import Redis from "ioredis";
import { createGenerator } from "../src/generator/index.ts";
import { partitionOf } from "../src/ingest/index.ts";
import { createClient, createKafkaSink, deleteTopics, ensureTopics } from "../src/ingest/kafka.ts";
import { freshnessBench, type FreshnessResult } from "./freshness.ts";
import { bodyOf, buildFeed, quantile, stamp } from "./live-feed.ts";
import { systemCpu, type Contention } from "./machine.ts";
import { cpuDelta, freePort, memoryOf, processCpuS, threadCpu, type ServerChild } from "./proc.ts";

const ROOT = join(import.meta.dir, "..");
const BROKER = "127.0.0.1:9092";
const CASSANDRA = "127.0.0.1:9042";
const REDIS = "redis://127.0.0.1:6379";
const PARTITIONS = 6;
const PREFILL_APPEND = 30_000; // records per sink.append while pre-filling (the sink splits requests by size)
const TS_DIGITS = '{"timestamp":'.length; // lines start with a 13-digit timestamp, patched when sent

export interface CatchUp {
  events: number;
  bytes: number;
  prefill: { ms: number; eventsPerSec: number };
  /** spawn -> first "partitions assigned" log line */
  joinMs: number;
  /** first assignment -> processed >= events and every partition's lag 0 (seen by the bench's /metrics poll) */
  ms: number;
  eventsPerSec: number;
  /** the poll's resolution near the end: the last /metrics answer's round trip */
  lastScrapeMs: number;
  /** first assignment -> GET /api/metrics/summary decides all events (counted, duplicate or late-dropped) */
  summaryAllMs: number | null;
  eventsPerSecBySummary: number | null;
  summary: { total: number; duplicates: number; lateDropped: number };
  /** rtae_events_processed_total at the end; above `events` when a rebalance made a worker re-read */
  processedTotal: number;
  assignments: number;
  revocations: number;
  /** rtae's CPU seconds meanwhile: main thread, Bun Workers (thread name "Worker"), the rest (JIT, GC, allocator) */
  cpuS: { total: number; main: number; workers: number; otherThreads: number; byThread: Record<string, number> };
  cores: number;
  rssMB: number;
  peakRssMB: number;
  servicesCpuS: Record<string, number>;
  contention: Contention;
}

export interface LagStats {
  p50: number;
  p99: number;
  max: number;
  samples: number;
  slowestMs: number;
}

export interface SteadyLag {
  rate: number;
  ms: number;
  produced: number;
  producedPerSec: number;
  keptUp: boolean;
  /** sum of rtae_consumer_lag_records while producing; rtae polls the topic's end offsets every 2 s and clips at 0 */
  metricLag: LagStats;
  /** records the broker acknowledged to the producer (read when the query is sent) minus those the summary decides */
  countedLag: LagStats;
  /** the same with `acked` read when the answer arrived: the true lag lies between the two */
  countedLagUpper: LagStats;
  /** ms after the producer started when the summary first held everything (null: not within 15 s) */
  drainMs: number | null;
  /** end offsets minus the group's committed offsets, read from the broker (includes the checkpoint interval) */
  committedLag: LagStats;
  series: { metric: LagSample[]; counted: LagSample[]; committed: LagSample[] };
  cpuS: Record<string, number>;
  servicesCpuS: Record<string, number>;
  contention: Contention;
}

export interface KafkaPipelineResult {
  deployment: { topic: string; group: string; keyspace: string; redisPrefix: string; workers: number; partitions: number };
  catchUp: CatchUp;
  /** the last warn/error lines of rtae's log */
  serverWarnings: string[];
  freshness: FreshnessResult & { contention: Contention };
  steady: SteadyLag;
  cleanup: string[];
}

/** null when Kafka, Cassandra and Redis all accept TCP connections, else which are missing. */
export async function pipelineServicesDown(): Promise<string | null> {
  const down: string[] = [];
  for (const [name, port] of [["Kafka", 9092], ["Cassandra", 9042], ["Redis", 6379]] as const) {
    try {
      const s = await Promise.race([
        Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error("timeout")), 2000)),
      ]);
      s.end();
    } catch {
      down.push(`${name} (127.0.0.1:${port})`);
    }
  }
  return down.length === 0 ? null : `${down.join(", ")} not reachable (bash scripts/services.sh up kafka cassandra)`;
}

/** Pids of the local service processes, so their CPU is reported as the pipeline's and not as contention. */
function servicePids(): Record<string, number> {
  const marks: Record<string, string> = { kafka: "kafka.Kafka", cassandra: "CassandraDaemon", redis: "redis-server" };
  const out: Record<string, number> = {};
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
      for (const [k, m] of Object.entries(marks)) if (out[k] === undefined && cmd.includes(m)) out[k] = Number(d);
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

/** Snapshot now; the returned function gives the CPU of the services, rtae and other processes since. */
function meter(rtaePid: number, services: Record<string, number>): () => { services: Record<string, number>; contention: Contention } {
  const svc0 = Object.fromEntries(Object.entries(services).map(([k, pid]) => [k, processCpuS(pid)]));
  const s0 = systemCpu();
  const own0 = process.cpuUsage();
  const r0 = processCpuS(rtaePid);
  const t0 = performance.now();
  return () => {
    const svc = Object.fromEntries(Object.entries(services).map(([k, pid]) => [k, Math.round((processCpuS(pid) - svc0[k]) * 100) / 100]));
    const s1 = systemCpu();
    const own = process.cpuUsage(own0);
    const ours = (own.user + own.system) / 1e6 + Math.max(0, processCpuS(rtaePid) - r0) + Object.values(svc).reduce((a, x) => a + x, 0);
    const foreign = Math.max(0, s1.busyS - s0.busyS - ours);
    const capacity = s1.totalS - s0.totalS;
    const wallS = (performance.now() - t0) / 1000;
    return { services: svc, contention: { wallS, foreignCpuS: Math.round(foreign * 100) / 100, foreignShare: capacity > 0 ? Math.round((foreign / capacity) * 1000) / 1000 : NaN } };
  };
}

/** `count` generator events as NDJSON lines, timestamp first, partitioned by sessionId as the door does. */
function buildLines(count: number, seed: number, startTime: number) {
  const gen = createGenerator({ seed, rate: 2_000, startTime, users: 100_000, products: 10_000 });
  const byPartition: string[][] = Array.from({ length: PARTITIONS }, () => []);
  // generator order with each line's partition: a paced producer sends sessions in their own order
  const ordered: Array<readonly [number, string]> = [];
  let bytes = 0;
  let minTs = Infinity;
  let maxTs = -Infinity;
  for (let n = 0; n < count; ) {
    for (const e of gen.next(Math.min(10_000, count - n))) {
      const { timestamp, ...rest } = e;
      const line = JSON.stringify({ timestamp, ...rest });
      bytes += line.length;
      minTs = Math.min(minTs, timestamp);
      maxTs = Math.max(maxTs, timestamp);
      const p = partitionOf(e.sessionId ?? e.productId ?? e.eventId, PARTITIONS);
      byPartition[p].push(line);
      ordered.push([p, line]);
      n++;
    }
  }
  return { byPartition, ordered, bytes, minTs, maxTs };
}

interface Scrape {
  processed: number;
  lag: number;
  owned: number;
  ms: number;
}

async function scrape(url: string): Promise<Scrape> {
  const t = performance.now();
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const s: Scrape = { processed: 0, lag: 0, owned: 0, ms: 0 };
  for (const line of text.split("\n")) {
    const v = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (line.startsWith("rtae_events_processed_total ")) s.processed = v;
    else if (line.startsWith("rtae_consumer_lag_records{")) s.lag += v;
    else if (line.startsWith("rtae_partitions_owned ")) s.owned = v;
  }
  s.ms = performance.now() - t;
  return s;
}

async function decided(url: string, from: number, to: number): Promise<CatchUp["summary"]> {
  const r = await fetch(`${url}/api/metrics/summary?from=${from}&to=${to}`, { signal: AbortSignal.timeout(10_000) });
  const j = (await r.json()) as { events: { total: number }; duplicates: number; late: { dropped: number } };
  return { total: j.events.total, duplicates: j.duplicates, lateDropped: j.late.dropped };
}

const spawned = new Set<number>();
process.on("exit", () => {
  for (const pid of spawned) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
});

/** `rtae serve` without waiting for /ready: phase 1 times from the first assignment, which comes before it. */
function spawnServe(args: string[]): ServerChild {
  const dataDir = mkdtempSync(join(tmpdir(), "rtae-bench-kp-"));
  const logPath = join(dataDir, "server.err"); // JSON logs go to stderr
  const port = freePort();
  const proc = Bun.spawn(
    [process.execPath, "src/main.ts", "serve", "--data-dir", join(dataDir, "data"), "--port", String(port), "--host", "127.0.0.1", "--demo-rate", "0", ...args],
    { cwd: ROOT, stdout: Bun.file(join(dataDir, "server.log")), stderr: Bun.file(logPath), stdin: "ignore" },
  );
  spawned.add(proc.pid);
  let stopped = false;
  const child: ServerChild = {
    pid: proc.pid,
    url: `http://127.0.0.1:${port}`,
    dataDir,
    logPath,
    exited: () => proc.exitCode !== null || proc.signalCode !== null,
    async stop(graceMs = 20_000) {
      if (stopped) return;
      stopped = true;
      if (!child.exited()) {
        proc.kill("SIGTERM");
        const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
        await proc.exited;
        clearTimeout(t);
      }
      spawned.delete(proc.pid);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return child;
}

const logLines = (c: ServerChild) => {
  try {
    return readFileSync(c.logPath, "utf8").split("\n");
  } catch {
    return [];
  }
};
const tail = (c: ServerChild) => logLines(c).slice(-15).join("\n");

const decidedOf = (s: CatchUp["summary"]) => s.total + s.duplicates + s.lateDropped;

/**
 * Phase 1: start rtae on the pre-filled topic and time it from its first assignment until the metrics say
 * caught up (processed >= events, lag 0 everywhere, all partitions owned), and until the summary decides
 * every event. Workers report `processed` about once a second, so the summary is the sharper of the two.
 */
async function catchUp(srv: ServerChild, spawnedAt: number, events: number, range: { from: number; to: number }, services: Record<string, number>, maxMs: number) {
  let assignAt: number | null = null;
  let cpu0 = new Map<string, number>();
  let end: ReturnType<typeof meter> | null = null;
  let last: Scrape | null = null;
  let metricsAt: { at: number; cpu: Record<string, number>; mem: { rssMB: number; peakMB: number }; used: ReturnType<ReturnType<typeof meter>> } | null = null;
  let summaryAt: number | null = null;
  let summary: CatchUp["summary"] = { total: 0, duplicates: 0, lateDropped: 0 };
  const deadline = performance.now() + maxMs;
  let summaryDeadline = Infinity;
  while (metricsAt === null || (summaryAt === null && performance.now() < summaryDeadline)) {
    if (srv.exited()) throw new Error(`rtae exited during catch-up:\n${tail(srv)}`);
    if (performance.now() > deadline) throw new Error(`not caught up within ${maxMs} ms (last: ${JSON.stringify(last)}, summary ${JSON.stringify(summary)}):\n${tail(srv)}`);
    if (assignAt === null) {
      const line = logLines(srv).find((l) => l.includes('"partitions assigned"'));
      if (line) {
        cpu0 = threadCpu(srv.pid);
        end = meter(srv.pid, services);
        assignAt = Date.parse((JSON.parse(line) as { time: string }).time);
      }
    } else {
      try {
        if (metricsAt === null) {
          last = await scrape(srv.url);
          if (last.processed >= events && last.lag === 0 && last.owned === PARTITIONS) {
            metricsAt = { at: Date.now(), cpu: cpuDelta(cpu0, threadCpu(srv.pid)), mem: memoryOf(srv.pid), used: end!() };
            summaryDeadline = performance.now() + 60_000;
          }
        }
        // asked only near the end: every summary query costs the main thread a little
        if (summaryAt === null && (last?.processed ?? 0) >= 0.8 * events) {
          summary = await decided(srv.url, range.from, range.to);
          if (decidedOf(summary) >= events) summaryAt = Date.now();
        }
      } catch {
        // not serving HTTP yet (it listens once the first assignment is adopted)
      }
    }
    await Bun.sleep(assignAt === null ? 20 : 100);
  }
  const m = metricsAt!;
  const total = Object.values(m.cpu).reduce((a, x) => a + x, 0);
  return { assignAt: assignAt!, ms: m.at - assignAt!, summaryMs: summaryAt === null ? null : summaryAt - assignAt!, summary, joinMs: assignAt! - spawnedAt, last: last!, cpu: m.cpu, total, mem: m.mem, used: m.used };
}

interface LagSample {
  /** ms since the paced producer started, when the answer arrived */
  at: number;
  /** records behind */
  lag: number;
  /** counted lag only: the same with `acked` read when the answer arrived (an upper bound) */
  upper?: number;
  /** the request's round trip */
  rttMs: number;
}

/**
 * Three independent 250 ms loops, so a slow answer of one never thins the others' samples: the sum of
 * rtae_consumer_lag_records; "acked minus decided by the summary over the phase", `acked` read when the
 * request is sent (a lower bound when the answer is slow); and the group's lag as the broker sees it
 * (end offsets minus committed offsets, which rtae commits after each checkpoint).
 */
async function sampleLag(url: string, from: number, group: { topic: string; groupId: string }, stop: () => boolean, acked: () => number, t0: number, everyMs: number) {
  const loop = async (read: () => Promise<number | [number, number]>) => {
    const out: LagSample[] = [];
    while (!stop()) {
      const t = performance.now();
      try {
        const r = await read();
        const [lag, upper] = typeof r === "number" ? [r, undefined] : r;
        out.push({ at: Math.round(performance.now() - t0), lag, upper, rttMs: Math.round(performance.now() - t) });
      } catch {
        // a missed sample; the count says how many made it
      }
      await Bun.sleep(Math.max(0, everyMs - (performance.now() - t)));
    }
    return out;
  };
  const admin = createClient({ brokers: [BROKER], clientId: "rtae-bench-lag", logLevel: "nothing" }).admin();
  await admin.connect();
  try {
    const [metric, counted, committed] = await Promise.all([
      loop(async () => (await scrape(url)).lag),
      loop(async () => {
        const a = acked();
        const d = decidedOf(await decided(url, from, from + 3_600_000));
        return [Math.max(0, a - d), Math.max(0, acked() - d)];
      }),
      loop(async () => {
        const [ends, offsets] = await Promise.all([admin.fetchTopicOffsets(group.topic), admin.fetchOffsets({ groupId: group.groupId, topics: [group.topic] })]);
        let lag = 0;
        for (const e of ends) {
          const c = Number(offsets[0]?.partitions.find((x) => x.partition === e.partition)?.offset ?? 0);
          lag += Number(e.high) - Math.max(0, c);
        }
        return lag;
      }),
    ]);
    return { metric, counted, committed };
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/**
 * Phase 2: `rate` events/s stamped now, straight into Kafka with the door's sink, an append every 10 ms
 * holding the events due by then; lag sampled every 250 ms meanwhile and until rtae caught up (bounded).
 */
async function steadyLag(srv: ServerChild, topic: string, groupId: string, rate: number, ms: number, services: Record<string, number>): Promise<SteadyLag> {
  const { ordered } = buildLines(Math.ceil((rate * ms) / 1000) + 10_000, 12, Date.now() - 60_000);
  const sink = createKafkaSink({ brokers: [BROKER], topic, partitions: PARTITIONS });
  // a fresh second, so the phase's summary range holds only its own events
  await Bun.sleep(1000 - (Date.now() % 1000) + 5);
  const from = Math.floor(Date.now() / 1000) * 1000;
  let acked = 0;
  let done = false;
  const cpu0 = threadCpu(srv.pid);
  const end = meter(srv.pid, services);
  const t0 = performance.now();
  const sampler = sampleLag(srv.url, from, { topic, groupId }, () => done, () => acked, t0, 250);
  let next = 0;
  let wallMs = 0;
  try {
    while (performance.now() - t0 < ms && next < ordered.length) {
      const due = Math.min(ordered.length, Math.floor((rate * (performance.now() - t0)) / 1000) + Math.ceil(rate / 100));
      if (due > next) {
        const now = String(Date.now());
        const batch: string[][] = Array.from({ length: PARTITIONS }, () => []);
        for (; next < due; next++) batch[ordered[next][0]].push(`{"timestamp":${now}${ordered[next][1].slice(TS_DIGITS + 13)}`);
        await sink.append(batch, []);
        acked = next;
      }
      await Bun.sleep(Math.max(1, 10 - ((performance.now() - t0) % 10)));
    }
    wallMs = performance.now() - t0;
    const settle = performance.now();
    while (performance.now() - settle < 15_000 && decidedOf(await decided(srv.url, from, from + 3_600_000)) < acked) await Bun.sleep(250);
  } finally {
    done = true;
    await sink.close();
  }
  const { metric, counted, committed } = await sampler;
  const used = end();
  const q = (xs: LagSample[]) => {
    const sorted = xs.map((x) => x.lag).sort((a, b) => a - b);
    return { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1) ?? NaN, samples: xs.length, slowestMs: Math.max(0, ...xs.map((x) => x.rttMs)) };
  };
  const during = (xs: LagSample[]) => xs.filter((x) => x.at <= wallMs);
  return {
    rate,
    ms: Math.round(wallMs),
    produced: acked,
    producedPerSec: Math.round(acked / (wallMs / 1000)),
    keptUp: acked / (wallMs / 1000) >= 0.95 * rate,
    metricLag: q(during(metric)),
    countedLag: q(during(counted)),
    countedLagUpper: q(during(counted).map((x) => ({ ...x, lag: x.upper ?? x.lag }))),
    committedLag: q(during(committed)),
    drainMs: counted.find((x) => x.at > wallMs && x.lag === 0)?.at ?? null,
    series: { metric, counted, committed },
    cpuS: cpuDelta(cpu0, threadCpu(srv.pid)),
    servicesCpuS: used.services,
    contention: used.contention,
  };
}

/** The three phases on one fresh deployment; everything it creates is removed before it returns. */
export async function kafkaPipelineBench(o: { events: number; steadyRate: number; steadyMs: number; freshnessMs: number; workers: number; say: (m: string) => void }): Promise<KafkaPipelineResult> {
  const id = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const dep = { topic: `rtae.bench.pipeline.${id}`, group: `rtae.bench.${id}`, keyspace: `rtae_bench_${id}`, redisPrefix: `rtae_bench_${id}:`, workers: o.workers, partitions: PARTITIONS };
  const services = servicePids();
  const say = (m: string) => o.say(`kafka-pipeline: ${m}`);
  const cleanup: string[] = [];
  let srv: ServerChild | null = null;
  try {
    say(`building ${o.events.toLocaleString("en-US")} events (2 h old) for ${dep.topic}...`);
    const pre = buildLines(o.events, 11, Date.now() - 2 * 3_600_000 - 600_000);
    await ensureTopics({ brokers: [BROKER], topic: dep.topic, partitions: PARTITIONS, replicationFactor: 1 });
    const sink = createKafkaSink({ brokers: [BROKER], topic: dep.topic, partitions: PARTITIONS });
    const per = Math.ceil(PREFILL_APPEND / PARTITIONS);
    const t0 = performance.now();
    for (let i = 0; i * per < Math.max(...pre.byPartition.map((l) => l.length)); i++) await sink.append(pre.byPartition.map((l) => l.slice(i * per, (i + 1) * per)), []);
    const prefillMs = performance.now() - t0;
    await sink.close();
    say(`pre-filled in ${Math.round(prefillMs)} ms (${Math.round(o.events / (prefillMs / 1000))} ev/s, kafkajs sink); migrating ${dep.keyspace}...`);
    const m = Bun.spawn([process.execPath, "src/main.ts", "migrate", "--cassandra-contact-points", CASSANDRA, "--cassandra-keyspace", dep.keyspace, "--log-level", "warn"], { cwd: ROOT, stdout: "ignore", stderr: "pipe" });
    if ((await m.exited) !== 0) throw new Error(`rtae migrate failed: ${await new Response(m.stderr).text()}`);

    const spawnedAt = Date.now();
    srv = spawnServe([
      "--kafka-brokers", BROKER, "--kafka-topic", dep.topic, "--consumer-group", dep.group,
      "--cassandra-contact-points", CASSANDRA, "--cassandra-keyspace", dep.keyspace,
      "--redis-url", REDIS, "--redis-prefix", dep.redisPrefix, "--partitions", String(PARTITIONS), "--workers", String(o.workers),
    ]);
    say(`rtae pid ${srv.pid} started on ${srv.url}; waiting for its first assignment and catch-up...`);
    const c = await catchUp(srv, spawnedAt, o.events, { from: pre.minTs, to: pre.maxTs + 1 }, services, 300_000);
    const lines = logLines(srv);
    const main = c.cpu.main ?? 0;
    const workers = c.cpu.Worker ?? 0;
    const summary = c.summary;
    const summaryAllMs = c.summaryMs;
    const catchUpResult: CatchUp = {
      events: o.events,
      bytes: pre.bytes,
      prefill: { ms: Math.round(prefillMs), eventsPerSec: Math.round(o.events / (prefillMs / 1000)) },
      joinMs: c.joinMs,
      ms: c.ms,
      eventsPerSec: Math.round(o.events / (c.ms / 1000)),
      lastScrapeMs: Math.round(c.last.ms),
      summaryAllMs,
      eventsPerSecBySummary: summaryAllMs === null ? null : Math.round(o.events / (summaryAllMs / 1000)),
      summary,
      processedTotal: c.last.processed,
      assignments: lines.filter((l) => l.includes('"partitions assigned"')).length,
      revocations: lines.filter((l) => l.includes('"partitions revoked"')).length,
      cpuS: { total: Math.round(c.total * 100) / 100, main, workers, otherThreads: Math.round((c.total - main - workers) * 100) / 100, byThread: c.cpu },
      cores: Math.round((c.total / (c.ms / 1000)) * 100) / 100,
      rssMB: Math.round(c.mem.rssMB * 10) / 10,
      peakRssMB: Math.round(c.mem.peakMB * 10) / 10,
      servicesCpuS: c.used.services,
      contention: c.used.contention,
    };
    say(
      `caught up ${o.events} events in ${c.ms} ms from the first assignment = ${catchUpResult.eventsPerSec} ev/s; CPU ${catchUpResult.cpuS.total} s ` +
        `(main ${main}), RSS ${catchUpResult.rssMB} MB; summary decided ${summary.total + summary.duplicates + summary.lateDropped} ` +
        `after ${summaryAllMs} ms; other processes ${Math.round(c.used.contention.foreignShare * 100)} %`,
    );

    // freshness next, on an empty last hour; one event first moves the watermark to now, so closing the
    // 2 h old windows of phase 1 does not fall into the measured phase
    const warm = buildFeed({ events: 1, seed: 5, idPrefix: `warm-${id}-` });
    stamp(warm, 0, 1, Date.now());
    const w = await fetch(`${srv.url}/api/events`, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body: bodyOf(warm, 0, 1) });
    if (w.status !== 202) throw new Error(`warm-up POST: ${w.status} ${await w.text()}`);
    await Bun.sleep(3000);
    const fr0 = meter(srv.pid, services);
    const s = srv;
    const freshness = await freshnessBench(s, { rates: [o.steadyRate], phaseMs: o.freshnessMs, say: (x) => say(x) });
    const frUsed = fr0();

    say(`steady ${o.steadyRate} ev/s straight into Kafka for ${o.steadyMs / 1000} s, lag sampled every 250 ms...`);
    await Bun.sleep(1000); // the freshness phase's last events stay out of this phase's second
    const steady = await steadyLag(srv, dep.topic, dep.group, o.steadyRate, o.steadyMs, services);
    say(
      `steady: produced ${steady.producedPerSec} ev/s; lag metric p50 ${steady.metricLag.p50} / p99 ${steady.metricLag.p99} / max ${steady.metricLag.max}; ` +
        `acked - counted p50 ${steady.countedLag.p50} / p99 ${steady.countedLag.p99} / max ${steady.countedLag.max} (${steady.metricLag.samples} / ${steady.countedLag.samples} samples)`,
    );
    const serverWarnings = logLines(srv).filter((l) => /"level":"(warn|error)"/.test(l)).slice(-20);
    return { deployment: dep, catchUp: catchUpResult, serverWarnings, freshness: { ...freshness, contention: frUsed.contention }, steady, cleanup };
  } finally {
    await srv?.stop();
    await deleteTopics({ brokers: [BROKER], topics: [dep.topic, `${dep.topic}.dlq`] }).then(() => cleanup.push("topics deleted"), (e: Error) => cleanup.push(`topics: ${e.message}`));
    const cql = new cassandra.Client({ contactPoints: [CASSANDRA], localDataCenter: "datacenter1" });
    await cql.execute(`DROP KEYSPACE IF EXISTS ${dep.keyspace}`, [], { readTimeout: 60_000 }).then(() => cleanup.push("keyspace dropped"), (e: Error) => cleanup.push(`keyspace: ${e.message}`));
    await cql.shutdown().catch(() => {});
    const redis = new Redis(REDIS, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      let cursor = "0";
      let n = 0;
      do {
        const [nextCursor, keys] = await redis.scan(cursor, "MATCH", `${dep.redisPrefix}*`, "COUNT", 500);
        cursor = nextCursor;
        if (keys.length > 0) n += await redis.del(...keys);
      } while (cursor !== "0");
      cleanup.push(`${n} redis keys deleted`);
    } catch (e) {
      cleanup.push(`redis: ${(e as Error).message}`);
    } finally {
      redis.disconnect();
    }
  }
}
