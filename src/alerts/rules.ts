// Alert rules: the JSON shape, strict validation with one message per problem (hostile API input and
// typos in the rules file alike), and loading the rules file named by --alert-rules.

import { readFileSync } from "node:fs";
import { AlertError } from "./errors.ts";
import { FUNNEL_STEPS, METRICS, isMetric, type FunnelStep } from "./metrics.ts";
import { literalHostProblem } from "./webhook-target.ts";

/** Window sizes a rule can be evaluated on; windows are aligned to the epoch. */
export const WINDOWS = { "1m": 60_000, "5m": 300_000, "1h": 3_600_000 } as const;
export type WindowName = keyof typeof WINDOWS;
export const KINDS = ["threshold", "change", "conversion_drop", "anomaly"] as const;
export type RuleKind = (typeof KINDS)[number];
export const OPS = [">", "<", ">=", "<="] as const;
export type Op = (typeof OPS)[number];
export const DIRECTIONS = ["up", "down", "any"] as const;
export type Direction = (typeof DIRECTIONS)[number];
export const SEVERITIES = ["info", "warning", "critical"] as const;
export type Severity = (typeof SEVERITIES)[number];

export const MAX_RULE_BYTES = 64 * 1024;
export const MAX_RULES = 1000;
const MAX_LABELS = 32;
const MAX_TEXT = 256;
const MAX_URL = 2048;

interface RuleBase {
  id: string;
  name: string;
  window: WindowName;
  /** consecutive breaching windows before the alert fires */
  forWindows: number;
  severity: Severity;
  /** null = the global --alert-webhook-url, if any */
  webhook: { url: string } | null;
  labels: Record<string, string>;
}

export type AlertRule = RuleBase &
  (
    | { kind: "threshold"; metric: string; op: Op; value: number }
    | { kind: "change"; metric: string; percent: number; direction: Direction }
    | { kind: "conversion_drop"; fromStep: FunnelStep; toStep: FunnelStep; maxDropPercent: number; minSessions: number }
    | { kind: "anomaly"; metric: string; alpha: number; zScore: number; minWindows: number; direction: Direction }
  );

const COMMON_FIELDS = ["id", "name", "kind", "window", "forWindows", "severity", "webhook", "labels"];
const KIND_FIELDS: Record<RuleKind, string[]> = {
  threshold: ["metric", "op", "value"],
  change: ["metric", "percent", "direction"],
  conversion_drop: ["fromStep", "toStep", "maxDropPercent", "minSessions"],
  anomaly: ["metric", "alpha", "zScore", "minWindows", "direction"],
};

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const show = (v: unknown): string => {
  const s = typeof v === "string" ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v) : JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 60)}…` : s;
};
const oneOf = (xs: readonly string[]) => (xs.length > 8 ? `${xs.slice(0, 8).join(", ")}, …` : xs.join(", "));

/** How rules are checked beyond their shape. */
export interface RuleOptions {
  /** --alert-allow-private: webhooks may target loopback, link-local and private addresses */
  allowPrivate?: boolean;
}

/**
 * A webhook URL: http(s), no fragment, and (unless allowPrivate) a host that is not a loopback, link-local,
 * private or otherwise non-public address as written; problems read after the field name. Names are resolved
 * later, at delivery (and by the rules API when a rule is saved).
 */
export function webhookUrlProblem(raw: string, opts: RuleOptions = {}): string | null {
  if (raw.length > MAX_URL) return `is longer than ${MAX_URL} characters`;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return "is not a URL (expected e.g. https://hooks.example.com/rtae)";
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return "is not an http:// or https:// URL";
  if (u.hash !== "") return "has a #fragment";
  return opts.allowPrivate === true ? null : literalHostProblem(u);
}

/**
 * Validates untrusted input as a rule; throws AlertError("invalid_rule") listing every problem.
 * `where` prefixes messages (e.g. the file and position).
 */
export function parseRule(input: unknown, where = "", opts: RuleOptions = {}): AlertRule {
  const issues: string[] = [];
  const pre = where === "" ? "" : `${where}: `;
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new AlertError("invalid_rule", `${pre}a rule must be a JSON object, got ${Array.isArray(input) ? "an array" : input === null ? "null" : typeof input}`);
  }
  const r = input as Record<string, unknown>;
  const bad = (field: string, msg: string) => issues.push(`${pre}${field} ${msg}`);

  const str = (field: string, required: boolean, max = MAX_TEXT): string | undefined => {
    const v = r[field];
    if (v === undefined) {
      if (required) bad(field, "is required");
      return undefined;
    }
    if (typeof v !== "string") return void bad(field, `must be a string, got ${show(v)}`);
    if (v.trim() === "") return void bad(field, "must not be empty");
    if (v.length > max) return void bad(field, `is longer than ${max} characters`);
    return v;
  };
  const num = (field: string, required: boolean, check: (n: number) => string | null, dflt?: number): number | undefined => {
    const v = r[field];
    if (v === undefined) {
      if (required) bad(field, "is required");
      return dflt;
    }
    if (typeof v !== "number" || !Number.isFinite(v)) return void bad(field, `must be a finite number, got ${show(v)}`);
    const p = check(v);
    if (p !== null) return void bad(field, `${p}, got ${v}`);
    return v;
  };
  const enm = <T extends string>(field: string, values: readonly T[], required: boolean, dflt?: T): T | undefined => {
    const v = r[field];
    if (v === undefined) {
      if (required) bad(field, `is required (one of ${oneOf(values)})`);
      return dflt;
    }
    if (typeof v !== "string" || !(values as readonly string[]).includes(v)) return void bad(field, `must be one of ${oneOf(values)}, got ${show(v)}`);
    return v as T;
  };
  const int = (lo: number, hi: number) => (n: number) => (Number.isInteger(n) && n >= lo && n <= hi ? null : `must be a whole number ${lo}-${hi}`);
  const range = (lo: number, hi: number, loOpen = false) => (n: number) =>
    (loOpen ? n > lo : n >= lo) && n <= hi ? null : `must be ${loOpen ? "more than" : "at least"} ${lo} and at most ${hi}`;

  const id = str("id", true, 64);
  if (id !== undefined && !ID.test(id)) bad("id", `must be 1-64 letters, digits, '.', '_' or '-' starting with a letter or digit, got ${show(id)}`);
  const name = str("name", false) ?? id ?? "";
  const kind = enm("kind", KINDS, true);
  const window = enm("window", Object.keys(WINDOWS) as WindowName[], true);
  const forWindows = num("forWindows", false, int(1, 1000), 1);
  const severity = enm("severity", SEVERITIES, false, "warning");

  let webhook: { url: string } | null = null;
  const wh = r.webhook;
  if (wh !== undefined && wh !== null) {
    const url = typeof wh === "string" ? wh : typeof wh === "object" && !Array.isArray(wh) ? (wh as Record<string, unknown>).url : undefined;
    const extra = typeof wh === "object" && !Array.isArray(wh) ? Object.keys(wh).filter((k) => k !== "url") : [];
    if (typeof url !== "string") bad("webhook", 'must be a URL string or {"url": "..."}');
    else {
      const p = webhookUrlProblem(url, opts);
      // the API names no rule in its messages otherwise; this one is worth knowing which rule it was
      if (p !== null) bad(where === "" && id !== undefined && /^targets /.test(p) ? `webhook.url of rule ${show(id)}` : "webhook.url", p);
      else webhook = { url };
    }
    if (extra.length > 0) bad("webhook", `has unknown field ${show(extra[0])} (only url)`);
  }

  const labels: Record<string, string> = {};
  if (r.labels !== undefined) {
    const l = r.labels;
    if (typeof l !== "object" || l === null || Array.isArray(l)) bad("labels", "must be an object of strings");
    else {
      const entries = Object.entries(l);
      if (entries.length > MAX_LABELS) bad("labels", `has ${entries.length} entries (at most ${MAX_LABELS})`);
      for (const [k, v] of entries.slice(0, MAX_LABELS)) {
        if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/.test(k)) bad("labels", `has an invalid name ${show(k)} (letters, digits, '_', '.', '-', at most 64)`);
        else if (typeof v !== "string" || v.length > MAX_TEXT) bad(`labels.${k}`, `must be a string of at most ${MAX_TEXT} characters`);
        else labels[k] = v;
      }
    }
  }

  if (kind !== undefined) {
    const known = new Set([...COMMON_FIELDS, ...KIND_FIELDS[kind]]);
    for (const k of Object.keys(r)) if (!known.has(k)) bad(k.length > 40 ? `${k.slice(0, 40)}…` : k, `is not a field of a ${kind} rule (fields: ${[...COMMON_FIELDS, ...KIND_FIELDS[kind]].join(", ")})`);
  }
  const metricOf = (): string | undefined => {
    const m = str("metric", true, 64);
    if (m !== undefined && !isMetric(m)) {
      bad("metric", `is not a known metric, got ${show(m)} (one of ${METRICS.join(", ")})`);
      return undefined;
    }
    return m;
  };

  let rule: AlertRule | undefined;
  const base = { id: id!, name, window: window!, forWindows: forWindows!, severity: severity!, webhook, labels };
  switch (kind) {
    case "threshold": {
      const metric = metricOf();
      const op = enm("op", OPS, true);
      const value = num("value", true, () => null);
      if (metric && op && value !== undefined) rule = { ...base, kind, metric, op, value };
      break;
    }
    case "change": {
      const metric = metricOf();
      const percent = num("percent", true, range(0, 1_000_000, true));
      const direction = enm("direction", DIRECTIONS, false, "any");
      if (metric && percent !== undefined && direction) rule = { ...base, kind, metric, percent, direction };
      break;
    }
    case "conversion_drop": {
      const fromStep = enm("fromStep", FUNNEL_STEPS, true);
      const toStep = enm("toStep", FUNNEL_STEPS, true);
      const maxDropPercent = num("maxDropPercent", true, range(0, 100, true));
      const minSessions = num("minSessions", false, int(1, 1_000_000_000), 1);
      if (fromStep && toStep && FUNNEL_STEPS.indexOf(toStep) <= FUNNEL_STEPS.indexOf(fromStep))
        bad("toStep", `must come after fromStep in the funnel (${FUNNEL_STEPS.join(" → ")}), got ${fromStep} → ${toStep}`);
      else if (fromStep && toStep && maxDropPercent !== undefined && minSessions !== undefined)
        rule = { ...base, kind, fromStep, toStep, maxDropPercent, minSessions };
      break;
    }
    case "anomaly": {
      const metric = metricOf();
      const alpha = num("alpha", false, range(0, 1, true), 0.3);
      const zScore = num("zScore", false, range(0, 1000, true), 3);
      const minWindows = num("minWindows", false, int(2, 10_000), 5);
      const direction = enm("direction", DIRECTIONS, false, "any");
      if (metric && alpha !== undefined && zScore !== undefined && minWindows !== undefined && direction)
        rule = { ...base, kind, metric, alpha, zScore, minWindows, direction };
      break;
    }
  }
  if (issues.length > 0 || rule === undefined) throw new AlertError("invalid_rule", issues.length > 0 ? issues : [`${pre}the rule is invalid`]);
  return rule;
}

/** The metric a rule watches, as shown in payloads and the dashboard. */
export function ruleMetric(rule: AlertRule): string {
  return rule.kind === "conversion_drop" ? `funnel.${rule.fromStep}→${rule.toStep}.conversion` : rule.metric;
}

/** A stable digest of a rule's definition: evaluation state belongs to one definition. */
export function ruleDigest(rule: AlertRule): string {
  const canon = (v: unknown): unknown =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon((v as Record<string, unknown>)[k])]))
      : v;
  return Bun.hash(JSON.stringify(canon(rule))).toString(36);
}

/**
 * Rules from a JSON file: an array of rules or `{"rules": [...]}`. Throws AlertError("rules_file_invalid")
 * naming the file, the rule and the field of every problem.
 */
export function loadRulesFile(path: string, opts: RuleOptions = {}): AlertRule[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new AlertError("rules_file_invalid", `${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new AlertError("rules_file_invalid", `${path}: is not valid JSON (${(err as Error).message})`);
  }
  const list = Array.isArray(doc) ? doc : typeof doc === "object" && doc !== null && Array.isArray((doc as { rules?: unknown }).rules) ? (doc as { rules: unknown[] }).rules : null;
  if (list === null) throw new AlertError("rules_file_invalid", `${path}: expected an array of rules or {"rules": [...]}`);
  if (list.length > MAX_RULES) throw new AlertError("rules_file_invalid", `${path}: has ${list.length} rules (at most ${MAX_RULES})`);
  const issues: string[] = [];
  const rules: AlertRule[] = [];
  const seen = new Set<string>();
  list.forEach((raw, i) => {
    const rid = typeof raw === "object" && raw !== null && typeof (raw as { id?: unknown }).id === "string" ? ` (${show((raw as { id: string }).id)})` : "";
    try {
      const rule = parseRule(raw, `${path}: rules[${i}]${rid}`, opts);
      if (seen.has(rule.id)) issues.push(`${path}: rules[${i}]${rid}: id is used by an earlier rule`);
      seen.add(rule.id);
      rules.push(rule);
    } catch (err) {
      if (!(err instanceof AlertError)) throw err;
      issues.push(...err.issues);
    }
  });
  if (issues.length > 0) throw new AlertError("rules_file_invalid", issues);
  return rules;
}
