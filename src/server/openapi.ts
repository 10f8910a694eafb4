// OpenAPI 3 description of the HTTP API and the Swagger UI at /swagger, served from the embedded
// swagger-ui-dist files: the page references only local URLs and runs no inline script.

import { swagger } from "@elysiajs/swagger";
import { Elysia, t, type DocumentDecoration } from "elysia";
import swaggerCss from "swagger-ui-dist/swagger-ui.css" with { type: "text" };
import swaggerBundle from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "text" };
import { EVENT_TYPES } from "../ingest/event-types.ts";
import { TIMESERIES_METRICS, TOP_BY } from "../window/index.ts";

// ---------------------------------------------------------------------------------------------
// Schemas (TypeBox via elysia's `t`; used for documentation only, never to validate, so the
// handlers keep their own 400 messages that name the parameter).

export const ErrorSchema = t.Object(
  { error: t.Object({ code: t.String({ example: "invalid_parameter" }), message: t.String() }) },
  { description: "every error: a stable code and a human message" },
);

const Num = t.Number();
// elysia's t.Integer documents a numeric string too; OpenAPI 3.0 wants `integer` and `nullable` instead of type null
const Int = (o: Record<string, unknown> = {}) => t.Unsafe<number>({ type: "integer", ...o });
const NullableNum = t.Number({ nullable: true });
const NullableTime = t.String({ format: "date-time", nullable: true });
const ItemList = <T extends Parameters<typeof t.Array>[0]>(item: T) => t.Object({ items: t.Array(item) });

export const Schemas = {
  Error: ErrorSchema,
  IngestResult: t.Object({
    accepted: Int(),
    rejected: Int(),
    errors: t.Array(t.Object({ index: Int({ description: "0-based position in the batch" }), reason: t.String() })),
  }),
  Summary: t.Object({
    from: t.String({ format: "date-time" }),
    to: t.String({ format: "date-time" }),
    events: t.Unsafe<Record<string, number>>({ type: "object", additionalProperties: { type: "integer" }, description: "count per event type, and `total`" }),
    revenue: Num,
    orders: Int(),
    units: Int(),
    aov: Num,
    uniqueUsers: Int(),
    uniqueSessions: Int(),
    late: t.Object({ merged: Int(), dropped: Int() }),
    duplicates: Int(),
    watermark: NullableTime,
  }),
  Timeseries: t.Object({
    metric: t.String({ enum: [...TIMESERIES_METRICS] }),
    step: t.String({ enum: ["1s", "1m", "1h"] }),
    points: t.Array(t.Object({ t: t.String({ format: "date-time" }), value: Num })),
  }),
  TopProducts: t.Object({ by: t.String({ enum: [...TOP_BY] }), items: t.Array(t.Object({ productId: t.String(), value: Num })) }),
  Funnel: t.Object({
    sessions: Int(),
    steps: t.Array(t.Object({ step: t.String(), sessions: Int(), conversion: Num })),
    cartAbandonment: t.Object({ sessions: Int(), rate: Num }),
  }),
  Performance: t.Object({
    loadTimeMs: t.Object({ count: Int(), p50: NullableNum, p95: NullableNum, p99: NullableNum }),
  }),
  Campaigns: ItemList(t.Object({ source: t.String(), sessions: Int(), orders: Int(), revenue: Num })),
  Inventory: ItemList(t.Object({ productId: t.String(), stock: Int(), unitsSold: Int() })),
  Health: t.Object({ status: t.String({ example: "ok" }) }),
  Ready: t.Object({
    status: t.String({ enum: ["ready", "degraded", "not_ready"], description: "degraded: a store fails but events are still accepted" }),
    log: t.String({ enum: ["ok", "unreachable"] }),
    history: t.String({ enum: ["ok", "failing"] }),
    hot: t.String({ enum: ["ok", "degraded"] }),
    partitions: t.Array(Int(), { description: "partitions this instance consumes" }),
    stopping: t.Boolean(),
    watermark: t.Optional(NullableTime),
  }),
  LiveMessage: t.Object({
    topic: t.String({ enum: ["overview", "products", "funnel", "performance", "campaigns", "inventory"] }),
    seq: Int({ description: "increasing per process" }),
    kind: t.String({ enum: ["snapshot", "delta", "correction"] }),
    value: t.Object({}, { additionalProperties: true, description: "full value (snapshot) or only the changed top-level keys" }),
  }),
} as const;

const ref = (name: keyof typeof Schemas) => ({ $ref: `#/components/schemas/${name}` });

const ERROR_TEXT: Record<number, string> = {
  400: "bad request: a parameter or the body is invalid (the message names it)",
  401: "unauthorized: no valid credential",
  403: "forbidden: a credential of the wrong kind (e.g. an ingest key on a read endpoint)",
  404: "no such endpoint",
  413: "payload too large",
  415: "unsupported media type",
  429: "rate limited; see Retry-After (seconds)",
  503: "not available right now",
};

/** OpenAPI response objects for error statuses, all with the `{error:{code,message}}` body. */
export function errorResponses(...statuses: number[]): Record<number, unknown> {
  const out: Record<number, unknown> = {};
  for (const s of statuses) {
    out[s] = {
      description: ERROR_TEXT[s] ?? "error",
      content: { "application/json": { schema: ref("Error") } },
      ...(s === 429 ? { headers: { "Retry-After": { schema: { type: "integer" }, description: "seconds to wait" } } } : {}),
    };
  }
  return out;
}

/** OpenAPI query parameters from a `t.Object` of documented, all-optional properties. */
export function queryParameters(schema: { properties: Record<string, unknown> }): unknown[] {
  return Object.entries(schema.properties).map(([name, s]) => {
    const { description, ...rest } = JSON.parse(JSON.stringify(s)) as { description?: string } & Record<string, unknown>;
    return { name, in: "query", required: false, description, schema: rest };
  });
}

const ok = (description: string, schema: unknown, type = "application/json") => ({ description, content: { [type]: { schema } } });

const RANGE = {
  from: t.String({ description: "range start (inclusive): ISO-8601 with a zone, or epoch ms; default `to` − 1 h", example: "2026-11-29T12:00:00Z" }),
  to: t.String({ description: "range end (exclusive): ISO-8601 with a zone, or epoch ms; default now", example: "1764421200000" }),
};

const READ_SECURITY = [{ bearer: [] }, { session: [] }];
const INGEST_SECURITY = [{ bearer: [] }, { ingestKeyHeader: [] }, { ingestKeyQuery: [] }];
const READ_ERRORS = [400, 401, 403];

// The OpenAPI types of DocumentDecoration are stricter than the plain objects written here.
const doc = (d: object): DocumentDecoration => d as DocumentDecoration;

const read = (summary: string, description: string, response: keyof typeof Schemas, query: { properties: Record<string, unknown> }) => doc({
  tags: ["metrics"],
  summary,
  description,
  parameters: queryParameters(query),
  security: READ_SECURITY,
  responses: { 200: ok(summary, ref(response)), ...errorResponses(...READ_ERRORS) },
});

type RouteKey =
  | "POST /api/events"
  | "GET /api/metrics/summary"
  | "GET /api/metrics/timeseries"
  | "GET /api/products/top"
  | "GET /api/funnel"
  | "GET /api/performance"
  | "GET /api/campaigns"
  | "GET /api/inventory"
  | "GET /health"
  | "GET /ready";

/** `detail` of every route registered by createApp, keyed by "METHOD path". */
export const ROUTE_DOCS: Record<RouteKey, DocumentDecoration> = {
  "POST /api/events": doc({
    tags: ["ingest"],
    summary: "Send events",
    description:
      "Takes one JSON object, a JSON array, NDJSON (`application/x-ndjson`) or `text/plain` (browser beacons; JSON or NDJSON). " +
      "Valid events of a batch are accepted even when others are refused; 202 is sent only after the accepted events are durable. " +
      "Authenticated with an ingest key (Bearer, `X-Rtae-Key`, or `?key=` for sendBeacon) when keys are configured. CORS: `*`, no credentials.",
    parameters: queryParameters(t.Object({ key: t.String({ description: "ingest key, for clients that cannot set headers (navigator.sendBeacon)" }) })),
    security: INGEST_SECURITY,
    requestBody: {
      required: true,
      content: {
        "application/json": { schema: { oneOf: [{ type: "object" }, { type: "array", items: { type: "object" } }] } },
        "application/x-ndjson": { schema: { type: "string", description: "one JSON event per line" } },
        "text/plain": { schema: { type: "string", description: "JSON or NDJSON (navigator.sendBeacon)" } },
      },
    },
    responses: {
      202: ok("at least one event accepted", ref("IngestResult")),
      400: ok("no event of the batch is valid (same body as 202)", ref("IngestResult")),
      ...errorResponses(401, 403, 413, 415, 429, 503),
    },
  }),
  "GET /api/metrics/summary": read("Summary", "Events by type, revenue, orders, units, AOV, unique users and sessions, late and duplicate counts, watermark.", "Summary", t.Object(RANGE)),
  "GET /api/metrics/timeseries": read(
    "Time series",
    "Buckets aligned to `step` (the first and last hold only the part inside the range), empty buckets as 0, at most 10 000 points.",
    "Timeseries",
    t.Object({
      ...RANGE,
      metric: t.String({ enum: [...TIMESERIES_METRICS], default: "events" }),
      type: t.String({ enum: [...EVENT_TYPES], description: "event type (metric=events only); default all types" }),
      step: t.String({ enum: ["1s", "1m", "1h"], default: "1m" }),
    }),
  ),
  "GET /api/products/top": read(
    "Top products",
    "Exact top-K products over the range, ties by productId ascending.",
    "TopProducts",
    t.Object({ ...RANGE, by: t.String({ enum: [...TOP_BY], default: "views" }), limit: Int({ minimum: 1, maximum: 100, default: 10 }) }),
  ),
  "GET /api/funnel": read(
    "Funnel",
    "Sessions reaching product_view → add_to_cart → checkout → purchase; conversion relative to the previous step; cart abandonment.",
    "Funnel",
    t.Object(RANGE),
  ),
  "GET /api/performance": read("Page-load percentiles", "page_view loadTimeMs p50/p95/p99 (null without data) and count.", "Performance", t.Object(RANGE)),
  "GET /api/campaigns": read("Campaigns", "First-touch attribution per utmSource: sessions, orders, revenue.", "Campaigns", t.Object(RANGE)),
  "GET /api/inventory": read(
    "Inventory",
    "Latest stock by event time and units sold in the range, lowest stock first; without lowStock every product with a known stock.",
    "Inventory",
    t.Object({
      ...RANGE,
      lowStock: Int({ minimum: 0, description: "only products with stock at or below this" }),
      limit: Int({ minimum: 1, maximum: 1000, default: 100 }),
    }),
  ),
  "GET /health": doc({ tags: ["operations"], summary: "Liveness", description: "Always open.", security: [], responses: { 200: ok("alive", ref("Health")) } }),
  "GET /ready": doc({
    tags: ["operations"],
    summary: "Readiness",
    description:
      "Ready once the engine has restored its state and joined its partitions, while the log takes events (200 also when degraded: a store fails, events wait in the log); 503 while starting, stopping or when the log is unreachable. Always open.",
    security: [],
    responses: { 200: ok("ready or degraded", ref("Ready")), 503: ok("not ready", ref("Ready")) },
  }),
};

/** Paths served by other plugins (streams, dashboard), documented here so the spec is whole. */
const EXTRA_PATHS = {
  "/api/stream": {
    get: {
      tags: ["live"],
      summary: "Live updates (Server-Sent Events)",
      description:
        "SSE: a snapshot of every topic, then deltas every ≤ 100 ms, corrections and heartbeats. Each event's data is a live message " +
        "`{topic, seq, kind, value}`; resumable with `Last-Event-ID`. Topics: overview, products, funnel, performance, campaigns, inventory.",
      operationId: "getApiStream",
      security: READ_SECURITY,
      parameters: queryParameters(t.Object({ topics: t.String({ description: "comma-separated topics to receive; default all" }) })),
      responses: { 200: ok("an event stream of live messages", { type: "string", description: "text/event-stream" }, "text/event-stream"), ...errorResponses(401, 403) },
    },
  },
  "/ws": {
    get: {
      tags: ["live"],
      summary: "Live updates (WebSocket)",
      description: "WebSocket upgrade; every text frame is a live message `{topic, seq, kind, value}`, the same messages as /api/stream.",
      operationId: "getWs",
      security: READ_SECURITY,
      responses: { 101: { description: "switching protocols", content: { "application/json": { schema: ref("LiveMessage") } } }, ...errorResponses(401, 403) },
    },
  },
  "/": {
    get: {
      tags: ["dashboard"],
      summary: "Dashboard",
      description: "The htmx + Preact dashboard (HTML). Browsers without a session are redirected to /login.",
      operationId: "getIndex",
      security: READ_SECURITY,
      responses: { 200: ok("the dashboard", { type: "string" }, "text/html"), 303: { description: "redirect to /login" }, ...errorResponses(401, 403) },
    },
  },
};

const INIT_JS = `window.ui = SwaggerUIBundle({ url: "/swagger/json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null });\n`;

/** The Swagger UI page: local stylesheet and scripts only. */
export const SWAGGER_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rtae API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/swagger/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/swagger/assets/swagger-ui-bundle.js"></script>
<script src="/swagger/assets/init.js"></script>
</body>
</html>`;

const ASSETS: Record<string, { body: string; type: string }> = {
  "swagger-ui.css": { body: swaggerCss, type: "text/css; charset=utf-8" },
  "swagger-ui-bundle.js": { body: swaggerBundle, type: "text/javascript; charset=utf-8" },
  "init.js": { body: INIT_JS, type: "text/javascript; charset=utf-8" },
};

/** GET /swagger (UI), /swagger/json (spec) and /swagger/assets/* (embedded swagger-ui-dist). */
export function openapiPlugin(version: string) {
  const encoded = new Map<string, Uint8Array<ArrayBuffer>>(); // encoded on first use: the bundle is ~1.5 MB
  return new Elysia({ name: "rtae-openapi" })
    .use(
      swagger({
        provider: "swagger-ui",
        path: "/swagger",
        specPath: "/swagger/json",
        exclude: [/^\/swagger/, /^\/login\/style/],
        documentation: {
          info: {
            title: "rtae",
            version,
            description:
              "Real-time analytics for e-commerce event streams. Ranges are `from`/`to` (ISO-8601 with a zone, or epoch ms), " +
              "half-open `[from, to)` in event time, default the last hour. Errors are `{error:{code,message}}`.",
          },
          tags: [
            { name: "ingest", description: "sending events" },
            { name: "metrics", description: "queries over event-time windows" },
            { name: "live", description: "streams of live topic updates" },
            { name: "dashboard", description: "HTML" },
            { name: "auth", description: "browser sessions" },
            { name: "operations", description: "liveness and readiness" },
            { name: "alerts", description: "alert rules, firing alerts and their history (routes of the alerting plugin)" },
          ],
          components: {
            securitySchemes: {
              bearer: { type: "http", scheme: "bearer", description: "ingest key, read token or admin token" },
              ingestKeyHeader: { type: "apiKey", in: "header", name: "X-Rtae-Key" },
              ingestKeyQuery: { type: "apiKey", in: "query", name: "key", description: "POST /api/events only" },
              session: { type: "apiKey", in: "cookie", name: "rtae_session", description: "set by POST /login" },
            },
            schemas: JSON.parse(JSON.stringify(Schemas)) as Record<string, never>,
          },
          paths: EXTRA_PATHS as never,
        },
      }),
    )
    .get("/swagger", () => new Response(SWAGGER_PAGE, { headers: { "content-type": "text/html; charset=utf-8" } }), { detail: { hide: true } })
    .get(
      "/swagger/assets/:file",
      ({ params }) => {
        const a = ASSETS[params.file];
        if (a === undefined || !Object.hasOwn(ASSETS, params.file)) return new Response("not found", { status: 404 });
        let bytes = encoded.get(params.file);
        if (bytes === undefined) encoded.set(params.file, (bytes = new TextEncoder().encode(a.body)));
        return new Response(bytes, { headers: { "content-type": a.type, "cache-control": "public, max-age=86400" } });
      },
      { detail: { hide: true } },
    );
}
