// Query-parameter parsing for the read API: ranges, enums and bounded integers, each failing with a
// 400 that names the parameter and what was expected.

import { badRequest } from "./errors.ts";

const HOUR = 3_600_000;
const MAX_ECHO = 40;

const show = (v: string) => JSON.stringify(v.length > MAX_ECHO ? v.slice(0, MAX_ECHO) + "…" : v);

/** ISO-8601 (with zone) or epoch milliseconds. */
export function parseTime(name: string, v: string): number {
  if (/^\d{1,16}$/.test(v)) return Number(v);
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i.test(v)) {
    const t = Date.parse(v);
    if (Number.isFinite(t)) return t;
  }
  throw badRequest("invalid_parameter", `${name} must be ISO-8601 with a zone or epoch milliseconds, got ${show(v)}`);
}

export interface Range {
  from: number;
  to: number;
}

/** [from, to), default the last hour; `maxSpanMs` bounds the work one request can ask for. */
export function parseRange(q: Record<string, string | undefined>, now: number, maxSpanMs: number): Range {
  const to = q.to !== undefined && q.to !== "" ? parseTime("to", q.to) : now;
  const from = q.from !== undefined && q.from !== "" ? parseTime("from", q.from) : to - HOUR;
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
