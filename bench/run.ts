// `npm run bench`: window core records/s, durable HTTP NDJSON ingest (accepted/s and end to end), resident
// memory at 100 k users / 10 k products, and the live serving (freshness, last-hour summary under load, SSE
// fan-out, memory per client), the Kafka clients read through KafkaSource (kafkajs vs @platformatic/kafka,
// needs the local broker), and the distributed pipeline (Kafka -> aggregates, consumer lag, freshness; needs Kafka,
// Cassandra and Redis), on this machine; prints a table and writes bench/out/latest.json.
// Every loop is bounded in count and time; child servers listen on 127.0.0.1 only and are always stopped.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { summariseProfile } from "./cpu-profile.ts";
import { fanoutBench, type FanoutResult } from "./fanout.ts";
import { brokerReachable, kafkaClientsBench, type KafkaClientsResult } from "./kafka-clients.ts";
import { freshnessBench, type FreshnessResult } from "./freshness.ts";
import { kafkaPipelineBench, pipelineServicesDown, type KafkaPipelineResult } from "./kafka-pipeline.ts";
import { buildBatches, readMemory, runIngest, runTransportOnly, type Batches } from "./http-ingest.ts";
import { profileIngest } from "./ingest-profile.ts";
import { loadAverage, machineFacts, withContention, type Contention } from "./machine.ts";
import { processCpuS, serverLogTail, startServer, stopAll, type ServerChild } from "./proc.ts";
import { summaryLoadBench, type SummaryLoadResult } from "./summary-load.ts";
import { buildRecords, type RecordSet } from "./records.ts";
import { applyRun, handoffRun, type ApplyRun } from "./window-core.ts";

const PARTITIONS = 8;
const USERS = 100_000;
const PRODUCTS = 10_000;

const ONLY = ["all", "window", "ingest", "freshness", "summary", "fanout", "live", "kafka-clients", "kafka-pipeline"] as const;

interface Options {
  /** "live" = freshness + summary + fanout */
  only: (typeof ONLY)[number];
  windowRecords: number;
  ingestEvents: number;
  perBatch: number;
  concurrency: number;
  ingestMaxMs: number;
  /** run the ingest server under --cpu-prof and summarise where its main thread went (slows it down) */
  profileServer: boolean;
  freshnessRates: number[];
  freshnessPhaseMs: number;
  historyEvents: number;
  summaryLoops: number;
  summaryMs: number;
  fanoutClients: number;
  fanoutWindowMs: number;
  /** records in the kafka-clients bench topic */
  kafkaRecords: number;
  /** events pre-filled into the kafka-pipeline topic before rtae starts */
  pipelineEvents: number;
  /** kafka-pipeline: seconds of the steady-rate lag phase and of the freshness phase */
  pipelineSteadyMs: number;
  pipelineFreshnessMs: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { only: "all", windowRecords: 5_000_000, ingestEvents: 1_000_000, perBatch: 1000, concurrency: 6, ingestMaxMs: 20_000, profileServer: false,
    freshnessRates: [1_000, 10_000, 50_000], freshnessPhaseMs: 10_000, historyEvents: 500_000, summaryLoops: 8, summaryMs: 10_000,
    fanoutClients: 1_000, fanoutWindowMs: 10_000, kafkaRecords: 500_000,
    pipelineEvents: 500_000, pipelineSteadyMs: 30_000, pipelineFreshnessMs: 15_000,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    const int = (min: number, max: number) => {
      const n = Number(v());
      if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${a} must be an integer in ${min}..${max}`);
      return n;
    };
    if (a === "--only") {
      const x = v();
      const k = ONLY.find((y) => y === x);
      if (k === undefined) throw new Error(`--only is one of ${ONLY.join(", ")}`);
      o.only = k;
    } else if (a === "--quick") {
      o.windowRecords = 1_000_000;
      o.ingestEvents = 200_000;
      o.freshnessPhaseMs = 5_000;
      o.historyEvents = 200_000;
      o.summaryMs = 5_000;
      o.fanoutWindowMs = 5_000;
      o.kafkaRecords = 200_000;
      o.pipelineEvents = 200_000;
      o.pipelineSteadyMs = 15_000;
      o.pipelineFreshnessMs = 8_000;
    } else if (a === "--kafka-records") o.kafkaRecords = int(10_000, 5_000_000);
    else if (a === "--pipeline-events") o.pipelineEvents = int(10_000, 5_000_000);
    else if (a === "--clients") o.fanoutClients = int(10, 5_000);
    else if (a === "--history") o.historyEvents = int(10_000, 2_000_000); else if (a === "--records") o.windowRecords = int(10_000, 20_000_000);
    else if (a === "--events") o.ingestEvents = int(10_000, 5_000_000);
    else if (a === "--batch") o.perBatch = int(1, 10_000);
    else if (a === "--concurrency") o.concurrency = int(1, 64);
    else if (a === "--profile-server") o.profileServer = true;
    else
      throw new Error(
        `unknown option ${a} (--only ${ONLY.join("|")}, --quick, --records n, --events n, --batch n, --concurrency n, --profile-server, --clients n, --history n, --kafka-records n, --pipeline-events n)`,
      );
  }
  return o;
}

const fmt = (n: number | null | undefined, digits = 0) =>
  n === null || n === undefined || !Number.isFinite(n) ? "n/a" : n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const say = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

interface Row {
  what: string;
  value: string;
  target: string;
  goal: string;
  status: string;
}

function verdict(value: number | null, target: number, goal: number, higherIsBetter: boolean): string {
  if (value === null || !Number.isFinite(value)) return "NOT MEASURED";
  const ok = (limit: number) => (higherIsBetter ? value >= limit : value <= limit);
  return ok(goal) ? "met (goal too)" : ok(target) ? "met" : "MISSED";
}

function contentionRow(c: Contention): Row {
  const pct = c.foreignShare * 100;
  return { what: "  CPU taken by other processes meanwhile", value: `${fmt(pct)} % of all cores`, target: "", goal: "", status: pct > 10 ? "CONTENDED: rerun" : "quiet" };
}

async function windowBench(o: Options) {
  say(`building ${fmt(o.windowRecords)} ring records from the generator...`);
  const t = performance.now();
  const set: RecordSet = buildRecords({
    records: o.windowRecords,
    partitions: PARTITIONS,
    seed: 42,
    rate: 50_000,
    users: USERS,
    products: PRODUCTS,
    startTime: Date.now() - 3_600_000,
  });
  const buildMs = performance.now() - t;
  say(`built ${fmt(set.count)} records (${fmt(set.events)} events, ${fmt((set.maxTime - set.minTime) / 1000, 1)} s of event time) in ${fmt(buildMs)} ms`);

  applyRun(set, PARTITIONS, Math.min(set.count, 500_000)); // JIT warm-up, not reported
  const runs: ApplyRun[] = [];
  const started = performance.now();
  const { contention } = await withContention(() => {
    for (let i = 0; i < 3 && performance.now() - started < 60_000; i++) {
      runs.push(applyRun(set, PARTITIONS, set.count));
      say(`apply run ${i + 1}: ${fmt(runs.at(-1)!.recordsPerSec)} records/s`);
    }
  });
  say(`other processes used ${fmt(contention.foreignShare * 100)} % of the machine during the apply runs`);
  const withCapture = applyRun(set, PARTITIONS, set.count, 1 << 18);
  say(`apply + capture every 262144: ${fmt(withCapture.recordsPerSec)} records/s`);
  let handoffOnly = null;
  let handoffApply = null;
  try {
    handoffOnly = await handoffRun(set, PARTITIONS, false);
    handoffApply = await handoffRun(set, PARTITIONS, true);
    say(`ring hand-off alone ${fmt(handoffOnly.recordsPerSec)} records/s; with apply ${fmt(handoffApply.recordsPerSec)} records/s`);
  } catch (err) {
    say(`ring hand-off failed: ${(err as Error).message}`);
  }
  return {
    records: set.count,
    events: set.events,
    eventTimeSpanS: (set.maxTime - set.minTime) / 1000,
    generatorRatePerSec: 50_000,
    partitions: PARTITIONS,
    strings: set.strings.length,
    kinds: set.kinds,
    buildMs,
    runs,
    contention,
    medianRecordsPerSec: median(runs.map((r) => r.recordsPerSec)),
    bestRecordsPerSec: Math.max(...runs.map((r) => r.recordsPerSec)),
    withCaptureEvery262144: withCapture,
    ringHandoffOnly: handoffOnly,
    ringHandoffWithApply: handoffApply,
  };
}

async function ingestBench(o: Options) {
  const warmupBodies = 50;
  say(`generating ${fmt(o.ingestEvents)} events (+${warmupBodies} warm-up batches) as NDJSON bodies of ${o.perBatch}...`);
  const t = performance.now();
  const batches: Batches = buildBatches({
    events: o.ingestEvents + warmupBodies * o.perBatch,
    perBatch: o.perBatch,
    seed: 7,
    rate: 2_000,
    startTime: Date.now() - 30 * 60_000,
    users: USERS,
    products: PRODUCTS,
  });
  say(
    `generated ${fmt(batches.events)} events, ${fmt(batches.bytes / 1e6, 1)} MB, ${fmt(batches.distinctUsers)} users, ` +
      `${fmt(batches.distinctProducts)} products, in ${fmt(performance.now() - t)} ms`,
  );
  let server: ServerChild | null = null;
  const profDir = o.profileServer ? mkdtempSync(join(tmpdir(), "rtae-bench-prof-")) : null;
  try {
    server = await startServer([], 30_000, profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : []);
    say(`server ${server.url} pid ${server.pid} ready; posting with ${o.concurrency} concurrent requests...`);
    const s = server;
    const { value: ingest, contention } = await withContention(
      () => runIngest(s, batches, { concurrency: o.concurrency, maxMs: o.ingestMaxMs, catchUpTimeoutMs: 120_000, warmupBodies }),
      () => processCpuS(s.pid),
    );
    say(`other processes used ${fmt(contention.foreignShare * 100)} % of the machine during ingest (warm-up included)`);
    say(
      `accepted ${fmt(ingest.accepted)} in ${fmt(ingest.postMs)} ms = ${fmt(ingest.acceptedPerSec)} events/s; ` +
        `all counted after ${fmt(ingest.endToEndMs)} ms`,
    );
    const memory = await readMemory(server, 30_000);
    say(`server RSS ${fmt(memory.rssMB, 1)} MB, settled ${fmt(memory.rssSettledMB, 1)} MB, peak ${fmt(memory.peakMB, 1)} MB`);
    // best effort: the Prometheus endpoint, if the server has one, says what checkpoints cost
    let serverMetrics: string | null = null;
    try {
      const r = await fetch(`${server.url}/metrics`, { signal: AbortSignal.timeout(5000) });
      if (r.status === 200) serverMetrics = (await r.text()).split("\n").filter((l) => l !== "" && !l.startsWith("#")).join("\n").slice(0, 20_000);
    } catch {}
    const transport = await runTransportOnly(server, batches, o.concurrency, 5_000);
    say(`HTTP transport alone (415 path): ${fmt(transport.eventsPerSec)} events/s`);
    const logTail = serverLogTail(server, 200)
      .split("\n")
      .filter((l) => /"level":"(warn|error)"/.test(l))
      .slice(-10);
    await server.stop(); // graceful: the profiler writes its file on exit
    server = null;
    const serverProfile = profDir ? summariseProfile(profDir) : null;

    say("profiling ingest stages in process...");
    const { value: profile, contention: profileContention } = await withContention(() => profileIngest(batches.bodies.slice(0, 200)));
    return {
      feed: {
        events: batches.events,
        bytes: batches.bytes,
        perBatch: o.perBatch,
        distinctUsers: batches.distinctUsers,
        distinctSessions: batches.distinctSessions,
        distinctProducts: batches.distinctProducts,
        minTs: new Date(batches.minTs).toISOString(),
        maxTs: new Date(batches.maxTs).toISOString(),
      },
      ingest,
      contention,
      memory,
      transport,
      profile,
      profileContention,
      serverProfile,
      serverMetrics,
      serverWarnings: logTail,
    };
  } catch (err) {
    if (server) process.stderr.write(`server log tail:\n${serverLogTail(server)}\n`);
    throw err;
  } finally {
    await server?.stop();
    if (profDir) rmSync(profDir, { recursive: true, force: true });
  }
}

/** A fresh `rtae serve` child for one live bench, with the CPU other processes took meanwhile. */
async function onServer<T>(fdLimit: number | undefined, fn: (s: ServerChild) => Promise<T>): Promise<{ value: T; contention: Contention; fdLimit: number | undefined }> {
  const server = await startServer([], 30_000, [], fdLimit);
  say(`server ${server.url} pid ${server.pid} ready`);
  try {
    const r = await withContention(() => fn(server), () => processCpuS(server.pid));
    return { ...r, fdLimit };
  } catch (err) {
    process.stderr.write(`server log tail:\n${serverLogTail(server)}\n`);
    throw err;
  } finally {
    await server.stop();
  }
}

const ms = (x: number) => fmt(x, x < 10 ? 1 : 0);

function freshnessRows(r: FreshnessResult, c: Contention): Row[] {
  const rows: Row[] = [];
  for (const p of r.phases) {
    const l = p.latencyMs;
    const main = p.rate === 10_000;
    const unseen = l.unseen > 0 ? ` (${l.unseen} of ${l.markers} never seen)` : "";
    rows.push({
      what: `freshness: 202 -> SSE overview delta @ ${fmt(p.rate)} ev/s`,
      value: `p50 ${ms(l.p50)} / p99 ${ms(l.p99)} ms${unseen}`,
      target: main ? "p99 < 100 ms" : "",
      goal: main ? "p99 < 25 ms" : "",
      status: main ? (l.unseen > 0 ? "MISSED" : verdict(l.p99, 100, 25, false)) : "info",
    });
    rows.push({ what: "  accepted (one POST in flight, paced)", value: `${fmt(p.ingest.acceptedPerSec)} ev/s, POST p99 ${ms(p.ingest.postLatencyMs.p99)} ms`, target: "", goal: "", status: p.ingest.keptUp ? "kept up" : "FELL BEHIND" });
    const s = p.summaryLatencyMs;
    rows.push({ what: "  same, first delta whose summary.events.total counts it", value: `p50 ${ms(s.p50)} / p99 ${ms(s.p99)} ms`, target: "", goal: "", status: "info" });
  }
  rows.push(contentionRow(c));
  return rows;
}

function summaryRows(r: SummaryLoadResult, c: Contention, o: Options): Row[] {
  const q = (x: { latencyMs: { p50: number; p99: number; max: number }; queriesPerSec: number }) =>
    `p50 ${ms(x.latencyMs.p50)} / p99 ${ms(x.latencyMs.p99)} / max ${ms(x.latencyMs.max)} ms, ${fmt(x.queriesPerSec)} q/s`;
  return [
    {
      what: `GET summary (last hour, ${fmt(r.backfill.accepted)} ev history), ${o.summaryLoops} loops + ${fmt(r.ingest.rate)} ev/s`,
      value: q(r.loaded),
      target: "p99 < 10 ms",
      goal: "p99 < 2 ms",
      status: r.loaded.failed > 0 ? "MISSED" : verdict(r.loaded.latencyMs.p99, 10, 2, false),
    },
    { what: "  1 loop, no ingest (one query's service time)", value: q(r.single), target: "", goal: "", status: "info" },
    { what: `  ${o.summaryLoops} loops, no ingest`, value: q(r.idle), target: "", goal: "", status: "info" },
    { what: `  GET /ready, ${o.summaryLoops} loops + ingest (HTTP + client floor)`, value: q(r.floor), target: "", goal: "", status: "info" },
    { what: "  server main thread, no queries, no ingest", value: `${fmt(r.backgroundMainShare * 100)} % busy`, target: "", goal: "", status: "info" },
    { what: "  concurrent ingest accepted", value: `${fmt(r.ingest.acceptedPerSec)} ev/s, POST p99 ${ms(r.ingest.postLatencyMs.p99)} ms`, target: "", goal: "", status: r.ingest.keptUp ? "kept up" : "FELL BEHIND" },
    contentionRow(c),
  ];
}

function fanoutRows(r: FanoutResult, c: Contention): Row[] {
  const extra = [r.resyncs > 0 ? `${r.resyncs} resyncs` : "", r.streamsEnded > 0 ? `${r.streamsEnded} streams ended` : "", r.connectFailed > 0 ? `${r.connectFailed} failed to connect` : ""]
    .filter((x) => x !== "")
    .join(", ");
  return [
    {
      what: `SSE fan-out: ${fmt(r.connected)}/${fmt(r.clients)} clients, ${fmt(r.ids)} deltas in ${fmt(r.windowMs / 1000)} s`,
      value: (r.allDelivered ? "all delivered" : `${fmt(r.missing)} missing in ${fmt(r.clientsMissingAny)} clients`) + (extra ? ` (${extra})` : ""),
      target: "all delivered",
      goal: "",
      status: r.allDelivered ? "met" : "MISSED",
    },
    { what: "  delivery lag vs the earliest receiver of each id", value: `p50 ${ms(r.lagMs.p50)} / p99 ${ms(r.lagMs.p99)} / max ${ms(r.lagMs.max)} ms`, target: "p99 < 200 ms", goal: "", status: r.lagMs.p99 < 200 ? "met" : "MISSED" },
    {
      what: `  CPU, share of one core: server / ${r.clientProcesses} client processes`,
      value: `${fmt(r.serverCoreShare * 100)} % / ${r.clientCoreShare.map((x) => `${fmt(x * 100)} %`).join(" + ")}`,
      target: "",
      goal: "",
      status: r.clientCoreShare.some((x) => x > 0.8) ? "CLIENT-BOUND" : "info",
    },
    {
      what: `memory per idle SSE client (server RSS, 0 vs ${fmt(r.connected)})`,
      value: `${fmt(r.memory.kbPerClient, 1)} KB (${fmt(r.memory.rss0MB, 1)} -> ${fmt(r.memory.rssIdleMB, 1)} MB)${r.memory.settledIdle ? "" : " (still moving)"}`,
      target: "",
      goal: "",
      status: "info",
    },
    { what: "  server open-file limit (soft)", value: fmt(r.serverOpenFiles.soft), target: "", goal: "", status: r.serverOpenFiles.soft > r.clients + 100 ? "enough" : "TOO LOW" },
    contentionRow(c),
  ];
}

function kafkaClientsRows(k: KafkaClientsResult): Row[] {
  const rows: Row[] = [
    {
      what: `Kafka produce, kafkajs sink (${fmt(k.records)} x ${k.avgRecordBytes} B, ${k.partitions} partitions)`,
      value: `${fmt(k.produce.recordsPerSec)} rec/s, ${fmt(k.produce.mbPerSec, 1)} MB/s`,
      target: "",
      goal: "",
      status: "info",
    },
  ];
  for (const client of ["kafkajs", "platformatic"]) {
    const b = k.best[client];
    const what = `Kafka consume via KafkaSource, ${client === "kafkajs" ? "kafkajs" : "@platformatic/kafka"} ${k.versions[client]} (best of ${k.runs.filter((r) => r.client === client).length})`;
    const m = k.median[client];
    if (!b) {
      rows.push({ what, value: "FAILED", target: "", goal: "", status: (k.failures[client] ?? "no run").split("\n")[0].slice(0, 120) });
      continue;
    }
    rows.push({
      what,
      value: `${fmt(b.recordsPerSec)} rec/s, ${fmt(b.mbPerSec, 1)} MB/s (median ${fmt(m?.recordsPerSec)} rec/s)`,
      target: "",
      goal: "",
      status: b.anomalies > 0 ? `${b.anomalies} ORDER/DUPLICATE ANOMALIES` : "info",
    });
    rows.push({ what: "  join; client CPU per 1 M records (median); broker CPU", value: `${fmt(b.joinMs)} ms; ${fmt(m?.cpuSPerMillion, 2)} s; ${fmt((b.brokerCpuS / b.records) * 1e6, 2)} s`, target: "", goal: "", status: "info" });
    rows.push(contentionRow(b.contention));
  }
  return rows;
}

function kafkaPipelineRows(k: KafkaPipelineResult): Row[] {
  const c = k.catchUp;
  const s = k.steady;
  const f = k.freshness.phases[0];
  const lag = (x: { p50: number; p99: number; max: number; samples: number; slowestMs: number }) =>
    `p50 ${fmt(x.p50)} / p99 ${fmt(x.p99)} / max ${fmt(x.max)} rec = ${ms((x.p50 / s.rate) * 1000)} / ${ms((x.p99 / s.rate) * 1000)} / ${ms((x.max / s.rate) * 1000)} ms (${x.samples} samples, slowest ${fmt(x.slowestMs)} ms)`;
  const svc = (x: Record<string, number>) => Object.entries(x).map(([n, v]) => `${n} ${fmt(v, 1)} s`).join(", ");
  const rows: Row[] = [
    {
      what: `Kafka -> aggregates, ${fmt(c.events)} pre-filled events, 1 instance x ${k.deployment.workers} workers, ${k.deployment.partitions} partitions`,
      value: `${fmt(c.eventsPerSec)} ev/s (${fmt(c.ms / 1000, 1)} s from first assignment to processed, lag 0)`,
      target: "≥ 100,000",
      goal: "≥ 250,000",
      status: verdict(c.eventsPerSec, 100e3, 250e3, true),
    },
    { what: "  rtae CPU (main + workers + JIT/GC/other); RSS at the end (peak)", value: `${fmt(c.cpuS.main, 1)} + ${fmt(c.cpuS.workers, 1)} + ${fmt(c.cpuS.otherThreads, 1)} s = ${fmt(c.cores, 2)} cores; ${fmt(c.rssMB)} MB (${fmt(c.peakRssMB)})`, target: "", goal: "", status: "info" },
    { what: "  services CPU meanwhile", value: svc(c.servicesCpuS), target: "", goal: "", status: "info" },
    {
      what: "  spawn -> first assignment; assignments / revocations; records read",
      value: `${fmt(c.joinMs)} ms; ${c.assignments} / ${c.revocations}; ${fmt(c.processedTotal)}`,
      target: "",
      goal: "",
      status: c.processedTotal > c.events ? "re-read after rebalance" : "info",
    },
    {
      what: "  first assignment -> summary decides all (counted, duplicate, late-dropped)",
      value: c.summaryAllMs === null ? `not within 60 s (${fmt(c.summary.total)} counted)` : `${fmt(c.eventsPerSecBySummary)} ev/s, ${fmt(c.summaryAllMs / 1000, 1)} s (${fmt(c.summary.total)} / ${fmt(c.summary.duplicates)} / ${fmt(c.summary.lateDropped)})`,
      target: "",
      goal: "",
      status: c.summaryAllMs === null ? "MISSED" : c.summary.lateDropped > 0 ? "LATE-DROPPED" : "info",
    },
    contentionRow(c.contention),
  ];
  if (f) {
    const l = f.latencyMs;
    rows.push({
      what: `freshness, Kafka mode: 202 (in Kafka) -> SSE delta @ ${fmt(f.rate)} ev/s`,
      value: `p50 ${ms(l.p50)} / p99 ${ms(l.p99)} ms${l.unseen > 0 ? ` (${l.unseen} of ${l.markers} never seen)` : ""}`,
      target: "p99 < 100 ms",
      goal: "p99 < 25 ms",
      status: l.unseen > 0 ? "MISSED" : verdict(l.p99, 100, 25, false),
    });
    rows.push({ what: "  accepted (one POST in flight, paced); SSE deltas/s", value: `${fmt(f.ingest.acceptedPerSec)} ev/s, POST p99 ${ms(f.ingest.postLatencyMs.p99)} ms; ${fmt(f.deltasPerSec, 1)}`, target: "", goal: "", status: f.ingest.keptUp ? "kept up" : "FELL BEHIND" });
    rows.push(contentionRow(k.freshness.contention));
  }
  rows.push({ what: `consumer lag @ ${fmt(s.rate)} ev/s into Kafka, ${fmt(s.ms / 1000)} s: rtae_consumer_lag_records`, value: lag(s.metricLag), target: "", goal: "", status: "info" });
  rows.push({ what: "  same, broker-acked (at send) minus decided by the summary", value: lag(s.countedLag), target: "", goal: "", status: "info" });
  rows.push({ what: "  same, acked read at the answer instead (upper bound)", value: lag(s.countedLagUpper), target: "", goal: "", status: "info" });
  rows.push({ what: "  same, end offsets minus group-committed offsets (broker)", value: lag(s.committedLag), target: "", goal: "", status: "info" });
  rows.push({ what: "  produced (kafkajs sink, paced); summary drained after the last append", value: `${fmt(s.producedPerSec)} ev/s; ${s.drainMs === null ? "not in 15 s" : `${fmt(s.drainMs - s.ms)} ms`}`, target: "", goal: "", status: s.keptUp ? "kept up" : "FELL BEHIND" });
  rows.push(contentionRow(s.contention));
  return rows;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const machine = machineFacts();
  const benchStart = performance.now();
  say(`${machine.cpuModel}, ${machine.cores} cores, ${fmt(machine.memoryMiB)} MiB, bun ${machine.bunVersion}, ${machine.date}`);
  const result: Record<string, unknown> = { machine, options: o, loadAverageAtStart: loadAverage() };
  const rows: Row[] = [];
  let failed = false;

  if (o.only === "all" || o.only === "window") {
    try {
      const w = await windowBench(o);
      result.window = w;
      rows.push({ what: "window core, apply + advance/4096 (median of 3)", value: `${fmt(w.medianRecordsPerSec)} rec/s`, target: "≥ 5,000,000", goal: "≥ 20,000,000", status: verdict(w.medianRecordsPerSec, 5e6, 20e6, true) });
      rows.push(contentionRow(w.contention));
      rows.push({ what: "  same, with capture() every 262 144 records", value: `${fmt(w.withCaptureEvery262144.recordsPerSec)} rec/s`, target: "", goal: "", status: "info" });
      if (w.ringHandoffOnly) rows.push({ what: "  ring hand-off Worker -> main, release only", value: `${fmt(w.ringHandoffOnly.recordsPerSec)} rec/s`, target: "", goal: "", status: "info" });
      if (w.ringHandoffWithApply) rows.push({ what: "  ring hand-off + apply (drain loop)", value: `${fmt(w.ringHandoffWithApply.recordsPerSec)} rec/s`, target: "", goal: "", status: "info" });
    } catch (err) {
      failed = true;
      result.windowError = (err as Error).stack ?? String(err);
      say(`window bench failed: ${result.windowError}`);
    }
  }

  if (o.only === "all" || o.only === "ingest") {
    try {
      const h = await ingestBench(o);
      result.http = h;
      const i = h.ingest;
      rows.push({ what: `HTTP NDJSON ingest, durable (${o.perBatch}/req, ${o.concurrency} concurrent)`, value: `${fmt(i.acceptedPerSec)} ev/s`, target: "≥ 300,000", goal: "≥ 1,000,000", status: verdict(i.acceptedPerSec, 300e3, 1e6, true) });
      rows.push(contentionRow(h.contention));
      rows.push({ what: "  end to end: first POST -> summary counts all", value: i.endToEndPerSec === null ? "not reached" : `${fmt(i.endToEndPerSec)} ev/s (${fmt(i.endToEndMs)} ms)`, target: "", goal: "", status: "info" });
      rows.push({ what: "  HTTP transport alone (body read, 415)", value: `${fmt(h.transport.eventsPerSec)} ev/s`, target: "", goal: "", status: "info" });
      rows.push({ what: `resident memory, ${fmt(h.feed.distinctUsers)} users / ${fmt(h.feed.distinctProducts)} products (settled)`, value: `${fmt(h.memory.rssSettledMB, 1)} MB after ${fmt(h.memory.settleMs / 1000)} s${h.memory.stable ? "" : " (still moving)"}`, target: "≤ 300 MB", goal: "≤ 150 MB", status: verdict(h.memory.rssSettledMB, 300, 150, false) });
      rows.push({ what: "  RSS right when all events were counted", value: `${fmt(h.memory.rssMB, 1)} MB`, target: "", goal: "", status: "info" });
      rows.push({ what: "  peak RSS during ingest", value: `${fmt(h.memory.peakMB, 1)} MB`, target: "", goal: "", status: "info" });
      if (i.failedRequests > 0 || i.rejected > 0 || i.firstError) {
        rows.push({ what: "  ingest problems", value: `${i.failedRequests} failed req, ${i.rejected} rejected`, target: "", goal: "", status: i.firstError ?? "" });
      }
    } catch (err) {
      failed = true;
      result.httpError = (err as Error).stack ?? String(err);
      say(`ingest bench failed: ${result.httpError}`);
    }
  }
  const live = (k: "freshness" | "summary" | "fanout") => o.only === "all" || o.only === "live" || o.only === k;
  if (live("freshness")) {
    try {
      const { value, contention } = await onServer(undefined, (srv) => freshnessBench(srv, { rates: o.freshnessRates, phaseMs: o.freshnessPhaseMs, say }));
      result.freshness = { ...value, contention };
      rows.push(...freshnessRows(value, contention));
    } catch (err) {
      failed = true;
      result.freshnessError = (err as Error).stack ?? String(err);
      say(`freshness bench failed: ${result.freshnessError}`);
    }
  }
  if (live("summary")) {
    try {
      const { value, contention } = await onServer(undefined, (srv) =>
        summaryLoadBench(srv, { historyEvents: o.historyEvents, rate: 10_000, loops: o.summaryLoops, ms: o.summaryMs, say }),
      );
      result.summaryLoad = { ...value, contention };
      rows.push(...summaryRows(value, contention, o));
    } catch (err) {
      failed = true;
      result.summaryLoadError = (err as Error).stack ?? String(err);
      say(`summary bench failed: ${result.summaryLoadError}`);
    }
  }
  if (live("fanout")) {
    try {
      const { value, contention } = await onServer(65_536, (srv) =>
        fanoutBench(srv, { clients: o.fanoutClients, processes: 2, rate: 2_000, windowMs: o.fanoutWindowMs, say }),
      );
      // the client processes are this bench's own load, not contention
      const clientS = value.clientCpuS.reduce((a, x) => a + x, 0);
      const foreign = Math.max(0, contention.foreignCpuS - clientS);
      const adjusted: Contention = {
        ...contention,
        foreignCpuS: Math.round(foreign * 100) / 100,
        foreignShare: contention.foreignCpuS > 0 ? Math.round(contention.foreignShare * (foreign / contention.foreignCpuS) * 1000) / 1000 : contention.foreignShare,
      };
      result.fanout = { ...value, contention: adjusted };
      rows.push(...fanoutRows(value, adjusted));
    } catch (err) {
      failed = true;
      result.fanoutError = (err as Error).stack ?? String(err);
      say(`fan-out bench failed: ${result.fanoutError}`);
    }
  }
  if (o.only === "all" || o.only === "kafka-clients") {
    try {
      if (!(await brokerReachable())) {
        if (o.only === "kafka-clients") throw new Error("no Kafka broker on 127.0.0.1:9092 (bash scripts/services.sh up kafka)");
        rows.push({ what: "Kafka clients through KafkaSource", value: "skipped: no broker on 127.0.0.1:9092", target: "", goal: "", status: "NOT MEASURED" });
      } else {
        const k = await kafkaClientsBench({ records: o.kafkaRecords, rounds: 3, say });
        result.kafkaClients = k;
        rows.push(...kafkaClientsRows(k));
      }
    } catch (err) {
      failed = true;
      result.kafkaClientsError = (err as Error).stack ?? String(err);
      say(`kafka-clients bench failed: ${result.kafkaClientsError}`);
    }
  }
  if (o.only === "all" || o.only === "kafka-pipeline") {
    try {
      const down = await pipelineServicesDown();
      if (down !== null) {
        rows.push({ what: "Kafka pipeline (Kafka -> aggregates, lag, freshness)", value: "skipped", target: "", goal: "", status: `NOT MEASURED: ${down}` });
      } else {
        const k = await kafkaPipelineBench({ events: o.pipelineEvents, steadyRate: 10_000, steadyMs: o.pipelineSteadyMs, freshnessMs: o.pipelineFreshnessMs, workers: 2, say });
        result.kafkaPipeline = k;
        rows.push(...kafkaPipelineRows(k));
      }
    } catch (err) {
      failed = true;
      result.kafkaPipelineError = (err as Error).stack ?? String(err);
      say(`kafka-pipeline bench failed: ${result.kafkaPipelineError}`);
    }
  }
  result.totalMs = performance.now() - benchStart;

  const out = join(import.meta.dir, "out");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "latest.json"), JSON.stringify(result, null, 2) + "\n");

  const m = machine;
  console.log(`\nrtae bench — ${m.date}\n${m.cpuModel} · ${m.cores} cores · ${fmt(m.memoryMiB)} MiB · bun ${m.bunVersion} · ${m.platform} ${m.kernel}\n`);
  const cols: Array<keyof Row> = ["what", "value", "target", "goal", "status"];
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => r[c].length)));
  const line = (r: Record<string, string>) => cols.map((c, k) => r[c].padEnd(width[k])).join("  ").trimEnd();
  console.log(line({ what: "what", value: "value", target: "target", goal: "goal", status: "status" }));
  console.log(width.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) console.log(line({ ...r }));
  const prof = (result.http as { profile?: { usPerEvent: Record<string, number> } } | undefined)?.profile;
  if (prof) {
    console.log("\ningest stage costs, in process, µs per event:");
    for (const [k, v] of Object.entries(prof.usPerEvent)) console.log(`  ${k.padEnd(52)} ${fmt(v, 2)}`);
  }
  const sp = (result.http as { serverProfile?: { samples: number; shares: Record<string, number> } | null } | undefined)?.serverProfile;
  if (sp) {
    console.log(`\nserver main thread under --cpu-prof (${sp.samples} samples; throughput numbers of this run are lowered by the profiler):`);
    for (const [k, v] of Object.entries(sp.shares)) console.log(`  ${k.padEnd(58)} ${fmt(v * 100, 1)} %`);
  }
  console.log(`\nfull results: bench/out/latest.json (${fmt((result.totalMs as number) / 1000, 1)} s)`);
  if (failed) process.exitCode = 1;
}

try {
  await main();
} finally {
  await stopAll();
}
