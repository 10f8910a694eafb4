// The HTTP application: the front (one canonical path per request), the guard deciding from the route
// table, OpenAPI docs, sign-in, and the ingest and read API over one engine, plus plugins the caller
// adds. Errors leave as JSON `{error: {code, message}}` from the single error handler below, never as
// stack traces. An Elysia route missing from the route table stops the app from being built at all.

import { Elysia, type AnyElysia } from "elysia";
import pkg from "../../package.json" with { type: "json" };
import type { Engine } from "../engine.ts";
import { HOUR, MIN, SEC, TIMESERIES_METRICS, TOP_BY, TYPES, type Res } from "../window/index.ts";
import { createAuth, type Auth } from "./auth.ts";
import { HttpError, errorBody } from "./errors.ts";
import { createBodyBudget } from "./body.ts";
import { createFront, readRequestBody, type HttpApp } from "./front.ts";
import { guardPlugin, type GuardOptions } from "./guard.ts";
import { loginRoutes } from "./login.ts";
import { ROUTE_DOCS, openapiPlugin } from "./openapi.ts";
import { parseEnum, parseIntParam, parseRange } from "./params.ts";
import { createRateLimiter } from "./rate-limit.ts";
import { createRouteTable, undeclaredRoutes } from "./routes.ts";

const STEPS: Record<string, Res> = { "1s": SEC, "1m": MIN, "1h": HOUR };
/** Bun's cap on any request body (1 TiB): only a backstop, readBody's limits answer long before it */
const BUN_BODY_BACKSTOP = 2 ** 40;
/** time a client has to send a whole event body; a trickle must not hold its reservation of the in-flight budget */
const BODY_TIMEOUT_MS = 60_000;
const MAX_POINTS = 10_000;

const json = (status: number, body: string, extra?: Record<string, string>) =>
  new Response(body, { status, headers: { "content-type": "application/json; charset=utf-8", ...extra } });

/** Options of createApp; every field has a default fit for production. */
export interface AppOptions {
  /** Plugins `.use()`d after the built-in routes (streams, dashboard); the guard covers them too. */
  plugins?: AnyElysia[];
  /** Token bucket per ingest key (or client IP without one) on POST /api/events; false turns it off. */
  rateLimit?: { rate: number; burst: number; maxBuckets?: number } | false;
  /** Token bucket per client IP on POST /login; false turns it off. */
  loginRateLimit?: { rate: number; burst: number; maxBuckets?: number } | false;
  /** Take the client IP from the first X-Forwarded-For entry (only behind a proxy that sets it); default `--trust-proxy`. */
  trustProxy?: boolean;
  /** Client IP of a request, e.g. `(r) => server.requestIP(r)?.address` when serving with `app.handle`. */
  clientIp?: (request: Request) => string | null | undefined;
  /** An Auth shared with code outside the app (e.g. a WebSocket upgrade in Bun.serve's fetch); default one built from the config. */
  auth?: Auth;
  /** Session-cookie signing key; default random per process (sessions end with the process). */
  sessionSecret?: string | Uint8Array;
  /** Session lifetime in ms, default 12 h. */
  sessionTtlMs?: number;
  /** Called when a handler is about to run, with its route (both guard and router chose it). */
  onHandled?: GuardOptions["onHandled"];
  /** Milliseconds clock for sessions and rate limits; injectable for tests. */
  now?: () => number;
}

/** Default ingest rate limit per key or client: requests per second and burst. */
export const DEFAULT_RATE_LIMIT = { rate: 2_000, burst: 4_000 } as const;
/** Default sign-in rate limit per client address: a burst of 10 tries, then one every 5 s. */
export const DEFAULT_LOGIN_RATE_LIMIT = { rate: 0.2, burst: 10 } as const;

/** The whole HTTP application over one engine. */
export function createApp(engine: Engine, extras: AppOptions = {}): HttpApp {
  const cfg = engine.config;
  const maxSpan = Math.max(cfg.retention["1s"], cfg.retention["1m"], cfg.retention["1h"]);
  const range = (q: Record<string, string | undefined>) => parseRange(q, Date.now(), maxSpan);

  const auth = extras.auth ?? createAuth(cfg, { sessionSecret: extras.sessionSecret, sessionTtlMs: extras.sessionTtlMs, now: extras.now });
  const bucket = (o: { rate: number; burst: number; maxBuckets?: number } | false) => (o === false ? null : createRateLimiter({ ...o, now: extras.now }));
  const limiters = { ingest: bucket(extras.rateLimit ?? DEFAULT_RATE_LIMIT), login: bucket(extras.loginRateLimit ?? DEFAULT_LOGIN_RATE_LIMIT) };
  const table = createRouteTable();

  const app = new Elysia()
    .use(guardPlugin({ auth, table, limiters, trustProxy: extras.trustProxy ?? cfg.trustProxy, clientIp: extras.clientIp, onHandled: extras.onHandled }))
    .onError(({ error, code }) => {
      if (error instanceof HttpError) return json(error.status, errorBody(error.code, error.message));
      if (code === "NOT_FOUND") return json(404, errorBody("not_found", "no such endpoint"));
      if (code === "PARSE") return json(400, errorBody("malformed_request", "the request could not be parsed"));
      console.error(JSON.stringify({ level: "error", ns: "Http", msg: "unhandled", message: String(error) }));
      return json(500, errorBody("internal", "internal error"));
    })
    .use(openapiPlugin(pkg.version))
    .use(loginRoutes(auth))
    .post(
      "/api/events",
      async ({ request }) => {
        // the body's share of the in-flight budget is held while the door parses it, not only while it arrives
        const body = await readRequestBody(request, { maxBytes: cfg.maxBodyBytes, timeoutMs: BODY_TIMEOUT_MS, keep: true });
        if (!body.ok) return json(body.status, errorBody(body.code, body.message), body.headers);
        try {
          const r = await engine.door.ingest(body.bytes, request.headers.get("content-type"));
          return json(r.status, JSON.stringify(r.body));
        } finally {
          body.release();
        }
      },
      { parse: "none", detail: ROUTE_DOCS["POST /api/events"] },
    )
    .get("/api/metrics/summary", async ({ query }) => {
      const { from, to } = range(query);
      return engine.summary(from, to);
    }, { detail: ROUTE_DOCS["GET /api/metrics/summary"] })
    .get("/api/metrics/timeseries", async ({ query }) => {
      const { from, to } = range(query);
      const metric = parseEnum("metric", query.metric, TIMESERIES_METRICS, "events");
      const stepName = parseEnum("step", query.step, ["1s", "1m", "1h"] as const, "1m");
      const step = STEPS[stepName];
      let typeIndex = -1;
      if (query.type !== undefined && query.type !== "") {
        if (metric !== "events") throw new HttpError(400, "invalid_parameter", "type applies only to metric=events");
        typeIndex = TYPES.indexOf(parseEnum("type", query.type, TYPES, "page_view"));
      }
      const kept = stepName === "1s" ? cfg.retention["1s"] : stepName === "1m" ? cfg.retention["1m"] : Infinity;
      if (from < Date.now() - kept)
        throw new HttpError(400, "step_not_retained", `step=${stepName} is kept for ${Math.round(kept / 3_600_000)} h only; use a coarser step for older ranges`);
      const points = Math.ceil(to / step) - Math.floor(from / step);
      if (points > MAX_POINTS)
        throw new HttpError(400, "too_many_points", `${points} points requested; use a coarser step or a shorter range (max ${MAX_POINTS})`);
      return { metric, step: stepName, points: await engine.timeseries(metric, typeIndex, step, from, to) };
    }, { detail: ROUTE_DOCS["GET /api/metrics/timeseries"] })
    .get("/api/products/top", async ({ query }) => {
      const { from, to } = range(query);
      const by = parseEnum("by", query.by, TOP_BY, "views");
      const limit = parseIntParam("limit", query.limit, 1, 100, 10);
      return { by, items: await engine.top(by, limit, from, to) };
    }, { detail: ROUTE_DOCS["GET /api/products/top"] })
    .get("/api/funnel", async ({ query }) => {
      const { from, to } = range(query);
      return engine.funnel(from, to);
    }, { detail: ROUTE_DOCS["GET /api/funnel"] })
    .get("/api/performance", async ({ query }) => {
      const { from, to } = range(query);
      return engine.performance(from, to);
    }, { detail: ROUTE_DOCS["GET /api/performance"] })
    .get("/api/campaigns", async ({ query }) => {
      const { from, to } = range(query);
      return engine.campaigns(from, to);
    }, { detail: ROUTE_DOCS["GET /api/campaigns"] })
    .get("/api/inventory", async ({ query }) => {
      const { from, to } = range(query);
      const low = query.lowStock === undefined || query.lowStock === "" ? null : parseIntParam("lowStock", query.lowStock, 0, 2 ** 31 - 1, 10);
      const limit = parseIntParam("limit", query.limit, 1, 1000, 100);
      return engine.inventory(low, limit, from, to);
    }, { detail: ROUTE_DOCS["GET /api/inventory"] })
    .get("/health", () => ({ status: "ok" }), { detail: ROUTE_DOCS["GET /health"] })
    .get(
      "/ready",
      () => {
        const h = engine.health();
        const wm = engine.aggregator.watermark.value;
        const body = { ...h, watermark: Number.isFinite(wm) ? new Date(wm).toISOString() : null };
        // degraded still takes events (they wait in the log for the store): only not_ready leaves the pool
        return h.status === "not_ready" ? json(503, JSON.stringify(body)) : body;
      },
      { detail: ROUTE_DOCS["GET /ready"] },
    );
  for (const p of extras.plugins ?? []) app.use(p);
  const { undeclared } = undeclaredRoutes(table, app.routes);
  if (undeclared.length > 0) throw new Error(`routes missing from the route table (src/server/routes.ts): ${undeclared.join(", ")}`);
  // Bun's own 413 comes without the JSON error and headers, so its cap is set out of the way: every door that
  // takes a body reads it through readBody, which judges Content-Length first and caps what it streams
  return createFront(app, { maxRequestBodySize: BUN_BODY_BACKSTOP, budget: createBodyBudget(cfg.maxInflightBodyBytes) });
}
