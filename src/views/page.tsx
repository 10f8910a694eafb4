// The full dashboard page and its swappable pieces (nav, range picker, view section). htmx swaps
// the view section whole, so leaving live mode drops its SSE connection with it.

import { FreshnessBadge, ViewBody, type PartialContext } from "./partials.tsx";
import type { Freshness, ViewModels } from "./data.ts";
import { RANGE_KINDS, VIEWS, VIEW_LABEL, rangeQuery, type RangeKind, type ViewName, type ViewRange } from "./range.ts";

const RANGE_LABEL: Record<Exclude<RangeKind, "custom">, string> = { live: "Live · 1 h", "15m": "15 min", "1h": "1 h", "24h": "24 h", "7d": "7 d" };
/** "1h" is offered as live mode; the static last hour stays reachable by URL only. */
const PICKER_KINDS = RANGE_KINDS.filter((k) => k !== "custom" && k !== "1h") as Array<Exclude<RangeKind, "custom">>;

const withQuery = (path: string, q: string) => (q ? `${path}${path.includes("?") ? "&" : "?"}${q}` : path);
/** datetime-local value in UTC (the picker is labelled UTC and the server reads zone-less times as UTC). */
const localValue = (t: number) => new Date(t).toISOString().slice(0, 16);

/** Navigation between views, keeping the current range; Alerts (served by the alerting plugin) has no range. */
export function Nav(p: { view: ViewName | "alerts"; range: ViewRange; oob?: boolean }) {
  const q = rangeQuery(p.range);
  return (
    <nav id="nav" aria-label="Views" hx-swap-oob={p.oob ? "true" : undefined}>
      <ul>
        {VIEWS.map((v) => (
          <li>
            <a
              href={withQuery(`/?view=${v}`, q)}
              hx-get={withQuery(`/ui/${v}`, q)}
              hx-target="#view"
              hx-swap="outerHTML"
              hx-push-url={withQuery(`/?view=${v}`, q)}
              aria-current={v === p.view ? "page" : undefined}
            >
              {VIEW_LABEL[v]}
            </a>
          </li>
        ))}
        <li>
          <a href="/alerts" hx-get="/ui/alerts" hx-target="#view" hx-swap="outerHTML" hx-push-url="/alerts" aria-current={p.view === "alerts" ? "page" : undefined}>
            Alerts
          </a>
        </li>
      </ul>
    </nav>
  );
}

/** History range picker: presets relative to now, or a custom from/to (UTC). */
export function RangePicker(p: { view: ViewName; range: ViewRange; oob?: boolean }) {
  const r = p.range;
  return (
    <form id="range-picker" class="picker" action="/" method="get" hx-get={`/ui/${p.view}`} hx-target="#view" hx-swap="outerHTML" hx-swap-oob={p.oob ? "true" : undefined} aria-label="Time range">
      <input type="hidden" name="view" value={p.view} />
      <div class="presets" role="group" aria-label="Preset ranges">
        {PICKER_KINDS.map((k) => (
          <button type="submit" name="range" value={k} aria-pressed={r.kind === k || (k === "live" && r.kind === "1h") ? "true" : "false"}>
            {RANGE_LABEL[k]}
          </button>
        ))}
      </div>
      <fieldset class="custom">
        <legend>Custom range (UTC)</legend>
        <label>
          from <input type="datetime-local" name="from" value={localValue(r.from)} required />
        </label>
        <label>
          to <input type="datetime-local" name="to" value={localValue(r.to)} required />
        </label>
        <button type="submit" name="range" value="custom" aria-pressed={r.kind === "custom" ? "true" : "false"}>
          Show
        </button>
      </fieldset>
    </form>
  );
}

/**
 * The swappable view section. In live mode it holds the SSE connection: the body is replaced by
 * `<view>` events and a hidden sink takes `freshness` events (their content swaps out of band).
 */
export function ViewSection<V extends ViewName>(p: { view: V; model: ViewModels[V]; ctx: PartialContext }) {
  const live = p.ctx.range.live;
  return (
    <main id="view" class="view" data-view={p.view} data-live={live ? "true" : "false"} hx-ext={live ? "sse" : undefined} sse-connect={live ? `/ui/stream?view=${p.view}` : undefined}>
      <h1 class="view-title">{VIEW_LABEL[p.view]}</h1>
      <div id="view-body" sse-swap={live ? p.view : undefined}>
        <ViewBody view={p.view} model={p.model} ctx={p.ctx} />
      </div>
      {live && <div class="sink" sse-swap="freshness" hidden></div>}
    </main>
  );
}

/** The whole page: header with freshness, nav, range picker and the chosen view. */
export function Page<V extends ViewName>(p: { view: V; model: ViewModels[V]; ctx: PartialContext; freshness: Freshness | null }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`rtae · ${VIEW_LABEL[p.view]}`}</title>
        <meta name="htmx-config" content='{"includeIndicatorStyles":false}' />
        <link rel="stylesheet" href="/assets/app.css" />
        <script src="/assets/htmx.min.js" defer></script>
        <script src="/assets/sse.js" defer></script>
      </head>
      <body>
        <header class="top">
          <div class="brand">
            <a href="/" class="name">rtae</a>
            <span class="tagline">real-time analytics · {p.ctx.currency}</span>
          </div>
          <FreshnessBadge f={p.freshness} />
        </header>
        <div class="bar">
          <Nav view={p.view} range={p.ctx.range} />
          <RangePicker view={p.view} range={p.ctx.range} />
        </div>
        <ViewSection view={p.view} model={p.model} ctx={p.ctx} />
      </body>
    </html>
  );
}
