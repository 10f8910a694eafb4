// Shared pieces of the live-serving benches: pre-encoded NDJSON events whose timestamps are patched in
// place right before sending (no JSON work on the hot path), a paced one-in-flight producer, and an SSE reader.

import { createGenerator } from "../src/generator/index.ts";

/** 13 digits: every epoch-ms timestamp between 2001 and 2286 has this width, so patching never shifts bytes. */
const PLACEHOLDER = 1_000_000_000_000;
/** `{"timestamp":` is the first key of every line, so the digits start at this byte of each line */
const TS_OFFSET = '{"timestamp":'.length;

export interface Feed {
  /** all lines, "\n"-terminated, back to back */
  buf: Uint8Array<ArrayBuffer>;
  /** byte offset of line i; lineStart[count] = buf.length */
  lineStart: Uint32Array;
  count: number;
}

/**
 * `events` generator events (realistic mix, 100 k users / 10 k products) with unique ids `<prefix><i>`,
 * encoded once as NDJSON lines whose timestamp is a patchable 13-digit placeholder.
 */
export function buildFeed(o: { events: number; seed: number; idPrefix: string; users?: number; products?: number }): Feed {
  const gen = createGenerator({ seed: o.seed, rate: 1000, startTime: Date.now() - 3_600_000, users: o.users ?? 100_000, products: o.products ?? 10_000 });
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const lineStart = new Uint32Array(o.events + 1);
  let bytes = 0;
  let i = 0;
  while (i < o.events) {
    for (const e of gen.next(Math.min(1000, o.events - i))) {
      e.eventId = `${o.idPrefix}${i}`;
      const { timestamp: _generated, ...rest } = e;
      // timestamp first: its digits then sit at a fixed offset of the line
      const line = enc.encode(JSON.stringify({ timestamp: PLACEHOLDER, ...rest }) + "\n");
      lineStart[i++] = bytes;
      bytes += line.length;
      parts.push(line);
    }
  }
  lineStart[o.events] = bytes;
  const buf = new Uint8Array(bytes);
  let at = 0;
  for (const p of parts) {
    buf.set(p, at);
    at += p.length;
  }
  return { buf, lineStart, count: o.events };
}

/** Writes `ms` as the timestamp of lines [from, to); `ms` may be a function of the line index. */
export function stamp(feed: Feed, from: number, to: number, ms: number | ((i: number) => number)): void {
  const digits = new Uint8Array(13);
  const fill = (v: number) => {
    let x = Math.round(v);
    for (let k = 12; k >= 0; k--) {
      digits[k] = 48 + (x % 10);
      x = Math.floor(x / 10);
    }
  };
  if (typeof ms === "number") fill(ms);
  for (let i = from; i < to; i++) {
    if (typeof ms !== "number") fill(ms(i));
    feed.buf.set(digits, feed.lineStart[i] + TS_OFFSET);
  }
}

/** The NDJSON body of lines [from, to) (a view, no copy). */
export const bodyOf = (feed: Feed, from: number, to: number) => feed.buf.subarray(feed.lineStart[from], feed.lineStart[to]);

export interface BatchAck {
  /** performance.now() when the POST was sent and when its 202 body was read */
  sentAt: number;
  ackAt: number;
  events: number;
  /** events accepted by this run up to and including this batch */
  cumAccepted: number;
}

export interface PacedRun {
  rate: number;
  intervalMs: number;
  wallMs: number;
  requests: number;
  sent: number;
  accepted: number;
  rejected: number;
  failed: number;
  acceptedPerSec: number;
  /** accepted ≥ 95 % of what the pace asked for */
  keptUp: boolean;
  postLatencyMs: { p50: number; p99: number; max: number };
  largestBatch: number;
  firstError: string | null;
}

export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/**
 * Posts feed lines [from, ...) at `rate` events/s for `durationMs`, one request in flight, a batch every
 * `intervalMs` holding the events due by then (so a slow answer makes the next batch larger, up to
 * `maxBatch`), every event stamped with the send time. One in flight makes "accepted so far" exact at each 202.
 */
export async function pacedIngest(
  url: string,
  feed: Feed,
  o: { rate: number; durationMs: number; from?: number; intervalMs?: number; maxBatch?: number; onAck?: (a: BatchAck) => void; stop?: () => boolean },
): Promise<PacedRun & { next: number }> {
  const intervalMs = o.intervalMs ?? 10;
  const maxBatch = o.maxBatch ?? 5000;
  let next = o.from ?? 0;
  const first = next;
  const lat: number[] = [];
  const r = { requests: 0, sent: 0, accepted: 0, rejected: 0, failed: 0, largestBatch: 0, firstError: null as string | null };
  const t0 = performance.now();
  for (;;) {
    const now = performance.now();
    const elapsed = now - t0;
    if (elapsed >= o.durationMs || next >= feed.count || o.stop?.()) break;
    const due = Math.floor((o.rate * elapsed) / 1000) + Math.ceil((o.rate * intervalMs) / 1000);
    const n = Math.min(due - (next - first), maxBatch, feed.count - next);
    if (n <= 0) {
      await Bun.sleep(Math.max(1, intervalMs - (elapsed % intervalMs)));
      continue;
    }
    stamp(feed, next, next + n, Date.now());
    const body = bodyOf(feed, next, next + n);
    next += n;
    r.requests++;
    r.sent += n;
    if (n > r.largestBatch) r.largestBatch = n;
    const sentAt = performance.now();
    try {
      const res = await fetch(url, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body, signal: AbortSignal.timeout(30_000) });
      const text = await res.text();
      const ackAt = performance.now();
      lat.push(ackAt - sentAt);
      if (res.status === 202) {
        const j = JSON.parse(text) as { accepted: number; rejected: number; errors: Array<{ reason: string }> };
        r.accepted += j.accepted;
        r.rejected += j.rejected;
        if (j.rejected > 0) r.firstError ??= `rejected: ${j.errors[0]?.reason}`;
        o.onAck?.({ sentAt, ackAt, events: j.accepted, cumAccepted: r.accepted });
      } else {
        r.failed++;
        r.firstError ??= `HTTP ${res.status}: ${text.slice(0, 200)}`;
      }
    } catch (err) {
      r.failed++;
      r.firstError ??= `request failed: ${(err as Error).message}`;
    }
    // pace: wait for the next interval unless we are behind
    const spent = performance.now() - now;
    if (spent < intervalMs) await Bun.sleep(intervalMs - spent);
  }
  const wallMs = performance.now() - t0;
  lat.sort((a, b) => a - b);
  const acceptedPerSec = r.accepted / (wallMs / 1000);
  return {
    rate: o.rate,
    intervalMs,
    wallMs,
    ...r,
    acceptedPerSec,
    keptUp: acceptedPerSec >= 0.95 * o.rate,
    postLatencyMs: { p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), max: lat.at(-1) ?? NaN },
    next,
  };
}

/** Chunks of a byte stream (a reader loop: the DOM typings lack async iteration of ReadableStream). */
export async function* chunks(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

export interface SseFrame {
  /** performance.now() when the chunk holding the frame's end arrived */
  at: number;
  id: string | null;
  event: string;
  data: string;
}

export interface SseReader {
  /** resolves when the response headers arrived (rejects on a non-200) */
  opened: Promise<void>;
  close(): void;
  /** resolves when the stream ended or was closed */
  done: Promise<void>;
}

/** Reads an SSE response with fetch and calls `onFrame` per complete frame (comments and retry lines skipped). */
export function readSse(url: string, onFrame: (f: SseFrame) => void): SseReader {
  const ac = new AbortController();
  const { promise: opened, resolve: openOk, reject: openFail } = Promise.withResolvers<void>();
  const done = (async () => {
    let res: Response;
    try {
      res = await fetch(url, { signal: ac.signal, headers: { accept: "text/event-stream" } });
    } catch (err) {
      openFail(err);
      return;
    }
    if (res.status !== 200 || !res.body) {
      openFail(new Error(`SSE HTTP ${res.status}`));
      return;
    }
    openOk();
    const dec = new TextDecoder();
    let carry = "";
    try {
      for await (const chunk of chunks(res.body)) {
        const at = performance.now();
        carry += dec.decode(chunk, { stream: true });
        let end: number;
        while ((end = carry.indexOf("\n\n")) >= 0) {
          const frame = carry.slice(0, end);
          carry = carry.slice(end + 2);
          let id: string | null = null;
          let event = "message";
          let data = "";
          for (const line of frame.split("\n")) {
            if (line.startsWith("data: ")) data += line.slice(6);
            else if (line.startsWith("id: ")) id = line.slice(4);
            else if (line.startsWith("event: ")) event = line.slice(7);
          }
          if (data !== "") onFrame({ at, id, event, data });
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  return { opened, close: () => ac.abort(), done };
}

/** Keeps the full overview value by applying snapshot and delta frames of `/api/stream?topics=overview`. */
export function overviewState() {
  let value: Record<string, unknown> = {};
  return {
    apply(f: SseFrame): Record<string, unknown> {
      const j = JSON.parse(f.data) as { topics?: { overview?: Record<string, unknown> }; topic?: string; value?: Record<string, unknown> };
      if (f.event === "snapshot") value = { ...(j.topics?.overview ?? {}) };
      else if (j.topic === "overview" && j.value) value = { ...value, ...j.value };
      return value;
    },
    get value() {
      return value;
    },
  };
}
