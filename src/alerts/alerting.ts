// The alerting service of one instance: the rule set (file rules read-only, API rules persisted),
// the evaluator that follows the engine watermark and evaluates each aligned window once it has
// closed, and the history and webhook messages of every firing and resolve.

import { logger } from "../log.ts";
import { AlertError } from "./errors.ts";
import { evaluateWindow, initialState, type ActiveAlert, type RuleState, type Transition } from "./evaluate.ts";
import { needsOf, type MetricSource, type WindowSample } from "./metrics.ts";
import { createNotifier, type WebhookOptions } from "./notifier.ts";
import { MAX_RULES, WINDOWS, parseRule, ruleDigest, ruleMetric, type AlertRule } from "./rules.ts";
import { openAlertStore, type HistoryEntry } from "./store.ts";
import { resolvedProblem, systemLookup } from "./webhook-target.ts";

const log = logger("Alerts");

export type RuleSource = "file" | "api";

export interface AlertingOptions {
  dataDir: string;
  /** rules from --alert-rules: listed by the API, never changed by it */
  fileRules: readonly AlertRule[];
  /** webhook for rules without their own (--alert-webhook-url) */
  defaultWebhookUrl: string | null;
  /** --alert-allow-private: webhooks may target loopback, link-local and private addresses; default false */
  allowPrivateWebhooks?: boolean;
  source: MetricSource;
  /** current event-time watermark in ms, -Infinity before the first event */
  watermark: () => number;
  /** how often the watermark is polled; default 500 ms; 0 = only when tick() is called */
  pollMs?: number;
  webhook?: WebhookOptions;
  /** processing-time clock for history stamps */
  now?: () => number;
}

interface Entry {
  rule: AlertRule;
  source: RuleSource;
  state: RuleState;
}

export interface Alerting {
  rules(): Array<{ rule: AlertRule; source: RuleSource; state: RuleState }>;
  rule(id: string): { rule: AlertRule; source: RuleSource; state: RuleState } | null;
  /** validates, checks where its webhook resolves to, and saves; rejects with AlertError */
  create(input: unknown): Promise<AlertRule>;
  replace(id: string, input: unknown): Promise<AlertRule>;
  remove(id: string): void;
  active(): Array<{ rule: AlertRule; alert: ActiveAlert }>;
  history(limit: number): HistoryEntry[];
  /** evaluates every window the current watermark has closed; serialised with the poller */
  tick(): Promise<void>;
  /** resolves when no webhook delivery is queued or in flight */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/** windows evaluated per rule after a long stop; older ones are skipped */
const MAX_BACKLOG = 60;
const MAX_WINDOWS_PER_TICK = 500;
/** how long saving a rule waits for its webhook's name to resolve; no answer leaves the check to delivery */
const SAVE_LOOKUP_MS = 2000;

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

export function createAlerting(opts: AlertingOptions): Alerting {
  const now = opts.now ?? Date.now;
  const store = openAlertStore(opts.dataDir);
  const allowPrivate = opts.allowPrivateWebhooks ?? false;
  const lookup = opts.webhook?.lookup ?? systemLookup;
  const notifier = createNotifier({ allowPrivate, ...opts.webhook });
  const ruleOptions = { allowPrivate };

  /**
   * A rule whose webhook name resolves to a non-public address is refused when saved, with the reason; the
   * notifier checks again at each delivery (names can change: DNS rebinding). A name that does not resolve
   * now is accepted: its receiver may not be up yet.
   */
  async function checkResolved(rule: AlertRule): Promise<void> {
    if (allowPrivate || rule.webhook === null) return;
    const host = new URL(rule.webhook.url).hostname;
    if (host.startsWith("[") || /^[\d.]+$/.test(host)) return; // a literal address, checked by parseRule
    let timer: ReturnType<typeof setTimeout> | undefined;
    const addresses = await Promise.race([
      lookup(host).catch(() => []),
      new Promise<[]>((r) => (timer = setTimeout(r, SAVE_LOOKUP_MS, []))),
    ]).finally(() => clearTimeout(timer));
    const problem = resolvedProblem(host, addresses);
    if (problem !== null) throw new AlertError("invalid_rule", `webhook.url of rule ${JSON.stringify(rule.id)}: ${problem}`);
  }
  const registry = new Map<string, Entry>();
  const interrupted = store.interruptPending();
  if (interrupted > 0) log.warn("webhook deliveries interrupted by the last stop", { count: interrupted });

  const save = (e: Entry) => store.saveState(e.rule.id, { rule: e.rule, state: e.state });

  function record(rule: AlertRule, t: Transition, reason: string | null): void {
    const a = t.alert;
    const entry = store.append({
      ruleId: rule.id,
      ruleName: rule.name,
      severity: rule.severity,
      status: t.status,
      fingerprint: a.fingerprint,
      metric: ruleMetric(rule),
      value: a.value,
      reference: a.reference,
      window: { from: a.windowFrom, to: a.windowTo },
      startsAt: a.startsAt,
      endsAt: t.endsAt,
      at: now(),
      reason,
      delivery: "pending",
    });
    log.info(`alert ${t.status}`, { rule: rule.id, fingerprint: a.fingerprint, value: a.value, reference: a.reference, reason });
    const url = rule.webhook?.url ?? opts.defaultWebhookUrl;
    if (url === null) return store.setDelivery(entry.seq, "none");
    const { op, value, percent, maxDropPercent, zScore } = rule as unknown as Partial<Record<string, unknown>>;
    const body = {
      status: t.status,
      fingerprint: a.fingerprint,
      rule: { id: rule.id, name: rule.name, kind: rule.kind, metric: ruleMetric(rule), window: rule.window, op, value, percent, maxDropPercent, zScore },
      severity: rule.severity,
      value: a.value,
      ...(rule.kind === "threshold" ? { threshold: a.reference } : { baseline: a.reference }),
      window: { from: iso(a.windowFrom), to: iso(a.windowTo) },
      startsAt: iso(a.startsAt),
      ...(t.endsAt === null ? {} : { endsAt: iso(t.endsAt) }),
      labels: rule.labels,
      ...(reason === null ? {} : { reason }),
    };
    notifier.send({ url, key: `${a.fingerprint}-${t.status}`, chain: rule.id, body }, (r) =>
      store.setDelivery(entry.seq, r.ok ? "delivered" : !r.ok && r.reason === "stopped" ? "interrupted" : "failed"),
    );
  }

  /** Closes the open alert of a rule that changed or went away, so receivers are not left with it. */
  function resolveOrphan(rule: AlertRule, state: RuleState, reason: string): void {
    if (state.active === null) return;
    record(rule, { status: "resolved", alert: state.active, endsAt: state.lastEnd }, reason);
  }

  function add(rule: AlertRule, source: RuleSource, stored: { rule: AlertRule; state: RuleState } | undefined): void {
    const digest = ruleDigest(rule);
    let state = initialState(digest);
    if (stored !== undefined && stored.state.digest === digest) state = stored.state;
    else if (stored !== undefined) {
      resolveOrphan(stored.rule, stored.state, "rule_changed");
      state = { ...state, lastEnd: stored.state.lastEnd };
    }
    const e = { rule, source, state };
    registry.set(rule.id, e);
    save(e);
  }

  // start: file rules win over API rules of the same id; states of rules gone since are closed
  const stored = store.states();
  for (const r of opts.fileRules) add(r, "file", stored.get(r.id));
  for (const r of store.apiRules()) {
    if (registry.has(r.id)) log.warn("API rule shadowed by a rules-file rule of the same id", { id: r.id });
    else add(r, "api", stored.get(r.id));
  }
  for (const [id, s] of stored) {
    if (registry.has(id)) continue;
    resolveOrphan(s.rule, s.state, "rule_removed");
    store.deleteState(id);
  }

  async function runTick(): Promise<void> {
    const wm = opts.watermark();
    if (!Number.isFinite(wm)) return;
    const samples = new Map<string, Promise<WindowSample>>();
    let budget = MAX_WINDOWS_PER_TICK;
    for (const e of [...registry.values()]) {
      const size = WINDOWS[e.rule.window];
      const closedEnd = Math.floor(wm / size) * size;
      // a rule starts with the windows that close after it first sees the stream: earlier (possibly
      // empty, pre-traffic) windows would make "below" rules fire for nothing
      if (e.state.lastEnd === null || closedEnd - e.state.lastEnd > MAX_BACKLOG * size) {
        if (e.state.lastEnd !== null) log.warn("alert windows skipped after a long pause", { rule: e.rule.id, windows: (closedEnd - e.state.lastEnd) / size - MAX_BACKLOG });
        e.state = { ...e.state, lastEnd: e.state.lastEnd === null ? closedEnd : closedEnd - MAX_BACKLOG * size };
        save(e);
      }
      while (registry.get(e.rule.id) === e && e.state.lastEnd! + size <= closedEnd && budget-- > 0) {
        const from = e.state.lastEnd!;
        const to = from + size;
        const needs = needsOf(e.rule.kind === "conversion_drop" ? null : e.rule.metric);
        const key = `${from}:${to}:${needs.summary}:${needs.funnel}`;
        let p = samples.get(key);
        if (p === undefined) samples.set(key, (p = opts.source.read(from, to, needs)));
        let sample: WindowSample;
        try {
          sample = await p;
        } catch (err) {
          // the store may be failing: this window is evaluated on a later tick
          log.warn("alert window read failed", { rule: e.rule.id, from: iso(from), message: String(err) });
          break;
        }
        if (registry.get(e.rule.id) !== e) break; // changed or deleted meanwhile
        const r = evaluateWindow(e.rule, e.state, from, to, sample);
        e.state = r.state;
        save(e);
        if (r.transition !== null) record(e.rule, r.transition, null);
      }
    }
  }

  let chain: Promise<void> = Promise.resolve();
  const tick = () => (chain = chain.then(runTick).catch((err) => log.error("alert evaluation failed", { message: String(err) })));
  const pollMs = opts.pollMs ?? 500;
  const timer = pollMs > 0 ? setInterval(() => void tick(), pollMs) : null;
  let stopped = false;

  const view = (e: Entry) => ({ rule: e.rule, source: e.source, state: e.state });
  const existing = (id: string): Entry => {
    const e = registry.get(id);
    if (e === undefined) throw new AlertError("rule_not_found", `no rule with id ${JSON.stringify(id.slice(0, 64))}`);
    if (e.source === "file") throw new AlertError("rule_read_only", `rule ${JSON.stringify(id)} comes from the rules file (--alert-rules); change it there`);
    return e;
  };

  return {
    rules: () => [...registry.values()].map(view),
    rule: (id) => {
      const e = registry.get(id);
      return e === undefined ? null : view(e);
    },
    async create(input) {
      const rule = parseRule(input, "", ruleOptions);
      await checkResolved(rule);
      if (registry.has(rule.id)) throw new AlertError("rule_exists", `a rule with id ${JSON.stringify(rule.id)} exists; use PUT /api/alerts/rules/${rule.id} to change it`);
      if (registry.size >= MAX_RULES) throw new AlertError("invalid_rule", `there are already ${MAX_RULES} rules, the most rtae keeps`);
      store.putRule(rule);
      add(rule, "api", undefined);
      return rule;
    },
    async replace(id, input) {
      existing(id);
      if (typeof input === "object" && input !== null && !Array.isArray(input)) {
        const given = (input as { id?: unknown }).id;
        if (given !== undefined && given !== id) throw new AlertError("invalid_rule", `id ${JSON.stringify(given)} in the body differs from ${JSON.stringify(id)} in the path`);
        input = { ...input, id };
      }
      const rule = parseRule(input, "", ruleOptions);
      await checkResolved(rule);
      const e = existing(id); // again: it may have been deleted or replaced while the name resolved
      store.putRule(rule);
      add(rule, "api", { rule: e.rule, state: e.state });
      return rule;
    },
    remove(id) {
      const e = existing(id);
      registry.delete(id);
      resolveOrphan(e.rule, e.state, "rule_deleted");
      store.deleteRule(id);
      store.deleteState(id);
    },
    active: () => [...registry.values()].filter((e) => e.state.active !== null).map((e) => ({ rule: e.rule, alert: e.state.active! })),
    history: (limit) => store.history(limit),
    tick,
    idle: () => notifier.idle(),
    async stop() {
      if (stopped) return;
      stopped = true;
      if (timer !== null) clearInterval(timer);
      await chain;
      await notifier.stop();
      store.close();
    },
  };
}
