// Last-hour GET /api/metrics/summary under load: an hour of backfilled history, a paced ingest at the
// same time, and 8 query loops; the same loops on GET /ready give the HTTP + client floor to compare with.

import { bodyOf, buildFeed, pacedIngest, quantile, stamp, type PacedRun } from "./live-feed.ts";
import { cpuDelta, threadCpu, type ServerChild } from "./proc.ts";

export interface QueryLoad {
  path: string;
  loops: number;
  wallMs: number;
  queries: number;
  failed: number;
  queriesPerSec: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
}

export interface SummaryLoadResult {
  backfill: { events: number; accepted: number; ms: number; countedAfterMs: number | null; spanMin: number };
  /** summary answer seen at the start of the timed part */
  totalInSummary: number;
  /** server CPU per thread over 3 s without queries or ingest, and the main thread's share of one core */
  backgroundCpu: Record<string, number>;
  backgroundMainShare: number;
  /** one loop, no ingest: the service time of one query */
  single: QueryLoad;
  /** `loops` loops, no ingest */
  idle: QueryLoad;
  loaded: QueryLoad;
  floor: QueryLoad;
  ingest: PacedRun;
  floorIngest: PacedRun;
  serverCpu: Record<string, number>;
  clientCpuS: number;
  firstError: string | null;
}

async function queryLoops(base: string, pathOf: () => string, loops: number, ms: number, errors: { first: string | null }): Promise<QueryLoad> {
  const lat: number[] = [];
  let failed = 0;
  const t0 = performance.now();
  const end = t0 + ms;
  async function loop() {
    for (let i = 0; i < 1_000_000 && performance.now() < end; i++) {
      const s = performance.now();
      try {
        const r = await fetch(base + pathOf(), { signal: AbortSignal.timeout(10_000) });
        await r.arrayBuffer();
        if (r.status !== 200) {
          failed++;
          errors.first ??= `HTTP ${r.status}`;
          continue;
        }
        lat.push(performance.now() - s);
      } catch (err) {
        failed++;
        errors.first ??= (err as Error).message;
      }
    }
  }
  await Promise.all(Array.from({ length: loops }, loop));
  const wallMs = performance.now() - t0;
  lat.sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    path: pathOf().split("?")[0],
    loops,
    wallMs,
    queries: lat.length,
    failed,
    queriesPerSec: lat.length / (wallMs / 1000),
    latencyMs: { p50: r(quantile(lat, 0.5)), p90: r(quantile(lat, 0.9)), p99: r(quantile(lat, 0.99)), max: r(lat.at(-1) ?? NaN) },
  };
}

/**
 * Backfills `historyEvents` spread evenly over the last ~58 minutes (in time order, 2 requests in flight),
 * waits until the summary counts them, then runs `loops` summary loops for `ms` while ingesting `rate` ev/s.
 */
export async function summaryLoadBench(
  server: ServerChild,
  o: { historyEvents: number; rate: number; loops: number; ms: number; say: (m: string) => void },
): Promise<SummaryLoadResult> {
  const say = o.say;
  const errors = { first: null as string | null };
  say(`summary: generating ${o.historyEvents.toLocaleString("en-US")} history events + ${(o.rate * (o.ms + 4000) / 1000).toLocaleString("en-US")} live events...`);
  const hist = buildFeed({ events: o.historyEvents, seed: 300, idPrefix: "h-" });
  const liveFeed = buildFeed({ events: Math.ceil((o.rate * (o.ms + 4000)) / 1000 * 1.3), seed: 301, idPrefix: "l-" });
  const now = Date.now();
  const from = now - 58 * 60_000;
  const span = 57 * 60_000; // ends a minute before now: nothing is late against the live feed
  stamp(hist, 0, hist.count, (i) => from + Math.floor((i * span) / hist.count));

  // backfill in time order; 2 in flight keeps disorder within a batch or two (seconds of event time)
  const per = 1000;
  const t0 = performance.now();
  let nextBatch = 0;
  let accepted = 0;
  const batches = Math.ceil(hist.count / per);
  async function post() {
    while (nextBatch < batches && performance.now() - t0 < 120_000 && !server.exited()) {
      const b = nextBatch++;
      const body = bodyOf(hist, b * per, Math.min(hist.count, (b + 1) * per));
      try {
        const r = await fetch(`${server.url}/api/events`, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body, signal: AbortSignal.timeout(30_000) });
        const text = await r.text();
        if (r.status === 202) accepted += (JSON.parse(text) as { accepted: number }).accepted;
        else errors.first ??= `backfill HTTP ${r.status}: ${text.slice(0, 200)}`;
      } catch (err) {
        errors.first ??= `backfill: ${(err as Error).message}`;
      }
    }
  }
  await Promise.all([post(), post()]);
  const postMs = performance.now() - t0;
  say(`summary: backfilled ${accepted.toLocaleString("en-US")} events in ${Math.round(postMs)} ms; waiting until the summary counts them...`);
  const q = () => {
    const t = Date.now();
    return `/api/metrics/summary?from=${t - 3_600_000}&to=${t}`;
  };
  let counted: number | null = null;
  let total = 0;
  const w0 = performance.now();
  while (performance.now() - w0 < 120_000 && !server.exited()) {
    try {
      const j = (await (await fetch(server.url + q(), { signal: AbortSignal.timeout(10_000) })).json()) as { events: { total: number }; late: { dropped: number } };
      total = j.events.total;
      if (j.events.total + j.late.dropped >= accepted) {
        counted = performance.now() - t0;
        break;
      }
    } catch {}
    await Bun.sleep(100);
  }

  // what the server does on its own with this history (live topics and views recompute every 0.1–1 s)
  const bg0 = threadCpu(server.pid);
  await Bun.sleep(3000);
  const background = cpuDelta(bg0, threadCpu(server.pid));
  say(`summary: no traffic for 3 s: server main thread busy ${Math.round(((background.main ?? 0) / 3) * 100)} %`);
  const single = await queryLoops(server.url, q, 1, 3000, errors);
  say(`summary: 1 loop, no ingest: p50 ${single.latencyMs.p50} ms, p99 ${single.latencyMs.p99} ms`);
  const idle = await queryLoops(server.url, q, o.loops, 3000, errors);
  say(`summary: ${o.loops} query loops for ${o.ms} ms with ${o.rate} ev/s ingest...`);
  const cpu0 = threadCpu(server.pid);
  const c0 = process.cpuUsage();
  const [loaded, ingest] = await Promise.all([
    queryLoops(server.url, q, o.loops, o.ms, errors),
    pacedIngest(`${server.url}/api/events`, liveFeed, { rate: o.rate, durationMs: o.ms }),
  ]);
  const c = process.cpuUsage(c0);
  const serverCpu = cpuDelta(cpu0, threadCpu(server.pid));
  say("summary: same loops on GET /ready for 3 s (HTTP + client floor)...");
  const [floor, floorIngest] = await Promise.all([
    queryLoops(server.url, () => "/ready", o.loops, 3000, errors),
    pacedIngest(`${server.url}/api/events`, liveFeed, { rate: o.rate, durationMs: 3000, from: ingest.next }),
  ]);
  return {
    backfill: { events: hist.count, accepted, ms: postMs, countedAfterMs: counted, spanMin: span / 60_000 },
    totalInSummary: total,
    backgroundCpu: background,
    backgroundMainShare: Math.round(((background.main ?? 0) / 3) * 100) / 100,
    single,
    idle,
    loaded,
    floor,
    ingest,
    floorIngest,
    serverCpu,
    clientCpuS: Math.round((c.user + c.system) / 1e4) / 100,
    firstError: errors.first ?? ingest.firstError,
  };
}
