// HTTP surface of alerting: the rules API (the guard decides who may call each route from the route
// table: reads need a read token, writes the admin token), active alerts and history, and the
// dashboard's Alerts view. Errors leave as JSON here, so the plugin stands alone like the dashboard's.

import { Elysia } from "elysia";
import { h } from "preact";
import { renderToString } from "preact-render-to-string";
import type { Config } from "../config.ts";
import { clearedOf, readRequestBody } from "../server/index.ts";
import { AlertsBody, AlertsOob, AlertsPage, AlertsSection, type AlertsModel, type Freshness } from "../views/index.ts";
import type { Alerting } from "./alerting.ts";
import { ALERT_DOCS } from "./docs.ts";
import { AlertError } from "./errors.ts";
import { MAX_RULE_BYTES, ruleMetric, type AlertRule } from "./rules.ts";
import type { RuleState } from "./evaluate.ts";

const json = (status: number, body: unknown, extra: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...extra } });
const fail = (status: number, code: string, message: string, extra: Record<string, string> = {}) => json(status, { error: { code, message } }, extra);
const html = (body: string) => new Response(body, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } });
const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

async function guarded(fn: () => Promise<Response> | Response): Promise<Response> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AlertError) return fail(err.status, err.code, err.message);
    console.error(JSON.stringify({ level: "error", ns: "Alerts", msg: "request failed", message: String(err) }));
    return fail(500, "internal", "internal error");
  }
}

/** Reads a JSON body of at most MAX_RULE_BYTES, or returns the error response. */
async function readJson(request: Request): Promise<{ ok: true; value: unknown } | { ok: false; res: Response }> {
  const type = request.headers.get("content-type");
  if (type !== null && !/^application\/(?:[\w.+-]+\+)?json\b/i.test(type.trim()))
    return { ok: false, res: fail(415, "unsupported_media_type", `send the rule as application/json, not ${JSON.stringify(type.slice(0, 60))}`) };
  const body = await readRequestBody(request, { maxBytes: MAX_RULE_BYTES, timeoutMs: 10_000 });
  if (!body.ok) return { ok: false, res: fail(body.status, body.code, body.message, body.headers) };
  const bytes = body.bytes;
  if (bytes.byteLength === 0) return { ok: false, res: fail(400, "invalid_rule", "the body is empty; send the rule as a JSON object") };
  try {
    return { ok: true, value: JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)) };
  } catch (err) {
    return { ok: false, res: fail(400, "malformed_json", `the body is not valid JSON: ${(err as Error).message.slice(0, 120)}`) };
  }
}

/** A webhook URL as non-admins see it: the origin only, since paths and queries often carry secrets. */
const redactUrl = (url: string) => `${new URL(url).origin}/…`;

function ruleView(rule: AlertRule, source: string, state: RuleState, admin: boolean) {
  return {
    ...rule,
    webhook: rule.webhook === null ? null : { url: admin ? rule.webhook.url : redactUrl(rule.webhook.url) },
    source,
    state: {
      firing: state.active !== null,
      breaches: state.breaches,
      lastWindowEnd: iso(state.lastEnd),
      previous: state.previous,
      baseline: state.ewma === null ? null : Math.round(state.ewma.mean * 1e6) / 1e6,
    },
  };
}

export interface AlertsPluginOptions {
  config: Pick<Config, "ingestKeys" | "readTokens" | "adminToken" | "currency">;
  /** the header badge of the Alerts page */
  freshness?: () => Freshness | null;
}

/** Routes of the alerting service; mount with `createApp(engine, { plugins: [alertsPlugin(...)] })`. */
export function alertsPlugin(alerting: Alerting, opts: AlertsPluginOptions) {
  const config = opts.config;
  // the guard has cleared every request by the route table (writes need the admin token); admins also see webhook URLs
  const isAdmin = (request: Request) => clearedOf(request)?.principal?.role === "admin";

  const model = (): AlertsModel => ({
    active: alerting.active().map(({ rule, alert }) => ({ ruleId: rule.id, ruleName: rule.name, severity: rule.severity, metric: ruleMetric(rule), value: alert.value, reference: alert.reference, startsAt: alert.startsAt, windowTo: alert.windowTo })),
    history: alerting.history(50).map((e) => ({ seq: e.seq, ruleId: e.ruleId, ruleName: e.ruleName, severity: e.severity, status: e.status, metric: e.metric, value: e.value, reference: e.reference, windowFrom: e.window.from, windowTo: e.window.to, reason: e.reason, delivery: e.delivery })),
    rules: alerting.rules().map(({ rule, source, state }) => ({ id: rule.id, name: rule.name, kind: rule.kind, metric: ruleMetric(rule), window: rule.window, severity: rule.severity, source, firing: state.active !== null })),
  });
  const freshness = () => opts.freshness?.() ?? null;

  return new Elysia({ name: "rtae-alerts" })
    .get("/api/alerts/rules", ({ request }) =>
      guarded(() => json(200, { items: alerting.rules().map((r) => ruleView(r.rule, r.source, r.state, isAdmin(request))) })), { detail: ALERT_DOCS.listRules })
    .post("/api/alerts/rules", ({ request }) =>
      guarded(async () => {
        const body = await readJson(request);
        if (!body.ok) return body.res;
        const rule = await alerting.create(body.value);
        const r = alerting.rule(rule.id)!;
        return json(201, ruleView(r.rule, r.source, r.state, true), { location: `/api/alerts/rules/${encodeURIComponent(rule.id)}` });
      }), { parse: "none", detail: ALERT_DOCS.createRule })
    .get("/api/alerts/rules/:id", ({ params, request }) =>
      guarded(() => {
        const r = alerting.rule(params.id);
        if (r === null) throw new AlertError("rule_not_found", `no rule with id ${JSON.stringify(params.id.slice(0, 64))}`);
        return json(200, ruleView(r.rule, r.source, r.state, isAdmin(request)));
      }), { detail: ALERT_DOCS.getRule })
    .put("/api/alerts/rules/:id", ({ params, request }) =>
      guarded(async () => {
        const body = await readJson(request);
        if (!body.ok) return body.res;
        await alerting.replace(params.id, body.value);
        const r = alerting.rule(params.id)!;
        return json(200, ruleView(r.rule, r.source, r.state, true));
      }), { parse: "none", detail: ALERT_DOCS.replaceRule })
    .delete("/api/alerts/rules/:id", ({ params, request }) =>
      guarded(() => {
        alerting.remove(params.id);
        return new Response(null, { status: 204 });
      }), { parse: "none", detail: ALERT_DOCS.deleteRule })
    .get("/api/alerts", () =>
      guarded(() =>
        json(200, {
          items: alerting.active().map(({ rule, alert }) => ({
            ruleId: rule.id, ruleName: rule.name, severity: rule.severity, metric: ruleMetric(rule), fingerprint: alert.fingerprint,
            value: alert.value, reference: alert.reference, startsAt: iso(alert.startsAt), window: { from: iso(alert.windowFrom), to: iso(alert.windowTo) }, labels: rule.labels,
          })),
        }),
      ), { detail: ALERT_DOCS.active })
    .get("/api/alerts/history", ({ query }) =>
      guarded(() => {
        const raw = (query as Record<string, string | undefined>).limit;
        let limit = 100;
        if (raw !== undefined && raw !== "") {
          if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > 1000) return fail(400, "invalid_parameter", `limit must be a whole number 1-1000, got ${JSON.stringify(raw.slice(0, 20))}`);
          limit = Number(raw);
        }
        const items = alerting.history(limit).map((e) => ({ ...e, window: { from: iso(e.window.from), to: iso(e.window.to) }, startsAt: iso(e.startsAt), endsAt: iso(e.endsAt), at: iso(e.at) }));
        return json(200, { items });
      }), { detail: ALERT_DOCS.history })
    .get("/alerts", () => guarded(() => html("<!doctype html>" + renderToString(h(AlertsPage, { m: model(), currency: config.currency, freshness: freshness() })))), { detail: ALERT_DOCS.page })
    .get("/ui/alerts", ({ request }) =>
      guarded(() => {
        let out = renderToString(h(AlertsSection, { m: model() }));
        if (request.headers.get("hx-request") === "true") out += renderToString(h(AlertsOob, {}));
        return html(out);
      }), { detail: { hide: true } })
    .get("/ui/alerts/body", () => guarded(() => html(renderToString(h(AlertsBody, { m: model() })))), { detail: { hide: true } });
}
