// HTTP NDJSON ingest against a real `rtae serve` child: pre-generated batches POSTed by a few concurrent
// fetch loops; accepted/s from the 202 bodies, then time until the summary shows every accepted event.

import { createGenerator, toNdjson } from "../src/generator/index.ts";
import { cpuDelta, memoryOf, threadCpu, type ServerChild } from "./proc.ts";

export interface Batches {
  bodies: Array<Uint8Array<ArrayBuffer>>;
  events: number;
  bytes: number;
  minTs: number;
  maxTs: number;
  distinctUsers: number;
  distinctProducts: number;
  distinctSessions: number;
}

/** Generates `events` events in NDJSON bodies of `perBatch`, timestamps ending well inside the last hour. */
export function buildBatches(o: { events: number; perBatch: number; seed: number; rate: number; startTime: number; users: number; products: number }): Batches {
  const gen = createGenerator({ seed: o.seed, rate: o.rate, startTime: o.startTime, users: o.users, products: o.products });
  const enc = new TextEncoder();
  const bodies: Array<Uint8Array<ArrayBuffer>> = [];
  const users = new Set<string>();
  const products = new Set<string>();
  const sessions = new Set<string>();
  let minTs = Infinity;
  let maxTs = -Infinity;
  let bytes = 0;
  let events = 0;
  while (events < o.events) {
    const batch = gen.next(Math.min(o.perBatch, o.events - events));
    for (const e of batch) {
      if (e.timestamp < minTs) minTs = e.timestamp;
      if (e.timestamp > maxTs) maxTs = e.timestamp;
      if (e.userId !== undefined) users.add(e.userId);
      if (e.sessionId !== undefined) sessions.add(e.sessionId);
      if (e.productId !== undefined) products.add(e.productId);
      if (e.items) for (const it of e.items) products.add(it.productId);
    }
    const body = enc.encode(toNdjson(batch));
    bytes += body.length;
    bodies.push(body);
    events += batch.length;
  }
  return { bodies, events, bytes, minTs, maxTs, distinctUsers: users.size, distinctProducts: products.size, distinctSessions: sessions.size };
}

export interface IngestRun {
  concurrency: number;
  /** events sent and processed before timing started */
  warmupEvents: number;
  requests: number;
  sent: number;
  accepted: number;
  rejected: number;
  failedRequests: number;
  statusCounts: Record<string, number>;
  postMs: number;
  acceptedPerSec: number;
  requestLatencyMs: { p50: number; p99: number; max: number };
  /** time from the first POST until the summary counted every accepted event; null when not reached */
  endToEndMs: number | null;
  endToEndPerSec: number | null;
  /** lag after the last 202 until the summary counted every event */
  catchUpMs: number | null;
  summaryTotal: number;
  summaryLate: { merged: number; dropped: number };
  summaryDuplicates: number;
  /** server CPU seconds per thread during the POST phase and during catch-up */
  serverCpuPost: Record<string, number>;
  serverCpuCatchUp: Record<string, number>;
  /** CPU seconds of the bench process itself (fetch client) during the POST phase */
  clientCpuPostS: number;
  firstError: string | null;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

interface SummaryBody {
  events?: { total?: number };
  late?: { merged?: number; dropped?: number };
  duplicates?: number;
}

interface PostTotals {
  /** requests answered (any status) */
  sent: number;
  accepted: number;
  rejected: number;
  /** requests answered with another status than 202, or not answered */
  failed: number;
  /** requests that got no answer (network error, timeout) */
  thrown: number;
  statusCounts: Record<string, number>;
  latencies: number[];
  firstError: string | null;
}

/** POSTs bodies[from, to) with `concurrency` loops; no new request starts after `deadline`. */
async function postRange(
  server: ServerChild,
  bodies: Array<Uint8Array<ArrayBuffer>>,
  from: number,
  to: number,
  concurrency: number,
  deadline: number,
  contentType = "application/x-ndjson",
): Promise<PostTotals> {
  const url = `${server.url}/api/events`;
  const t: PostTotals = { sent: 0, accepted: 0, rejected: 0, failed: 0, thrown: 0, statusCounts: {}, latencies: [], firstError: null };
  let next = from;
  async function loop(): Promise<void> {
    while (next < to && performance.now() < deadline && !server.exited()) {
      const body = bodies[next++];
      const s = performance.now();
      try {
        const r = await fetch(url, { method: "POST", headers: { "content-type": contentType }, body, signal: AbortSignal.timeout(30_000) });
        const text = await r.text();
        t.latencies.push(performance.now() - s);
        t.statusCounts[r.status] = (t.statusCounts[r.status] ?? 0) + 1;
        t.sent++;
        if (r.status === 202) {
          const j = JSON.parse(text) as { accepted: number; rejected: number; errors: Array<{ reason: string }> };
          t.accepted += j.accepted;
          t.rejected += j.rejected;
          if (j.rejected > 0 && t.firstError === null) t.firstError = `rejected: ${j.errors[0]?.reason}`;
        } else {
          t.failed++;
          if (t.firstError === null) t.firstError = `HTTP ${r.status}: ${text.slice(0, 300)}`;
        }
      } catch (err) {
        t.failed++;
        t.thrown++;
        if (t.firstError === null) t.firstError = `request failed: ${(err as Error).message}`;
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop));
  t.latencies.sort((x, y) => x - y);
  return t;
}

/** Polls the summary over [minTs, maxTs + 1) every 100 ms until it counts `target` events; ms waited or null. */
async function waitCounted(server: ServerChild, b: Batches, target: number, timeoutMs: number): Promise<{ ms: number | null; last: SummaryBody; error: string | null }> {
  const q = `${server.url}/api/metrics/summary?from=${b.minTs}&to=${b.maxTs + 1}`;
  const t0 = performance.now();
  let last: SummaryBody = {};
  let error: string | null = null;
  while (performance.now() - t0 < timeoutMs && !server.exited()) {
    try {
      const r = await fetch(q, { signal: AbortSignal.timeout(5000) });
      if (r.status === 200) {
        last = (await r.json()) as SummaryBody;
        const counted = (last.events?.total ?? 0) + (last.late?.dropped ?? 0) + (last.duplicates ?? 0);
        if (counted >= target) return { ms: performance.now() - t0, last, error };
      } else error ??= `summary HTTP ${r.status}: ${(await r.text()).slice(0, 300)}`;
    } catch (err) {
      error ??= `summary failed: ${(err as Error).message}`;
    }
    await Bun.sleep(100);
  }
  return { ms: null, last, error };
}

/**
 * Warm-up: the first `warmupBodies` are sent and fully processed untimed (a running server is warm).
 * Then the rest are POSTed by `concurrency` loops until all are sent or `maxMs` passed, and the
 * summary is polled every 100 ms for at most `catchUpTimeoutMs`.
 */
export async function runIngest(
  server: ServerChild,
  b: Batches,
  o: { concurrency: number; maxMs: number; catchUpTimeoutMs: number; warmupBodies: number },
): Promise<IngestRun> {
  const warm = await postRange(server, b.bodies, 0, o.warmupBodies, o.concurrency, performance.now() + 30_000);
  const warmed = await waitCounted(server, b, warm.accepted, 30_000);
  if (warmed.ms === null) throw new Error(`warm-up events never showed in the summary (${warm.firstError ?? warmed.error ?? "no error"})`);

  const cpu0 = threadCpu(server.pid);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  const post = await postRange(server, b.bodies, o.warmupBodies, b.bodies.length, o.concurrency, t0 + o.maxMs);
  const postMs = performance.now() - t0;
  const cpu1 = threadCpu(server.pid);
  const client = process.cpuUsage(client0);
  const caught = await waitCounted(server, b, warm.accepted + post.accepted, o.catchUpTimeoutMs);
  const cpu2 = threadCpu(server.pid);
  const endToEndMs = caught.ms === null ? null : postMs + caught.ms;
  const last = caught.last;
  return {
    concurrency: o.concurrency,
    warmupEvents: warm.accepted,
    requests: post.sent + post.thrown,
    sent: post.sent,
    accepted: post.accepted,
    rejected: post.rejected,
    failedRequests: post.failed,
    statusCounts: post.statusCounts,
    postMs,
    acceptedPerSec: post.accepted / (postMs / 1000),
    requestLatencyMs: { p50: quantile(post.latencies, 0.5), p99: quantile(post.latencies, 0.99), max: post.latencies.at(-1) ?? NaN },
    endToEndMs,
    endToEndPerSec: endToEndMs === null ? null : post.accepted / (endToEndMs / 1000),
    catchUpMs: caught.ms,
    summaryTotal: last.events?.total ?? 0,
    summaryLate: { merged: last.late?.merged ?? 0, dropped: last.late?.dropped ?? 0 },
    summaryDuplicates: last.duplicates ?? 0,
    serverCpuPost: cpuDelta(cpu0, cpu1),
    clientCpuPostS: Math.round((client.user + client.system) / 1e4) / 100,
    serverCpuCatchUp: cpuDelta(cpu1, cpu2),
    firstError: post.firstError ?? caught.error,
  };
}

export interface TransportRun {
  requests: number;
  eventsPerSec: number;
  mbPerSec: number;
  statusCounts: Record<string, number>;
}

/**
 * HTTP transport alone: the same bodies with an unsupported media type, which the route reads in
 * full and the door refuses (415) before parsing. Bounded by `maxMs` and the body count.
 */
export async function runTransportOnly(server: ServerChild, b: Batches, concurrency: number, maxMs: number): Promise<TransportRun> {
  const t0 = performance.now();
  const r = await postRange(server, b.bodies, 0, b.bodies.length, concurrency, t0 + maxMs, "application/octet-stream");
  const s = (performance.now() - t0) / 1000;
  const perBody = b.events / b.bodies.length;
  const bytesPerBody = b.bytes / b.bodies.length;
  return {
    requests: r.sent,
    eventsPerSec: (r.sent * perBody) / s,
    mbPerSec: (r.sent * bytesPerBody) / s / 1e6,
    statusCounts: r.statusCounts,
  };
}

export interface MemoryReading {
  /** right after the summary showed every event */
  rssMB: number;
  /** once RSS stopped moving without traffic (checkpoints flushed, freed pages returned) */
  rssSettledMB: number;
  /** (ms after the first reading, RSS MB) */
  samples: Array<[number, number]>;
  peakMB: number;
  settleMs: number;
  /** false when RSS was still moving at the end of the settle period */
  stable: boolean;
}

/**
 * RSS of the server now, then once a second without traffic until three readings in a row lie within
 * 3 % of each other (the allocator returns freed pages gradually) or `maxSettleMs` passed.
 */
export async function readMemory(server: ServerChild, maxSettleMs: number): Promise<MemoryReading> {
  const t0 = performance.now();
  const a = memoryOf(server.pid);
  const samples: Array<[number, number]> = [[0, a.rssMB]];
  const stable = () => {
    if (samples.length < 3) return false;
    const last = samples.slice(-3).map((x) => x[1]);
    return Math.max(...last) <= Math.min(...last) * 1.03;
  };
  while (performance.now() - t0 < maxSettleMs && !server.exited() && !stable()) {
    await Bun.sleep(1000);
    samples.push([Math.round(performance.now() - t0), memoryOf(server.pid).rssMB]);
  }
  const b = memoryOf(server.pid);
  return { rssMB: a.rssMB, rssSettledMB: b.rssMB, samples, peakMB: b.peakMB, settleMs: Math.round(performance.now() - t0), stable: stable() };
}
