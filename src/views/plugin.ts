// The dashboard as an Elysia plugin: the page at `/`, htmx partials at /ui/<view>, their SSE at
// /ui/stream and the embedded assets. Errors are answered here as JSON, so the plugin stands alone.

import { Elysia } from "elysia";
import { h } from "preact";
import { renderToString } from "preact-render-to-string";
import type { Engine } from "../engine.ts";
import { assetResponse } from "./assets.ts";
import { liveFreshness, loadFromQueries, modelFromTopic, type ViewModels } from "./data.ts";
import { Nav, Page, RangePicker, ViewSection } from "./page.tsx";
import { DashboardParamError, isView, parseViewRange, type ViewName, type ViewRange } from "./range.ts";
import { viewStream, type StreamOptions } from "./stream.ts";

export type DashboardOptions = StreamOptions;

type Query = Record<string, string | undefined>;

const jsonError = (status: number, code: string, message: string) =>
  new Response(JSON.stringify({ error: { code, message } }), { status, headers: { "content-type": "application/json; charset=utf-8" } });

const html = (body: string) =>
  new Response(body, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } });

/** Turns the dashboard's own failures into JSON errors; anything else is a 500 without details. */
async function guard(fn: () => Promise<Response> | Response): Promise<Response> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof DashboardParamError) return jsonError(400, err.code, err.message);
    console.error(JSON.stringify({ level: "error", ns: "Dashboard", msg: "render failed", message: String(err) }));
    return jsonError(500, "internal", "internal error");
  }
}

/** Creates the dashboard plugin over one engine; mount it with `app.use(dashboardPlugin(engine))`. */
export function dashboardPlugin(engine: Engine, options: DashboardOptions = {}) {
  const cfg = engine.config;
  const maxSpan = Math.max(cfg.retention["1s"], cfg.retention["1m"], cfg.retention["1h"]);
  const ctxOf = (range: ViewRange) => ({ currency: cfg.currency, range });

  async function modelFor<V extends ViewName>(view: V, range: ViewRange): Promise<ViewModels[V]> {
    return (range.live ? modelFromTopic(engine, view) : null) ?? (await loadFromQueries(engine, view, range));
  }

  const unknownView = (v: string) => jsonError(404, "not_found", `no such view: ${JSON.stringify(v.slice(0, 40))}; views are overview, products, funnel, performance, campaigns, inventory`);

  return new Elysia({ name: "rtae-dashboard" })
    .get("/", ({ query }) =>
      guard(async () => {
        const q = query as Query;
        const view = q.view === undefined || q.view === "" ? "overview" : q.view;
        if (!isView(view)) return unknownView(view);
        const range = parseViewRange(q, Date.now(), maxSpan);
        const model = await modelFor(view, range);
        return html("<!doctype html>" + renderToString(h(Page, { view, model, ctx: ctxOf(range), freshness: liveFreshness(engine) })));
      }),
    )
    .get("/ui/stream", ({ query, request }) =>
      guard(() => {
        const view = (query as Query).view ?? "";
        if (!isView(view)) throw new DashboardParamError(`view must be one of overview, products, funnel, performance, campaigns, inventory, got ${JSON.stringify(view.slice(0, 40))}`);
        return viewStream(engine, view, request.signal, options);
      }),
    )
    .get("/ui/:view", ({ params, query, request }) =>
      guard(async () => {
        const view = params.view;
        if (!isView(view)) return unknownView(view);
        const range = parseViewRange(query as Query, Date.now(), maxSpan);
        const model = await modelFor(view, range);
        let out = renderToString(h(ViewSection, { view, model, ctx: ctxOf(range) }));
        // htmx requests also refresh the nav and picker out of band, so they follow the new view and range
        if (request.headers.get("hx-request") === "true")
          out += renderToString(h(Nav, { view, range, oob: true })) + renderToString(h(RangePicker, { view, range, oob: true }));
        return html(out);
      }),
    )
    // no icon of our own: answer the browser's automatic request instead of logging a 404
    .get("/favicon.ico", () => new Response(null, { status: 204, headers: { "cache-control": "public, max-age=86400" } }))
    .get("/assets/:name", ({ params, request }) => assetResponse(params.name, request.headers.get("if-none-match")) ?? jsonError(404, "not_found", "no such asset"));
}
