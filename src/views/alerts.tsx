// The Alerts view: open alerts, the firing/resolved history and the rules, from a plain model the
// alerting service builds. Same shell as the other views; the body refreshes itself every 5 s.

import { FreshnessBadge } from "./partials.tsx";
import type { Freshness } from "./data.ts";
import { fmtStamp } from "./format.ts";
import { Nav } from "./page.tsx";
import type { ViewRange } from "./range.ts";

export interface AlertsModel {
  active: Array<{ ruleId: string; ruleName: string; severity: string; metric: string; value: number | null; reference: number | null; startsAt: number; windowTo: number }>;
  history: Array<{ seq: number; ruleId: string; ruleName: string; severity: string; status: string; metric: string; value: number | null; reference: number | null; windowFrom: number; windowTo: number; reason: string | null; delivery: string }>;
  rules: Array<{ id: string; name: string; kind: string; metric: string; window: string; severity: string; source: string; firing: boolean }>;
}

const num = (v: number | null) => (v === null ? "–" : Number.isInteger(v) ? String(v) : v.toFixed(4).replace(/0+$/, ""));
const LIVE: ViewRange = { kind: "live", from: 0, to: 0, live: true };

/** The refreshable body: what GET /ui/alerts/body answers. */
export function AlertsBody(p: { m: AlertsModel }) {
  const { active, history, rules } = p.m;
  return (
    <div id="alerts-body" hx-get="/ui/alerts/body" hx-trigger="every 5s" hx-swap="outerHTML">
      <div class="grid">
        <section class="card wide" aria-label="Active alerts">
          <h2>Active alerts ({active.length})</h2>
          {active.length === 0 ? (
            <p class="empty">no alert is firing</p>
          ) : (
            <table>
              <thead><tr><th>rule</th><th>severity</th><th>metric</th><th class="num">value</th><th class="num">threshold / baseline</th><th>since</th><th>last window</th></tr></thead>
              <tbody>
                {active.map((a) => (
                  <tr class={`alert firing sev-${a.severity}`} data-rule={a.ruleId}>
                    <td>{a.ruleName}</td><td>{a.severity}</td><td>{a.metric}</td><td class="num">{num(a.value)}</td><td class="num">{num(a.reference)}</td><td>{fmtStamp(a.startsAt)}</td><td>{fmtStamp(a.windowTo)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
        <section class="card wide" aria-label="Alert history">
          <h2>History</h2>
          {history.length === 0 ? (
            <p class="empty">no alert has fired yet</p>
          ) : (
            <table>
              <thead><tr><th>status</th><th>rule</th><th>metric</th><th class="num">value</th><th class="num">threshold / baseline</th><th>window</th><th>webhook</th></tr></thead>
              <tbody>
                {history.map((h) => (
                  <tr class={`alert ${h.status}`} data-seq={String(h.seq)}>
                    <td>{h.status}{h.reason && <small> ({h.reason.replace(/_/g, " ")})</small>}</td><td>{h.ruleName}</td><td>{h.metric}</td><td class="num">{num(h.value)}</td><td class="num">{num(h.reference)}</td>
                    <td>{fmtStamp(h.windowFrom)} – {fmtStamp(h.windowTo).slice(11)}</td><td>{h.delivery}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
        <section class="card wide" aria-label="Rules">
          <h2>Rules ({rules.length})</h2>
          {rules.length === 0 ? (
            <p class="empty">no rules: load a file with --alert-rules or POST /api/alerts/rules</p>
          ) : (
            <table>
              <thead><tr><th>rule</th><th>kind</th><th>metric</th><th>window</th><th>severity</th><th>source</th><th>state</th></tr></thead>
              <tbody>
                {rules.map((r) => (
                  <tr>
                    <td>{r.name} <small>{r.id}</small></td><td>{r.kind}</td><td>{r.metric}</td><td>{r.window}</td><td>{r.severity}</td><td>{r.source}</td><td>{r.firing ? "firing" : "ok"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      </div>
    </div>
  );
}

/** The swappable view section (`#view`), as htmx navigation swaps it. */
export function AlertsSection(p: { m: AlertsModel }) {
  return (
    <main id="view" class="view" data-view="alerts" data-live="false">
      <h1 class="view-title">Alerts</h1>
      <AlertsBody m={p.m} />
    </main>
  );
}

/** Out-of-band pieces for htmx navigation into the view: the nav with Alerts current, and no range picker. */
export function AlertsOob() {
  return (
    <>
      <Nav view="alerts" range={LIVE} oob />
      <form id="range-picker" class="picker" hx-swap-oob="true" hidden></form>
    </>
  );
}

/** The whole page at /alerts. */
export function AlertsPage(p: { m: AlertsModel; currency: string; freshness: Freshness | null }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>rtae · Alerts</title>
        <meta name="htmx-config" content='{"includeIndicatorStyles":false}' />
        <link rel="stylesheet" href="/assets/app.css" />
        <script src="/assets/htmx.min.js" defer></script>
        <script src="/assets/sse.js" defer></script>
      </head>
      <body>
        <header class="top">
          <div class="brand">
            <a href="/" class="name">rtae</a>
            <span class="tagline">real-time analytics · {p.currency}</span>
          </div>
          <FreshnessBadge f={p.freshness} />
        </header>
        <div class="bar">
          <Nav view="alerts" range={LIVE} />
          <form id="range-picker" class="picker" hidden></form>
        </div>
        <AlertsSection m={p.m} />
      </body>
    </html>
  );
}
