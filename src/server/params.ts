// Query-parameter parsing for the read API: ranges, enums and bounded integers, each failing with a
// 400 that names the parameter and what was expected.

import { parseTimestamp } from "../ingest/index.ts";
import { badRequest } from "./errors.ts";

const HOUR = 3_600_000;
const MAX_ECHO = 40;

const show = (v: string) => JSON.stringify(v.length > MAX_ECHO ? v.slice(0, MAX_ECHO) + "…" : v);

/**
 * ISO-8601 with a zone, or epoch milliseconds as 1 to 16 digits; the door's parser, so both refuse the same
 * impossible dates and every value stays in [TIME_MIN, TIME_MAX] (a valid Date, even one step or retention later).
 */
export function parseTime(name: string, v: string): number {
  const r = parseTimestamp(v, { name, epochDigits: true });
  if (r.ok) return r.ms;
  throw badRequest("invalid_parameter", r.message);
}

export interface Range {
  from: number;
  to: number;
}

/** [from, to), default the last hour; `maxSpanMs` bounds the work one request can ask for. */
export function parseRange(q: Record<string, string | undefined>, now: number, maxSpanMs: number): Range {
  // from first, so a request with both wrong hears about the one it names first
  const fromArg = q.from !== undefined && q.from !== "" ? parseTime("from", q.from) : null;
  const to = q.to !== undefined && q.to !== "" ? parseTime("to", q.to) : now;
  const from = fromArg ?? to - HOUR;
  if (from >= to) throw badRequest("invalid_range", "from must be earlier than to");
  if (to - from > maxSpanMs)
    throw badRequest("invalid_range", `the range may span at most ${Math.round(maxSpanMs / 86_400_000)} days`);
  return { from, to };
}

export function parseEnum<T extends string>(name: string, v: string | undefined, allowed: readonly T[], dflt: T): T {
  if (v === undefined || v === "") return dflt;
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw badRequest("invalid_parameter", `${name} must be one of ${allowed.join(", ")}, got ${show(v)}`);
}

export function parseIntParam(name: string, v: string | undefined, min: number, max: number, dflt: number): number {
  if (v === undefined || v === "") return dflt;
  if (!/^\d{1,9}$/.test(v)) throw badRequest("invalid_parameter", `${name} must be an integer from ${min} to ${max}, got ${show(v)}`);
  const n = Number(v);
  if (n < min || n > max) throw badRequest("invalid_parameter", `${name} must be an integer from ${min} to ${max}, got ${n}`);
  return n;
}
