// The whole HTTP surface rtae serves, assembled once: the API app with the streams, metrics, tracker,
// dashboard and alerts plugins. `serve` uses it, and so do the tests that probe every route.

import type { Engine } from "./engine.ts";
import type { AnyElysia } from "elysia";
import { createApp, type AppOptions, type HttpApp } from "./server/index.ts";
import type { LiveTopics } from "./server/live.ts";
import { metricsPlugin } from "./server/metrics.ts";
import { streamsPlugin } from "./server/streams.ts";
import { dashboardPlugin, trackerPlugin } from "./views/index.ts";

/** Every route of the route table, served over one engine, its live topics and its alerting. */
export function createHttpApp(engine: Engine, live: LiveTopics, alerts: { plugin: AnyElysia }, opts: Omit<AppOptions, "plugins"> = {}): HttpApp {
  return createApp(engine, {
    ...opts,
    plugins: [streamsPlugin(engine, live), metricsPlugin(engine), trackerPlugin(engine), dashboardPlugin(engine), alerts.plugin],
  });
}
