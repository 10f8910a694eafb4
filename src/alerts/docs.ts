// OpenAPI `detail` of the alerting routes (the plugin registers them; /swagger/json lists them with the rest).

import type { DocumentDecoration } from "elysia";
import { errorResponses, queryParameters } from "../server/index.ts";
import { t } from "elysia";
import { DIRECTIONS, KINDS, OPS, SEVERITIES, WINDOWS } from "./rules.ts";
import { FUNNEL_STEPS, METRICS } from "./metrics.ts";

const doc = (d: object): DocumentDecoration => d as DocumentDecoration;
const READ_SECURITY = [{ bearer: [] }, { session: [] }];
const ADMIN_SECURITY = [{ bearer: [] }];
const json = (description: string, schema: unknown) => ({ description, content: { "application/json": { schema } } });

const Rule = {
  type: "object",
  required: ["id", "kind", "window"],
  description:
    "threshold: metric, op, value · change: metric, percent, direction (vs the previous window) · conversion_drop: fromStep, toStep, " +
    "maxDropPercent (vs the previous window), minSessions · anomaly: metric, alpha, zScore, minWindows, direction (EWMA baseline)",
  properties: {
    id: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$" },
    name: { type: "string", maxLength: 256 },
    kind: { type: "string", enum: [...KINDS] },
    window: { type: "string", enum: Object.keys(WINDOWS) },
    metric: { type: "string", enum: [...METRICS] },
    op: { type: "string", enum: [...OPS] },
    value: { type: "number" },
    percent: { type: "number", exclusiveMinimum: 0 },
    direction: { type: "string", enum: [...DIRECTIONS], default: "any" },
    fromStep: { type: "string", enum: [...FUNNEL_STEPS] },
    toStep: { type: "string", enum: [...FUNNEL_STEPS] },
    maxDropPercent: { type: "number", exclusiveMinimum: 0, maximum: 100 },
    minSessions: { type: "integer", minimum: 1, default: 1 },
    alpha: { type: "number", exclusiveMinimum: 0, maximum: 1, default: 0.3 },
    zScore: { type: "number", exclusiveMinimum: 0, default: 3 },
    minWindows: { type: "integer", minimum: 2, default: 5 },
    forWindows: { type: "integer", minimum: 1, maximum: 1000, default: 1 },
    severity: { type: "string", enum: [...SEVERITIES], default: "warning" },
    webhook: { type: "object", properties: { url: { type: "string", format: "uri" } }, description: "default --alert-webhook-url; shown only to the admin. http or https; a host that is or resolves to a loopback, link-local or private address is refused (400) unless rtae runs with --alert-allow-private" },
    labels: { type: "object", additionalProperties: { type: "string" }, maxProperties: 32 },
  },
};
const RuleView = {
  ...Rule,
  properties: {
    ...Rule.properties,
    source: { type: "string", enum: ["file", "api"] },
    state: {
      type: "object",
      properties: {
        firing: { type: "boolean" },
        breaches: { type: "integer" },
        lastWindowEnd: { type: "string", format: "date-time", nullable: true },
        previous: { type: "number", nullable: true },
        baseline: { type: "number", nullable: true },
      },
    },
  },
};
const Window = { type: "object", properties: { from: { type: "string", format: "date-time" }, to: { type: "string", format: "date-time" } } };
const Active = {
  type: "object",
  properties: {
    ruleId: { type: "string" }, ruleName: { type: "string" }, severity: { type: "string" }, metric: { type: "string" }, fingerprint: { type: "string" },
    value: { type: "number", nullable: true }, reference: { type: "number", nullable: true, description: "threshold or baseline" },
    startsAt: { type: "string", format: "date-time" }, window: Window, labels: { type: "object", additionalProperties: { type: "string" } },
  },
};
const History = {
  type: "object",
  properties: {
    seq: { type: "integer" }, ruleId: { type: "string" }, ruleName: { type: "string" }, severity: { type: "string" },
    status: { type: "string", enum: ["firing", "resolved"] }, fingerprint: { type: "string" }, metric: { type: "string" },
    value: { type: "number", nullable: true }, reference: { type: "number", nullable: true }, window: Window,
    startsAt: { type: "string", format: "date-time" }, endsAt: { type: "string", format: "date-time", nullable: true },
    at: { type: "string", format: "date-time" }, reason: { type: "string", nullable: true, enum: ["rule_changed", "rule_deleted", "rule_removed", null] },
    delivery: { type: "string", enum: ["pending", "delivered", "failed", "none", "interrupted"] },
  },
};
const list = (item: unknown) => ({ type: "object", properties: { items: { type: "array", items: item } } });
const idParam = [{ name: "id", in: "path", required: true, schema: { type: "string" } }];
const body = { required: true, content: { "application/json": { schema: Rule } } };
const ADMIN_NOTE = " Needs the admin token (`Authorization: Bearer`); 403 when --admin-token is not set.";

export const ALERT_DOCS = {
  listRules: doc({ tags: ["alerts"], summary: "Alert rules", description: "Rules from the rules file (read-only) and from the API, with their evaluation state.", security: READ_SECURITY, responses: { 200: json("rules", list(RuleView)), ...errorResponses(401, 403) } }),
  createRule: doc({ tags: ["alerts"], summary: "Create an alert rule", description: "Validated strictly; kept in the data dir across restarts." + ADMIN_NOTE, security: ADMIN_SECURITY, requestBody: body, responses: { 201: json("created", RuleView), ...errorResponses(400, 401, 403, 413, 415), 409: json("a rule with this id exists", { $ref: "#/components/schemas/Error" }) } }),
  getRule: doc({ tags: ["alerts"], summary: "One alert rule", security: READ_SECURITY, parameters: idParam, responses: { 200: json("the rule", RuleView), ...errorResponses(401, 403, 404) } }),
  replaceRule: doc({ tags: ["alerts"], summary: "Replace an alert rule", description: "A changed definition starts fresh; an open alert of the old one is resolved (reason rule_changed)." + ADMIN_NOTE, security: ADMIN_SECURITY, parameters: idParam, requestBody: body, responses: { 200: json("replaced", RuleView), ...errorResponses(400, 401, 403, 404, 413, 415), 409: json("the rule comes from the rules file", { $ref: "#/components/schemas/Error" }) } }),
  deleteRule: doc({ tags: ["alerts"], summary: "Delete an alert rule", description: "An open alert is resolved (reason rule_deleted)." + ADMIN_NOTE, security: ADMIN_SECURITY, parameters: idParam, responses: { 204: { description: "deleted" }, ...errorResponses(401, 403, 404), 409: json("the rule comes from the rules file", { $ref: "#/components/schemas/Error" }) } }),
  active: doc({ tags: ["alerts"], summary: "Firing alerts", security: READ_SECURITY, responses: { 200: json("alerts firing now", list(Active)), ...errorResponses(401, 403) } }),
  history: doc({
    tags: ["alerts"], summary: "Alert history", description: "Firing and resolved messages, newest first, with the webhook delivery outcome.", security: READ_SECURITY,
    parameters: queryParameters(t.Object({ limit: t.Unsafe<number>({ type: "integer", minimum: 1, maximum: 1000, default: 100 }) })),
    responses: { 200: json("history", list(History)), ...errorResponses(400, 401, 403) },
  }),
  page: doc({ tags: ["dashboard"], summary: "Alerts view", description: "The dashboard's Alerts view (HTML): firing alerts, history and rules.", security: READ_SECURITY, responses: { 200: { description: "HTML", content: { "text/html": { schema: { type: "string" } } } }, ...errorResponses(401, 403) } }),
};
