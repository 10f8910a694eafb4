// Range and view parameters of the dashboard: live (last hour, streamed), presets relative to now,
// or a custom from/to. Accepts what `<input type="datetime-local">` sends (no zone: read as UTC).

import { parseTimestamp } from "../ingest/index.ts";

export const VIEWS = ["overview", "products", "funnel", "performance", "campaigns", "inventory"] as const;
export type ViewName = (typeof VIEWS)[number];

export const VIEW_LABEL: Readonly<Record<ViewName, string>> = {
  overview: "Overview",
  products: "Products",
  funnel: "Funnel",
  performance: "Performance",
  campaigns: "Campaigns",
  inventory: "Inventory",
};

export const PRESETS = { "15m": 15 * 60_000, "1h": 3_600_000, "24h": 86_400_000, "7d": 7 * 86_400_000 } as const;
export type Preset = keyof typeof PRESETS;
export const RANGE_KINDS = ["live", "15m", "1h", "24h", "7d", "custom"] as const;
export type RangeKind = (typeof RANGE_KINDS)[number];

export interface ViewRange {
  kind: RangeKind;
  from: number;
  to: number;
  /** true only for live mode: the partial subscribes to the stream */
  live: boolean;
}

/** A bad query parameter; the plugin answers 400 with `{error: {code, message}}`. */
export class DashboardParamError extends Error {
  readonly code = "invalid_parameter";
  readonly status = 400;
}

export const isView = (v: string): v is ViewName => (VIEWS as readonly string[]).includes(v);

const show = (v: string) => JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v);

/** The read API's parser (ISO-8601, epoch milliseconds as digits) plus zone-less datetime-local values taken as UTC. */
export function parseDashboardTime(name: string, v: string): number {
  const r = parseTimestamp(v, { name, epochDigits: true, zonelessUtc: true });
  if (r.ok) return r.ms;
  throw new DashboardParamError(r.message);
}

/**
 * Resolves `range`, `from`, `to`: no parameters is live mode (last hour); from/to without `range`
 * is custom. `maxSpanMs` bounds the work one request may ask for.
 */
export function parseViewRange(q: Record<string, string | undefined>, now: number, maxSpanMs: number): ViewRange {
  const has = (k: string) => q[k] !== undefined && q[k] !== "";
  let kind: RangeKind;
  if (has("range")) {
    if (!(RANGE_KINDS as readonly string[]).includes(q.range!))
      throw new DashboardParamError(`range must be one of ${RANGE_KINDS.join(", ")}, got ${show(q.range!)}`);
    kind = q.range as RangeKind;
  } else kind = has("from") || has("to") ? "custom" : "live";

  if (kind === "live") return { kind, from: now - PRESETS["1h"], to: now, live: true };
  if (kind !== "custom") return { kind, from: now - PRESETS[kind], to: now, live: false };
  if (!has("from")) throw new DashboardParamError("from is required for a custom range");
  const from = parseDashboardTime("from", q.from!);
  const to = has("to") ? parseDashboardTime("to", q.to!) : now;
  if (from >= to) throw new DashboardParamError("from must be earlier than to");
  if (to - from > maxSpanMs) throw new DashboardParamError(`the range may span at most ${Math.round(maxSpanMs / 86_400_000)} days`);
  return { kind, from, to, live: false };
}

/** The query string that reproduces a range (for links, hx-get and hx-push-url). */
export function rangeQuery(r: ViewRange): string {
  if (r.kind === "live") return "";
  if (r.kind === "custom") return `from=${r.from}&to=${r.to}`;
  return `range=${r.kind}`;
}
