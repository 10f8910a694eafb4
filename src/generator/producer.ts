// `rtae produce`: generated events to an HTTP ingest endpoint as NDJSON POSTs, or as NDJSON lines to a writer.
// A failed batch is retried unchanged, so its eventIds let the engine drop whatever part of it already landed.

import { GeneratorError } from "./errors.ts";
import { createGenerator, type GeneratorOptions } from "./generator.ts";
import { createPrng } from "./prng.ts";
import { toNdjson, type WireEvent } from "./wire.ts";

export type ProducerTarget =
  | { url: string; headers?: Record<string, string> }
  /** receives whole NDJSON lines, one or more per call; a returned promise is awaited (backpressure) */
  | { write(chunk: string): unknown };

export interface ProducerOptions extends GeneratorOptions {
  /** events per second (wall clock), or of simulated time when unthrottled */
  rate: number;
  /** stop after this many events */
  count?: number;
  /** stop after this much wall-clock time */
  durationMs?: number;
  /** events per request, default 500 */
  batchSize?: number;
  target: ProducerTarget;
  signal?: AbortSignal;
  /** send as fast as the target takes; timestamps then follow the simulated clock, which by default
   *  starts count/rate seconds ago so a backfill ends about now */
  unthrottled?: boolean;
  /** requests in flight, default 1 */
  concurrency?: number;
  /** how often paced mode sends what is due, default 100 ms */
  tickMs?: number;
  /** retries of a batch after 5xx or network errors before it is abandoned, default 8 (429s retry without limit) */
  maxRetries?: number;
  /** per request, default 30 s */
  requestTimeoutMs?: number;
  /** default true */
  bursts?: boolean;
  /** default false */
  diurnal?: boolean;
  /** default Date.now */
  clock?: () => number;
  /** default setTimeout; must resolve early when the signal aborts */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface ProducerTotals {
  /** events handed to the target (each counted once, however often retried) */
  sent: number;
  accepted: number;
  rejected: number;
  /** HTTP attempts that failed: 429, 5xx, network errors and timeouts */
  failedRequests: number;
  /** events given up after maxRetries */
  abandoned: number;
}

const defaultSleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = (): void => {
      clearTimeout(h);
      resolve();
    };
    const h = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** Retry-After as milliseconds: delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (value === null || value.trim() === "") return null;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** Runs until `count` events, `durationMs` or the signal, whichever comes first, and returns the totals. */
export async function runProducer(opts: ProducerOptions): Promise<ProducerTotals> {
  const clock = opts.clock ?? Date.now;
  const sleep = opts.sleep ?? defaultSleep;
  const signal = opts.signal;
  const batchSize = Math.max(1, Math.floor(opts.batchSize ?? 500));
  const limit = opts.count ?? Infinity;
  const tickMs = opts.tickMs ?? 100;
  const maxRetries = opts.maxRetries ?? 8;
  const timeoutMs = opts.requestTimeoutMs ?? 30_000;
  const t0 = clock();
  const deadline = opts.durationMs !== undefined ? t0 + opts.durationMs : Infinity;
  const unthrottled = opts.unthrottled ?? false;
  const backfillStart = unthrottled && Number.isFinite(limit) ? t0 - (limit / opts.rate) * 1000 : t0;
  const gen = createGenerator({
    ...opts,
    startTime: opts.startTime ?? backfillStart,
    diurnal: opts.diurnal ?? false,
    bursts: opts.bursts ?? true,
  });
  const jitter = createPrng(opts.seed, "producer-backoff");
  const totals: ProducerTotals = { sent: 0, accepted: 0, rejected: 0, failedRequests: 0, abandoned: 0 };
  const target = opts.target;

  const done = (): boolean => signal?.aborted === true || totals.sent >= limit || clock() >= deadline;
  const backoff = (attempt: number): number => Math.min(5_000, 100 * 2 ** (attempt - 1)) * (0.5 + jitter.next() / 2);

  const postBatch = async (url: string, headers: Record<string, string>, batch: WireEvent[]): Promise<void> => {
    const body = toNdjson(batch);
    let attempt = 0;
    for (;;) {
      if (signal?.aborted) return;
      const timeout = AbortSignal.timeout(timeoutMs);
      let res: Response;
      try {
        res = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/x-ndjson", ...headers },
          body,
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        });
      } catch {
        if (signal?.aborted) return;
        totals.failedRequests++;
        if (++attempt > maxRetries) {
          totals.abandoned += batch.length;
          return;
        }
        await sleep(backoff(attempt), signal);
        continue;
      }
      if (res.ok || res.status === 400) {
        // 400 means none accepted; both carry {accepted, rejected} per the ingest contract.
        const counts = await readCounts(res);
        totals.accepted += counts?.accepted ?? (res.ok ? batch.length : 0);
        totals.rejected += counts?.rejected ?? (res.ok ? 0 : batch.length);
        return;
      }
      const text = await res.text().catch(() => "");
      if (res.status === 429) {
        totals.failedRequests++;
        attempt = Math.min(attempt + 1, 16);
        await sleep(parseRetryAfter(res.headers.get("retry-after"), clock()) ?? backoff(attempt), signal);
        continue;
      }
      if (res.status >= 500) {
        totals.failedRequests++;
        if (++attempt > maxRetries) {
          totals.abandoned += batch.length;
          return;
        }
        await sleep(backoff(attempt), signal);
        continue;
      }
      if (res.status === 413 && batch.length > 1) {
        const half = batch.length >> 1;
        await postBatch(url, headers, batch.slice(0, half));
        await postBatch(url, headers, batch.slice(half));
        return;
      }
      throw new GeneratorError("http_status", `ingest at ${url} answered ${res.status}: ${text.slice(0, 300)}`, false, res.status);
    }
  };

  const deliver = async (batch: WireEvent[]): Promise<void> => {
    if ("url" in target) return postBatch(target.url, target.headers ?? {}, batch);
    const r = target.write(toNdjson(batch));
    if (r instanceof Promise) await r;
    totals.accepted += batch.length;
  };

  const worker = async (): Promise<void> => {
    while (!done()) {
      const room = Math.min(batchSize, limit - totals.sent);
      let batch: WireEvent[];
      if (unthrottled) batch = gen.next(room);
      else {
        const now = clock();
        if (now - gen.now > 10_000) gen.skipTo(now - tickMs);
        batch = gen.until(now, room);
      }
      totals.sent += batch.length;
      if (batch.length > 0) await deliver(batch);
      // A full batch means a backlog: send again at once; otherwise wait for the next tick's worth.
      if (!unthrottled && batch.length < room && !done()) await sleep(tickMs, signal);
    }
  };

  const workers: Promise<void>[] = [];
  for (let i = 0; i < Math.max(1, opts.concurrency ?? 1); i++) workers.push(worker());
  await Promise.all(workers);
  return totals;
}

async function readCounts(res: Response): Promise<{ accepted?: number; rejected?: number } | null> {
  try {
    const body: unknown = await res.json();
    if (typeof body !== "object" || body === null) return null;
    const b = body as Record<string, unknown>;
    return {
      accepted: typeof b.accepted === "number" ? b.accepted : undefined,
      rejected: typeof b.rejected === "number" ? b.rejected : undefined,
    };
  } catch {
    return null;
  }
}
