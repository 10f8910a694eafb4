// The ingest door: body -> events -> validation -> partition by session -> durable log append.
// The 202 is returned only after the append is durable, so every acknowledged event can be replayed.

import { parseBody, toWire, validateEvent, type ValidateContext } from "./event.ts";
import { partitionOf } from "./local-log.ts";

/** Where accepted events go: the embedded log or Kafka; resolves once the records are durable. */
export interface Sink {
  readonly partitions: number;
  append(byPartition: string[][], maxTime: number[]): Promise<void> | void;
}

const RAW_MAX = 4096;

export interface IngestResult {
  status: 202 | 400 | 413 | 415 | 503;
  body:
    | { accepted: number; rejected: number; errors: Array<{ index: number; reason: string }> }
    | { error: { code: string; message: string } };
}

/** Bounded label set for rejected events (metrics); the response keeps the full reason. */
export const REJECT_REASONS = ["malformed", "oversized", "missing_field", "unknown_type", "timestamp", "invalid_field"] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export function rejectReason(reason: string): RejectReason {
  if (/longer than|at most|too long|too large|entries, got/.test(reason)) return "oversized";
  if (/^(malformed JSON|event must be a JSON object|line is )/.test(reason)) return "malformed";
  if (reason.endsWith("is required")) return "missing_field";
  if (reason.startsWith("type must be one of")) return "unknown_type";
  if (reason.startsWith("timestamp")) return "timestamp";
  return "invalid_field";
}

export interface Door {
  ingest(bytes: Uint8Array, contentType: string | null): Promise<IngestResult>;
  /** stop intake (shutdown): later requests get 503 shutting_down; resolves when appends in flight are done */
  close(): Promise<void>;
  readonly stats: { accepted: number; rejected: number; requests: number; rejectedBy: Record<RejectReason, number> };
}

export function createDoor(opts: {
  sink: Sink;
  context: () => ValidateContext;
  maxEvents: number;
  /** called after every durable append (wakes the workers) */
  onAppended?: (accepted: number) => void;
}): Door {
  const stats = {
    accepted: 0,
    rejected: 0,
    requests: 0,
    rejectedBy: Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>,
  };
  const P = opts.sink.partitions;
  let closed = false;
  const inFlight = new Set<Promise<unknown>>();
  return {
    stats,
    async close() {
      closed = true;
      await Promise.allSettled([...inFlight]);
    },
    async ingest(bytes, contentType) {
      stats.requests++;
      if (closed)
        return { status: 503, body: { error: { code: "shutting_down", message: "this instance is shutting down; send to another or retry" } } };
      const parsed = parseBody(bytes, contentType, { maxEvents: opts.maxEvents });
      if (!parsed.ok) return { status: parsed.status, body: { error: { code: parsed.code, message: parsed.message } } };
      const ctx = opts.context();
      const byPartition: string[][] = Array.from({ length: P }, () => []);
      const maxTime = new Array<number>(P).fill(0);
      const errors: Array<{ index: number; reason: string }> = [];
      let accepted = 0;
      for (const item of parsed.items) {
        if (item.error !== undefined) {
          errors.push({ index: item.index, reason: item.error });
          continue;
        }
        const v = validateEvent(item.value, ctx);
        if (!v.ok) {
          errors.push({ index: item.index, reason: v.reason });
          continue;
        }
        const e = v.event;
        // session key keeps a session (and the duplicates of its events) in one partition
        const p = partitionOf(e.sessionId ?? e.productId ?? e.eventId, P);
        // a small NDJSON line is logged as received (it is valid JSON without a raw newline);
        // anything else is logged in its canonical form, which bounds what the log stores per event
        const raw = item.raw;
        byPartition[p].push(raw !== undefined && raw.length <= RAW_MAX ? raw : toWire(e));
        if (e.time > maxTime[p]) maxTime[p] = e.time;
        accepted++;
      }
      stats.rejected += errors.length;
      for (const e of errors) stats.rejectedBy[rejectReason(e.reason)]++;
      if (accepted === 0) {
        return {
          status: 400,
          body:
            parsed.items.length === 0
              ? { error: { code: "no_events", message: "the body holds no events" } }
              : { accepted: 0, rejected: errors.length, errors },
        };
      }
      try {
        const appended = Promise.resolve(opts.sink.append(byPartition, maxTime));
        inFlight.add(appended);
        await appended.finally(() => inFlight.delete(appended));
      } catch (err) {
        return {
          status: 503,
          body: { error: { code: "log_unavailable", message: `events not stored, retry: ${(err as Error).message}` } },
        };
      }
      stats.accepted += accepted;
      opts.onAppended?.(accepted);
      return { status: 202, body: { accepted, rejected: errors.length, errors } };
    },
  };
}
