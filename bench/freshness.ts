// Freshness: time from a POST /api/events 202 to the first SSE overview delta that counts its events, at
// paced rates. Exact because the producer keeps one request in flight: "accepted so far" is known at each 202.

import { buildFeed, overviewState, pacedIngest, quantile, readSse, type BatchAck, type PacedRun, type SseFrame } from "./live-feed.ts";
import { cpuDelta, threadCpu, type ServerChild } from "./proc.ts";

export interface Latency {
  markers: number;
  /** markers never reflected within the grace period after the phase */
  unseen: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** markers whose delta arrived before their 202 was read (counted as 0 ms) */
  beforeAck: number;
}

export interface FreshnessPhase {
  rate: number;
  ingest: PacedRun;
  /** first delta whose per-second event series (or summary) counts the marker's batch */
  latencyMs: Latency;
  /** first delta whose last-hour `summary.events.total` counts it (the summary may ride only on 1 s ticks) */
  summaryLatencyMs: Latency;
  deltasPerSec: number;
  serverCpu: Record<string, number>;
}

export interface FreshnessResult {
  phases: FreshnessPhase[];
  markerEveryMs: number;
  clientCpuS: number;
}

interface Point {
  at: number;
  summaryTotal: number;
  series: Array<[number, number]>;
}

function latencies(markers: BatchAck[], points: Point[], counted: (p: Point) => number, need: (m: BatchAck) => number): Latency {
  const out: number[] = [];
  let unseen = 0;
  let beforeAck = 0;
  for (const m of markers) {
    const target = need(m);
    // the batch cannot be counted by a frame that arrived before it was sent
    const p = points.find((x) => x.at >= m.sentAt && counted(x) >= target);
    if (!p) {
      unseen++;
      continue;
    }
    const d = p.at - m.ackAt;
    if (d < 0) beforeAck++;
    out.push(Math.max(0, d));
  }
  out.sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return { markers: markers.length, unseen, p50: r(quantile(out, 0.5)), p90: r(quantile(out, 0.9)), p99: r(quantile(out, 0.99)), max: r(out.at(-1) ?? NaN), beforeAck };
}

/** Runs one SSE client on topics=overview and a paced producer at each rate for `phaseMs`. */
export async function freshnessBench(server: ServerChild, o: { rates: number[]; phaseMs: number; markerEveryMs?: number; say: (m: string) => void }): Promise<FreshnessResult> {
  const markerEveryMs = o.markerEveryMs ?? 100;
  const say = o.say;
  const points: Point[] = [];
  const state = overviewState();
  const onFrame = (f: SseFrame) => {
    const v = state.apply(f);
    const s = v.summary as { events?: { total?: number } } | undefined;
    const series = (v.series as Array<{ t: string; value: number }> | undefined) ?? [];
    points.push({ at: f.at, summaryTotal: s?.events?.total ?? 0, series: series.map((p) => [Date.parse(p.t), p.value]) });
  };
  const sse = readSse(`${server.url}/api/stream?topics=overview`, onFrame);
  await sse.opened;
  const client0 = process.cpuUsage();
  const phases: FreshnessPhase[] = [];
  let acceptedBefore = 0;
  try {
    for (const [k, rate] of o.rates.entries()) {
      const events = Math.ceil((rate * o.phaseMs) / 1000 * 1.3) + 10_000;
      say(`freshness: generating ${events.toLocaleString("en-US")} events for ${rate.toLocaleString("en-US")} ev/s...`);
      const feed = buildFeed({ events, seed: 100 + k, idPrefix: `fr${k}-` });
      // quiet point: everything sent so far is in the summary, and the phase starts on a fresh second so
      // the per-second series of this phase holds only this phase's events
      const waitT = performance.now();
      while (performance.now() - waitT < 30_000 && (points.at(-1)?.summaryTotal ?? 0) < acceptedBefore) await Bun.sleep(50);
      await Bun.sleep(1000 - (Date.now() % 1000) + 5);
      const phaseSec = Math.floor(Date.now() / 1000) * 1000;
      const base = acceptedBefore;
      const firstPoint = points.length;
      const markers: BatchAck[] = [];
      let lastMarker = -Infinity;
      const cpu0 = threadCpu(server.pid);
      const ingest = await pacedIngest(`${server.url}/api/events`, feed, {
        rate,
        durationMs: o.phaseMs,
        intervalMs: rate >= 10_000 ? 10 : 20,
        onAck: (a) => {
          if (a.ackAt - lastMarker >= markerEveryMs) {
            markers.push(a);
            lastMarker = a.ackAt;
          }
        },
      });
      const cpu = cpuDelta(cpu0, threadCpu(server.pid));
      acceptedBefore += ingest.accepted;
      // grace: let the last markers show up (bounded)
      const graceT = performance.now();
      while (performance.now() - graceT < 10_000 && (points.at(-1)?.summaryTotal ?? 0) < acceptedBefore) await Bun.sleep(50);
      await Bun.sleep(300);
      const mine = points.slice(firstPoint);
      const seriesCount = (p: Point) => {
        let n = 0;
        for (const [t, v] of p.series) if (t >= phaseSec) n += v;
        return n;
      };
      const latencyMs = latencies(markers, mine, (p) => Math.max(seriesCount(p), p.summaryTotal - base), (m) => m.cumAccepted);
      const summaryLatencyMs = latencies(markers, mine, (p) => p.summaryTotal, (m) => base + m.cumAccepted);
      const inPhase = mine.filter((p) => p.at <= (markers.at(-1)?.ackAt ?? 0) && p.at >= (markers[0]?.sentAt ?? Infinity)).length;
      const spanS = ((markers.at(-1)?.ackAt ?? 0) - (markers[0]?.sentAt ?? 0)) / 1000;
      phases.push({ rate, ingest, latencyMs, summaryLatencyMs, deltasPerSec: spanS > 0 ? inPhase / spanS : NaN, serverCpu: cpu });
      say(
        `freshness @ ${rate} ev/s: accepted ${Math.round(ingest.acceptedPerSec)} ev/s, p50 ${latencyMs.p50} ms, p99 ${latencyMs.p99} ms ` +
          `(summary total: p50 ${summaryLatencyMs.p50}, p99 ${summaryLatencyMs.p99}), ${latencyMs.unseen} unseen of ${latencyMs.markers}`,
      );
    }
  } finally {
    sse.close();
    await sse.done;
  }
  const c = process.cpuUsage(client0);
  return { phases, markerEveryMs, clientCpuS: Math.round((c.user + c.system) / 1e4) / 100 };
}
