// What an alert rule can watch: metric names, the engine queries they need, and reading one
// closed window through the engine's global (all-partition) summary and funnel queries.

import type { Engine } from "../engine.ts";
import { TYPES, type Summary } from "../window/index.ts";

/** Funnel steps in order (DESIGN §3). */
export const FUNNEL_STEPS = ["product_view", "add_to_cart", "checkout", "purchase"] as const;
export type FunnelStep = (typeof FUNNEL_STEPS)[number];

const SUMMARY_METRICS: readonly string[] = [
  "events.total",
  ...TYPES.map((t) => `events.${t}`),
  "revenue",
  "orders",
  "units",
  "aov",
  "uniqueUsers",
  "uniqueSessions",
  "late.merged",
  "late.dropped",
  "duplicates",
];
const FUNNEL_METRICS: readonly string[] = [
  "funnel.sessions",
  ...FUNNEL_STEPS.flatMap((s) => [`funnel.${s}.sessions`, `funnel.${s}.conversion`]),
  "cartAbandonment.rate",
];

/** Every metric name a threshold, change or anomaly rule may name. */
export const METRICS: readonly string[] = [...SUMMARY_METRICS, ...FUNNEL_METRICS];
const SUMMARY_SET = new Set(SUMMARY_METRICS);
const FUNNEL_SET = new Set(FUNNEL_METRICS);

export const isMetric = (m: string): boolean => SUMMARY_SET.has(m) || FUNNEL_SET.has(m);

/** The parts of the summary answer rules read. */
export type SummaryValues = Omit<Summary, "from" | "to" | "watermark">;

/** The parts of the funnel answer rules read. */
export interface FunnelValues {
  sessions: number;
  steps: ReadonlyArray<{ step: string; sessions: number; conversion: number }>;
  cartAbandonment: { sessions: number; rate: number };
}

/** One closed window as the rules see it; a part is null when no rule of that window needs it. */
export interface WindowSample {
  summary: SummaryValues | null;
  funnel: FunnelValues | null;
}

export interface Needs {
  summary: boolean;
  funnel: boolean;
}

/** Which engine queries a metric needs. */
export function needsOf(metric: string | null): Needs {
  if (metric === null) return { summary: false, funnel: true }; // conversion_drop reads funnel steps
  return { summary: SUMMARY_SET.has(metric), funnel: FUNNEL_SET.has(metric) };
}

const stepOf = (f: FunnelValues, step: string) => f.steps.find((s) => s.step === step);

/** The value of a metric in a sample; null when the sample lacks the part it lives in. */
export function metricValue(metric: string, s: WindowSample): number | null {
  if (SUMMARY_SET.has(metric)) {
    const v = s.summary;
    if (v === null) return null;
    if (metric.startsWith("events.")) return v.events[metric.slice(7)] ?? 0;
    switch (metric) {
      case "late.merged":
        return v.late.merged;
      case "late.dropped":
        return v.late.dropped;
      default:
        return v[metric as "revenue" | "orders" | "units" | "aov" | "uniqueUsers" | "uniqueSessions" | "duplicates"];
    }
  }
  const f = s.funnel;
  if (f === null) return null;
  if (metric === "funnel.sessions") return f.sessions;
  if (metric === "cartAbandonment.rate") return f.cartAbandonment.rate;
  const [, step, field] = metric.split(".");
  const st = stepOf(f, step);
  if (st === undefined) return null;
  return field === "sessions" ? st.sessions : st.conversion;
}

/** Sessions that reached a funnel step in a sample (0 when unknown). */
export function stepSessions(s: WindowSample, step: string): number {
  return s.funnel === null ? 0 : (stepOf(s.funnel, step)?.sessions ?? 0);
}

/** Reads closed windows; the engine implementation merges all partitions (and, distributed, all instances). */
export interface MetricSource {
  read(from: number, to: number, needs: Needs): Promise<WindowSample>;
}

export function engineSource(engine: Pick<Engine, "summary" | "funnel">): MetricSource {
  return {
    async read(from, to, needs) {
      const [summary, funnel] = await Promise.all([
        needs.summary ? engine.summary(from, to) : null,
        needs.funnel ? engine.funnel(from, to) : null,
      ]);
      return { summary, funnel };
    },
  };
}
