// Public surface of the dashboard: the Elysia plugin plus the pieces other modules may reuse.

export { dashboardPlugin, type DashboardOptions } from "./plugin.ts";
export { ASSETS, assetResponse, type Asset } from "./assets.ts";
export { VIEWS, parseViewRange, type ViewName, type ViewRange } from "./range.ts";
export { renderLiveBody, sseFrame, viewStream, type StreamOptions } from "./stream.ts";
export { trackerPlugin, trackerScript } from "./tracker/plugin.ts";
export { AlertsBody, AlertsOob, AlertsPage, AlertsSection, type AlertsModel } from "./alerts.tsx";
export { liveFreshness, type Freshness } from "./data.ts";
