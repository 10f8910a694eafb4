// The Elysia application: ingest and read API over one engine. Errors leave as JSON
// `{error: {code, message}}` from the single error handler below, never as stack traces.

import { Elysia } from "elysia";
import type { Engine } from "../engine.ts";
import { HOUR, MIN, SEC, TIMESERIES_METRICS, TOP_BY, TYPES, type Res } from "../window/index.ts";
import { HttpError, errorBody } from "./errors.ts";
import { parseEnum, parseIntParam, parseRange } from "./params.ts";

const STEPS: Record<string, Res> = { "1s": SEC, "1m": MIN, "1h": HOUR };
const MAX_POINTS = 10_000;

const json = (status: number, body: string, extra?: Record<string, string>) =>
  new Response(body, { status, headers: { "content-type": "application/json; charset=utf-8", ...extra } });

export function createApp(engine: Engine) {
  const cfg = engine.config;
  const maxSpan = Math.max(cfg.retention["1s"], cfg.retention["1m"], cfg.retention["1h"]);
  const range = (q: Record<string, string | undefined>) => parseRange(q, Date.now(), maxSpan);

  return new Elysia()
    .onError(({ error, code }) => {
      if (error instanceof HttpError) return json(error.status, errorBody(error.code, error.message));
      if (code === "NOT_FOUND") return json(404, errorBody("not_found", "no such endpoint"));
      if (code === "PARSE") return json(400, errorBody("malformed_request", "the request could not be parsed"));
      console.error(JSON.stringify({ level: "error", ns: "Http", msg: "unhandled", message: String(error) }));
      return json(500, errorBody("internal", "internal error"));
    })
    .post(
      "/api/events",
      async ({ request }) => {
        const len = Number(request.headers.get("content-length") ?? "0");
        if (len > cfg.maxBodyBytes)
          return json(413, errorBody("body_too_large", `the body is ${len} bytes; the limit is ${cfg.maxBodyBytes}`));
        let bytes: Uint8Array;
        try {
          bytes = new Uint8Array(await request.arrayBuffer());
        } catch {
          return json(413, errorBody("body_too_large", `the body exceeds the limit of ${cfg.maxBodyBytes} bytes`));
        }
        if (bytes.length > cfg.maxBodyBytes)
          return json(413, errorBody("body_too_large", `the body exceeds the limit of ${cfg.maxBodyBytes} bytes`));
        const r = await engine.door.ingest(bytes, request.headers.get("content-type"));
        return json(r.status, JSON.stringify(r.body));
      },
      { parse: "none" },
    )
    .get("/api/metrics/summary", async ({ query }) => {
      const { from, to } = range(query);
      return engine.summary(from, to);
    })
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
    })
    .get("/api/products/top", async ({ query }) => {
      const { from, to } = range(query);
      const by = parseEnum("by", query.by, TOP_BY, "views");
      const limit = parseIntParam("limit", query.limit, 1, 100, 10);
      return { by, items: await engine.top(by, limit, from, to) };
    })
    .get("/api/funnel", async ({ query }) => {
      const { from, to } = range(query);
      return engine.funnel(from, to);
    })
    .get("/api/performance", async ({ query }) => {
      const { from, to } = range(query);
      return engine.performance(from, to);
    })
    .get("/api/campaigns", async ({ query }) => {
      const { from, to } = range(query);
      return engine.campaigns(from, to);
    })
    .get("/api/inventory", async ({ query }) => {
      const { from, to } = range(query);
      const low = query.lowStock === undefined || query.lowStock === "" ? null : parseIntParam("lowStock", query.lowStock, 0, 2 ** 31 - 1, 10);
      const limit = parseIntParam("limit", query.limit, 1, 1000, 100);
      return engine.inventory(low, limit, from, to);
    })
    .get("/health", () => ({ status: "ok" }))
    .get("/ready", () =>
      engine.ready()
        ? { status: "ready", watermark: Number.isFinite(engine.aggregator.watermark.value) ? new Date(engine.aggregator.watermark.value).toISOString() : null }
        : json(503, JSON.stringify({ status: "not_ready" })),
    );
}
