// One Preact component per dashboard view, rendered from a view model (live topic or stored range).
// The same markup answers /ui/<view> and fills the SSE events, so live and history look identical.

import type { ComponentChildren } from "preact";
import { BarChart, LineChart } from "./charts.tsx";
import type { CampaignsModel, Freshness, FunnelModel, InventoryModel, Item, OverviewModel, PerformanceModel, ProductsModel, ViewModels } from "./data.ts";
import { LOW_STOCK } from "./data.ts";
import { fmtDec, fmtInt, fmtLag, fmtMoney, fmtMs, fmtPct, fmtStamp } from "./format.ts";
import type { ViewName, ViewRange } from "./range.ts";

export interface PartialContext {
  currency: string;
  range: ViewRange;
}

const TYPE_LABEL: Record<string, string> = {
  page_view: "page views",
  product_view: "product views",
  add_to_cart: "add to cart",
  remove_from_cart: "remove from cart",
  checkout: "checkouts",
  purchase: "purchases",
  inventory_update: "inventory updates",
  total: "all events",
};

function Stat(p: { label: string; value: string; hint?: string }) {
  return (
    <div class="stat">
      <dt>{p.label}</dt>
      <dd>
        {p.value}
        {p.hint && <small>{p.hint}</small>}
      </dd>
    </div>
  );
}

function Card(p: { title: string; children: ComponentChildren; wide?: boolean }) {
  return (
    <section class={p.wide ? "card wide" : "card"} aria-label={p.title}>
      <h2>{p.title}</h2>
      {p.children}
    </section>
  );
}

/** Heading line naming the range the numbers cover. */
function RangeNote(p: { range: ViewRange }) {
  return (
    <p class="range-note">
      {p.range.live ? "Live · last 1 h" : "History"} · {fmtStamp(p.range.from)} – {fmtStamp(p.range.to)}
    </p>
  );
}

function Overview(p: { m: OverviewModel; ctx: PartialContext }) {
  const s = p.m.summary;
  const events = s.events ?? {};
  const total = events.total ?? 0;
  const rateRows = p.m.rate ? Object.entries(p.m.rate).filter(([k]) => k !== "total") : [];
  return (
    <div class="grid">
      <Card title="Totals" wide>
        <dl class="stats">
          <Stat label="Revenue" value={fmtMoney(s.revenue, p.ctx.currency)} />
          <Stat label="Orders" value={fmtInt(s.orders)} />
          <Stat label="Average order value" value={fmtMoney(s.aov, p.ctx.currency)} />
          <Stat label="Units sold" value={fmtInt(s.units)} />
          <Stat label="Active users" value={fmtInt(s.uniqueUsers)} hint="estimated" />
          <Stat label="Sessions" value={fmtInt(s.uniqueSessions)} hint="estimated" />
          <Stat label="Events" value={fmtInt(total)} />
          <Stat label="Late (merged / dropped)" value={`${fmtInt(s.late?.merged ?? 0)} / ${fmtInt(s.late?.dropped ?? 0)}`} />
          <Stat label="Duplicates" value={fmtInt(s.duplicates ?? 0)} />
        </dl>
        {total === 0 && <p class="empty">no data in this range</p>}
      </Card>
      <Card title="Events per second" wide>
        <LineChart id="ov-rate" title={`Events per second by type (${p.m.seriesNote})`} unit="events/s" from={p.ctx.range.from} to={p.ctx.range.to} series={p.m.series.map((x) => ({ ...x, name: TYPE_LABEL[x.name] ?? x.name }))} {...liveSpan(p.m, p.ctx)} />
      </Card>
      <Card title="Events by type">
        <table>
          <thead>
            <tr>
              <th scope="col">type</th>
              <th scope="col" class="num">events</th>
              {rateRows.length > 0 && <th scope="col" class="num">events/s (10 s)</th>}
            </tr>
          </thead>
          <tbody>
            {Object.entries(events)
              .filter(([k]) => k !== "total")
              .map(([k, v]) => (
                <tr>
                  <td>{TYPE_LABEL[k] ?? k}</td>
                  <td class="num">{fmtInt(v)}</td>
                  {rateRows.length > 0 && <td class="num">{fmtDec(p.m.rate?.[k] ?? 0)}</td>}
                </tr>
              ))}
          </tbody>
        </table>
      </Card>
    </div>
  );
}

/** The live overview series covers the last 60 s, not the whole hour: its axis follows the data. */
function liveSpan(m: OverviewModel, ctx: PartialContext): { from?: number; to?: number } {
  if (!ctx.range.live || m.rate === null) return {};
  const ts = m.series.flatMap((s) => s.points.map((pt) => pt.t));
  if (ts.length < 2) return {};
  return { from: Math.min(...ts), to: Math.max(...ts) };
}

function TopTable(p: { title: string; column: string; items: Item[]; value: (v: number) => string }) {
  return (
    <Card title={p.title}>
      {p.items.length === 0 ? (
        <p class="empty">no data in this range</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col" class="num">#</th>
              <th scope="col">product</th>
              <th scope="col" class="num">{p.column}</th>
            </tr>
          </thead>
          <tbody>
            {p.items.slice(0, 10).map((it, i) => (
              <tr>
                <td class="num">{i + 1}</td>
                <td>{it.productId}</td>
                <td class="num">{p.value(it.value)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}

function Products(p: { m: ProductsModel; ctx: PartialContext }) {
  return (
    <div class="grid two">
      <TopTable title="Top 10 by views" column="views" items={p.m.views} value={fmtInt} />
      <TopTable title="Top 10 by add-to-cart" column="added to cart" items={p.m.carts} value={fmtInt} />
      <TopTable title="Top 10 by units sold" column="units" items={p.m.units} value={fmtInt} />
      <TopTable title="Top 10 by revenue" column="revenue" items={p.m.revenue} value={(v) => fmtMoney(v, p.ctx.currency)} />
    </div>
  );
}

function Funnel(p: { m: FunnelModel }) {
  const m = p.m;
  return (
    <div class="grid">
      <Card title="Funnel" wide>
        <p>
          {fmtInt(m.sessions)} sessions; each step's conversion is relative to the step before (the first to all sessions).
        </p>
        {m.sessions === 0 ? (
          <p class="empty">no data in this range</p>
        ) : (
          <BarChart
            id="funnel"
            title="Sessions reaching each funnel step"
            bars={[
              { label: "sessions", value: m.sessions, display: fmtInt(m.sessions) },
              ...m.steps.map((s) => ({ label: TYPE_LABEL[s.step] ?? s.step, value: s.sessions, display: `${fmtInt(s.sessions)} · ${fmtPct(s.conversion)}` })),
            ]}
          />
        )}
      </Card>
      <Card title="Cart abandonment">
        <dl class="stats">
          <Stat label="Abandoned carts" value={fmtInt(m.cartAbandonment.sessions)} hint="sessions" />
          <Stat label="Abandonment rate" value={fmtPct(m.cartAbandonment.rate)} />
        </dl>
      </Card>
    </div>
  );
}

function Performance(p: { m: PerformanceModel; ctx: PartialContext }) {
  const l = p.m.loadTimeMs;
  return (
    <div class="grid">
      <Card title="Page load time">
        <dl class="stats">
          <Stat label="p50" value={fmtMs(l.p50)} />
          <Stat label="p95" value={fmtMs(l.p95)} />
          <Stat label="p99" value={fmtMs(l.p99)} />
          <Stat label="Page views measured" value={fmtInt(l.count)} />
        </dl>
        {l.count === 0 && <p class="empty">no data in this range</p>}
      </Card>
      <Card title="Load time percentiles over time" wide>
        <LineChart id="perf" title="Page load time p50, p95 and p99 over time" unit="ms" from={p.ctx.range.from} to={p.ctx.range.to} series={p.m.series} />
      </Card>
    </div>
  );
}

function Campaigns(p: { m: CampaignsModel; ctx: PartialContext }) {
  const items = p.m.items;
  if (items.length === 0)
    return (
      <div class="grid">
        <Card title="Campaigns" wide>
          <p class="empty">no data in this range</p>
        </Card>
      </div>
    );
  return (
    <div class="grid">
      <Card title="Campaigns (first touch)" wide>
        <table>
          <thead>
            <tr>
              <th scope="col">source</th>
              <th scope="col" class="num">sessions</th>
              <th scope="col" class="num">orders</th>
              <th scope="col" class="num">revenue</th>
            </tr>
          </thead>
          <tbody>
            {items.map((c) => (
              <tr>
                <td>{c.source}</td>
                <td class="num">{fmtInt(c.sessions)}</td>
                <td class="num">{fmtInt(c.orders)}</td>
                <td class="num">{fmtMoney(c.revenue, p.ctx.currency)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Card>
      <Card title="Sessions by source">
        <BarChart id="camp-sessions" title="Sessions by campaign source" bars={items.map((c) => ({ label: c.source, value: c.sessions, display: fmtInt(c.sessions) }))} />
      </Card>
      <Card title="Revenue by source">
        <BarChart id="camp-revenue" title="Revenue by campaign source" bars={[...items].sort((a, b) => b.revenue - a.revenue).map((c) => ({ label: c.source, value: c.revenue, display: `${fmtMoney(c.revenue, p.ctx.currency)} · ${fmtInt(c.orders)} ${c.orders === 1 ? "order" : "orders"}` }))} />
      </Card>
    </div>
  );
}

function Inventory(p: { m: InventoryModel }) {
  const items = p.m.items;
  return (
    <div class="grid">
      <Card title={`Low stock (≤ ${LOW_STOCK})`} wide>
        <p>Latest known stock by event time; units sold within the range.</p>
        {items.length === 0 ? (
          <p class="empty">no data in this range</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">product</th>
                <th scope="col" class="num">stock</th>
                <th scope="col" class="num">units sold</th>
              </tr>
            </thead>
            <tbody>
              {items.map((it) => (
                <tr class={it.stock === 0 ? "out" : undefined}>
                  <td>{it.productId}</td>
                  <td class="num">{it.stock === 0 ? "out of stock" : fmtInt(it.stock)}</td>
                  <td class="num">{fmtInt(it.unitsSold)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </div>
  );
}

/** The body of one view: what SSE events carry and what /ui/<view> wraps in its section. */
export function ViewBody<V extends ViewName>(p: { view: V; model: ViewModels[V]; ctx: PartialContext }) {
  const m = p.model as ViewModels[ViewName];
  let body;
  switch (p.view) {
    case "overview":
      body = <Overview m={m as OverviewModel} ctx={p.ctx} />;
      break;
    case "products":
      body = <Products m={m as ProductsModel} ctx={p.ctx} />;
      break;
    case "funnel":
      body = <Funnel m={m as FunnelModel} />;
      break;
    case "performance":
      body = <Performance m={m as PerformanceModel} ctx={p.ctx} />;
      break;
    case "campaigns":
      body = <Campaigns m={m as CampaignsModel} ctx={p.ctx} />;
      break;
    default:
      body = <Inventory m={m as InventoryModel} />;
  }
  return (
    <>
      <RangeNote range={p.ctx.range} />
      {body}
    </>
  );
}

/** Header freshness indicator: event-time lag and processing lag from the overview topic. */
export function FreshnessBadge(p: { f: Freshness | null; oob?: boolean }) {
  const f = p.f;
  const lag = f?.eventLagMs ?? null;
  const state = lag === null ? "unknown" : lag < 15_000 ? "ok" : lag < 120_000 ? "warn" : "stale";
  return (
    <p id="freshness" class={`freshness ${state}`} role="status" aria-live="polite" hx-swap-oob={p.oob ? "true" : undefined}>
      <span class="dot" aria-hidden="true"></span>
      <span>event lag {fmtLag(lag)}</span>
      <span>processing lag {fmtLag(f?.processingLagMs ?? null)}</span>
      {f?.watermark && <span class="wm">watermark {f.watermark.slice(11, 19)} UTC</span>}
    </p>
  );
}
