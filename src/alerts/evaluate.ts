// One rule over a sequence of closed windows: a pure state machine (value → breach → fire / keep
// firing silently / resolve), so every kind is testable with crafted window values and its state
// can be persisted as plain JSON between restarts.

import { createHash } from "node:crypto";
import type { AlertRule, Direction } from "./rules.ts";
import { metricValue, stepSessions, type WindowSample } from "./metrics.ts";

/** The alert a firing rule holds open. */
export interface ActiveAlert {
  fingerprint: string;
  /** event time: start of the first window of the breach that fired */
  startsAt: number;
  /** the window that fired, then the latest breaching window */
  windowFrom: number;
  windowTo: number;
  value: number | null;
  reference: number | null;
}

/** Plain, JSON-safe evaluation state of one rule. */
export interface RuleState {
  /** digest of the rule definition the state belongs to */
  digest: string;
  /** end of the last evaluated window; null until the evaluator first sees a watermark */
  lastEnd: number | null;
  /** consecutive breaching windows, and the start of the first of them */
  breaches: number;
  breachFrom: number | null;
  /** change / conversion_drop: the previous window's value */
  previous: number | null;
  /** anomaly: EWMA mean and variance over `count` windows */
  ewma: { mean: number; variance: number; count: number } | null;
  active: ActiveAlert | null;
}

/** What one window showed. */
export interface Observation {
  value: number | null;
  /** threshold, previous value or EWMA baseline the value was compared with */
  reference: number | null;
  breached: boolean;
  /** why nothing could be compared yet ("warming up", "no baseline", "no data") */
  note: string | null;
}

export interface Transition {
  status: "firing" | "resolved";
  alert: ActiveAlert;
  /** resolved: end of the window that no longer breached */
  endsAt: number | null;
}

export function initialState(digest: string): RuleState {
  return { digest, lastEnd: null, breaches: 0, breachFrom: null, previous: null, ewma: null, active: null };
}

/** Fingerprint of one alert of a rule: the rule id, its window size and where the breach began. */
export function fingerprintOf(ruleId: string, window: string, startsAt: number): string {
  return createHash("sha256").update(`${ruleId}\u0000${window}\u0000${startsAt}`).digest("hex").slice(0, 32);
}

const compare = (v: number, op: string, x: number): boolean => (op === ">" ? v > x : op === "<" ? v < x : op === ">=" ? v >= x : v <= x);
const directed = (delta: number, limit: number, d: Direction): boolean => (d === "up" ? delta >= limit : d === "down" ? -delta >= limit : Math.abs(delta) >= limit);
const round = (n: number) => Math.round(n * 1e6) / 1e6;

/** Reads the window's value for a rule and decides whether it breaches; returns the updated kind state. */
export function observe(rule: AlertRule, state: RuleState, sample: WindowSample): { obs: Observation; state: RuleState } {
  switch (rule.kind) {
    case "threshold": {
      const v = metricValue(rule.metric, sample);
      if (v === null) return { obs: { value: null, reference: rule.value, breached: false, note: "no data" }, state };
      return { obs: { value: v, reference: rule.value, breached: compare(v, rule.op, rule.value), note: null }, state };
    }
    case "change": {
      const v = metricValue(rule.metric, sample);
      if (v === null) return { obs: { value: null, reference: state.previous, breached: false, note: "no data" }, state };
      const prev = state.previous;
      const next = { ...state, previous: v };
      // a zero baseline has no percentage change; the next window compares with this one
      if (prev === null || prev === 0) return { obs: { value: v, reference: prev, breached: false, note: "no baseline" }, state: next };
      const pct = ((v - prev) / Math.abs(prev)) * 100;
      return { obs: { value: v, reference: prev, breached: directed(pct, rule.percent, rule.direction), note: null }, state: next };
    }
    case "conversion_drop": {
      const from = stepSessions(sample, rule.fromStep);
      // too few sessions say nothing about conversion; keep comparing with the last window that had enough
      if (from < rule.minSessions) return { obs: { value: null, reference: state.previous, breached: false, note: "no data" }, state };
      const conv = round(stepSessions(sample, rule.toStep) / from);
      const prev = state.previous;
      const next = { ...state, previous: conv };
      if (prev === null || prev === 0) return { obs: { value: conv, reference: prev, breached: false, note: "no baseline" }, state: next };
      const drop = ((prev - conv) / prev) * 100;
      return { obs: { value: conv, reference: prev, breached: drop > rule.maxDropPercent, note: null }, state: next };
    }
    case "anomaly": {
      const x = metricValue(rule.metric, sample);
      if (x === null) return { obs: { value: null, reference: state.ewma?.mean ?? null, breached: false, note: "no data" }, state };
      const e = state.ewma;
      if (e === null) return { obs: { value: x, reference: null, breached: false, note: "warming up" }, state: { ...state, ewma: { mean: x, variance: 0, count: 1 } } };
      let breached = false;
      let note: string | null = "warming up";
      if (e.count >= rule.minWindows) {
        // a perfectly flat history has no spread: 1 % of the mean stands in so tiny wiggles do not fire
        const sd = Math.max(Math.sqrt(e.variance), Math.abs(e.mean) * 0.01, 1e-9);
        breached = directed((x - e.mean) / sd, rule.zScore, rule.direction);
        note = null;
      }
      // West's incremental EWMA of mean and variance; the anomalous value is learned too, so a
      // lasting level shift becomes the new normal and the alert resolves
      const diff = x - e.mean;
      const incr = rule.alpha * diff;
      const ewma = { mean: e.mean + incr, variance: (1 - rule.alpha) * (e.variance + diff * incr), count: e.count + 1 };
      return { obs: { value: x, reference: round(e.mean), breached, note }, state: { ...state, ewma } };
    }
  }
}

/**
 * Evaluates the closed window [from, to): the observation, the next state, and a transition when
 * the rule starts firing (after `forWindows` consecutive breaches) or stops.
 */
export function evaluateWindow(
  rule: AlertRule,
  state: RuleState,
  from: number,
  to: number,
  sample: WindowSample,
): { obs: Observation; state: RuleState; transition: Transition | null } {
  const { obs, state: s } = observe(rule, state, sample);
  const breaches = obs.breached ? s.breaches + 1 : 0;
  const breachFrom = obs.breached ? (s.breachFrom ?? from) : null;
  let next: RuleState = { ...s, lastEnd: to, breaches, breachFrom };
  let transition: Transition | null = null;
  if (s.active === null && obs.breached && breaches >= rule.forWindows) {
    const startsAt = breachFrom ?? from;
    const alert: ActiveAlert = { fingerprint: fingerprintOf(rule.id, rule.window, startsAt), startsAt, windowFrom: from, windowTo: to, value: obs.value, reference: obs.reference };
    next = { ...next, active: alert };
    transition = { status: "firing", alert, endsAt: null };
  } else if (s.active !== null && obs.breached) {
    next = { ...next, active: { ...s.active, windowFrom: from, windowTo: to, value: obs.value, reference: obs.reference } };
  } else if (s.active !== null) {
    const alert: ActiveAlert = { ...s.active, windowFrom: from, windowTo: to, value: obs.value, reference: obs.reference };
    next = { ...next, active: null };
    transition = { status: "resolved", alert, endsAt: to };
  }
  return { obs, state: next, transition };
}
