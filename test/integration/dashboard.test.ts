// The dashboard in process (app.handle): page, partials with hand-computed numbers, history
// ranges, errors and assets; one real-port test for the SSE stream driven by a "live" message.

import { afterAll, afterEach, beforeAll, describe, expect, it } from "bun:test";
import { Elysia } from "elysia";
import { dashboardPlugin, viewStream } from "../../src/views/index.ts";
import { post, startTestEngine } from "../helpers.ts";

let t: Awaited<ReturnType<typeof startTestEngine>>;
let app: { handle(r: Request): Promise<Response> };
const base = Math.floor((Date.now() - 20 * 60_000) / 60_000) * 60_000; // a whole minute, 20 min ago
const range = `from=${base}&to=${base + 10 * 60_000}`;

type Ev = Record<string, unknown>;
const HOSTILE = "<img src=x onerror=alert(1)>";
const events: Ev[] = [];
let n = 0;
const add = (type: string, sessionId: string, extra: Ev = {}) =>
  events.push({ eventId: `d${++n}`, type, timestamp: base + n * 1000, userId: `u-${sessionId}`, sessionId, ...extra });

// s1 converts via the newsletter, s2 converts without a campaign, s3 abandons its cart (google)
add("page_view", "s1", { utmSource: "newsletter", loadTimeMs: 500, page: "/" });
add("product_view", "s1", { productId: "p1", price: 19.99 });
add("product_view", "s1", { productId: "p2", price: 5.5 });
add("add_to_cart", "s1", { productId: "p1", price: 19.99, quantity: 2 });
add("checkout", "s1");
add("purchase", "s1", { orderId: "o1", items: [{ productId: "p1", price: 19.99, quantity: 2 }, { productId: "p2", price: 5.5, quantity: 1 }] });
add("page_view", "s2", { loadTimeMs: 500, page: "/p1" });
add("product_view", "s2", { productId: "p1", price: 19.99 });
add("add_to_cart", "s2", { productId: "p1", price: 19.99 });
add("checkout", "s2");
add("purchase", "s2", { orderId: "o2", items: [{ productId: "p1", price: 19.99, quantity: 1 }] });
add("page_view", "s3", { utmSource: HOSTILE, loadTimeMs: 500, page: "/" });
add("page_view", "s3", { loadTimeMs: 500, page: "/<script>alert(1)</script>" });
add("product_view", "s3", { productId: "p1", price: 19.99 });
add("add_to_cart", "s3", { productId: "p1", price: 19.99 });
events.push({ eventId: "inv1", type: "inventory_update", timestamp: base + 30_000, productId: "p1", stock: 3 });
events.push({ eventId: "inv2", type: "inventory_update", timestamp: base + 31_000, productId: "p2", stock: 50 });

// expected values, computed by plain loops over the events above
let revenueCents = 0;
let orders = 0;
const unitsBy = new Map<string, number>();
const viewsBy = new Map<string, number>();
const revenueBySession = new Map<string, number>();
for (const e of events) {
  if (e.type === "product_view") viewsBy.set(e.productId as string, (viewsBy.get(e.productId as string) ?? 0) + 1);
  if (e.type !== "purchase") continue;
  orders++;
  for (const it of e.items as Array<{ productId: string; price: number; quantity: number }>) {
    const c = Math.round(it.price * 100) * it.quantity;
    revenueCents += c;
    revenueBySession.set(e.sessionId as string, (revenueBySession.get(e.sessionId as string) ?? 0) + c);
    unitsBy.set(it.productId, (unitsBy.get(it.productId) ?? 0) + it.quantity);
  }
}
const money = (cents: number) => `${(cents / 100).toFixed(2).replace(/\B(?=(\d{3})+(?!\d))/g, ",")} USD`;

const get = (path: string, headers: Record<string, string> = {}) => app.handle(new Request(`http://rtae.test${path}`, { headers }));
const text = async (path: string, headers?: Record<string, string>) => {
  const res = await get(path, headers);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
  return res.text();
};
/** cell texts of the table rows in a rendered card, for assertions that ignore markup */
const rowsOf = (html: string) => [...html.matchAll(/<tr[^>]*>(.*?)<\/tr>/g)].map((m) => [...m[1].matchAll(/<t[dh][^>]*>(.*?)<\/t[dh]>/g)].map((c) => c[1]));

beforeAll(async () => {
  t = await startTestEngine();
  app = new Elysia().use(dashboardPlugin(t.engine, { throttleMs: 20 }));
  const res = await post(t.app, events.map((e) => JSON.stringify(e)).join("\n"));
  expect(((await res.json()) as { accepted: number }).accepted).toBe(events.length);
  expect(await t.engine.caughtUp()).toBe(true);
});
afterAll(async () => {
  await t.stop();
});

describe("GET /", () => {
  it("returns a full page with nav, range picker and scripts served only from /assets", async () => {
    const html = await text("/");
    expect(html.startsWith("<!doctype html><html lang=\"en\">")).toBe(true);
    expect(html).toContain("<title>rtae · Overview</title>");
    for (const v of ["Overview", "Products", "Funnel", "Performance", "Campaigns", "Inventory"]) expect(html).toContain(`>${v}</a>`);
    expect(html).toContain('hx-get="/ui/products"');
    for (const k of ["live", "15m", "24h", "7d", "custom"]) expect(html).toContain(`name="range" value="${k}"`);
    expect(html.match(/type="datetime-local"/g)?.length).toBe(2);
    expect(html).toContain('id="freshness"');
    // live by default: the view section opens the SSE stream of its view
    expect(html).toContain('hx-ext="sse" sse-connect="/ui/stream?view=overview"');
    expect(html).toContain('sse-swap="overview"');
    const srcs = [...html.matchAll(/<(?:script|link)[^>]*(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(srcs.sort()).toEqual(["/assets/app.css", "/assets/htmx.min.js", "/assets/sse.js"]);
    expect(html).not.toMatch(/(src|href)="https?:\/\//);
  });

  it("renders the chosen view and range from the query string", async () => {
    const html = await text(`/?view=funnel&${range}`);
    expect(html).toContain("<title>rtae · Funnel</title>");
    expect(html).toContain('aria-current="page">Funnel</a>');
    expect(html).not.toContain("sse-connect");
  });
});

describe("GET /ui/<view>", () => {
  it("renders the overview with revenue, orders, AOV, users and an events/s chart", async () => {
    const html = await text(`/ui/overview?${range}`);
    expect(html).toContain(`<dd>${money(revenueCents)}</dd>`);
    expect(html).toContain(`<dd>${orders}</dd>`);
    expect(html).toContain(`<dd>${money(Math.round(revenueCents / orders))}</dd>`);
    const sessions = new Set(events.filter((e) => e.sessionId).map((e) => e.sessionId)).size;
    expect(html).toContain(`<dt>Sessions</dt><dd>${sessions}<small>`);
    expect(html).toContain(`<dt>Events</dt><dd>${events.length}</dd>`);
    expect(html).toMatch(/<svg width="100%" height="250" role="img" aria-labelledby="ov-rate-t ov-rate-d"/);
    expect(html).toContain(" events/s</text>");
    expect(html).toContain("History · ");
    expect(html).not.toContain("sse-connect");
  });

  it("charts events per second by type over a short range at 1 s resolution", async () => {
    const html = await text(`/ui/overview?from=${base}&to=${base + 120_000}`);
    // one event per second at most, so each type that occurs peaks at exactly 1 event/s
    for (const [type, label] of [["page_view", "page views"], ["purchase", "purchases"], ["remove_from_cart", "remove from cart"]]) {
      const peak = events.some((e) => e.type === type) ? 1 : 0;
      expect(html).toContain(`${label}: peak ${peak} events/s`);
    }
  });

  it("renders the live overview (no range) with the SSE attributes", async () => {
    const html = await text("/ui/overview");
    expect(html).toContain('sse-connect="/ui/stream?view=overview"');
    expect(html).toContain(`<dd>${money(revenueCents)}</dd>`);
  });

  it("renders the products top-10 tables", async () => {
    const html = await text(`/ui/products?${range}`);
    const byViews = [...viewsBy].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const rows = rowsOf(html);
    expect(rows).toContainEqual(["1", byViews[0][0], String(byViews[0][1])]);
    expect(rows).toContainEqual(["2", byViews[1][0], String(byViews[1][1])]);
    const p1Revenue = events
      .filter((e) => e.type === "purchase")
      .flatMap((e) => e.items as Array<{ productId: string; price: number; quantity: number }>)
      .filter((i) => i.productId === "p1")
      .reduce((s, i) => s + Math.round(i.price * 100) * i.quantity, 0);
    expect(rows).toContainEqual(["1", "p1", money(p1Revenue)]);
    expect(rows).toContainEqual(["1", "p1", String(unitsBy.get("p1"))]);
  });

  it("renders the funnel with conversion percentages and cart abandonment", async () => {
    const html = await text(`/ui/funnel?${range}`);
    const sessionsWith = (type: string) => new Set(events.filter((e) => e.type === type).map((e) => e.sessionId)).size;
    const carts = sessionsWith("add_to_cart");
    const checkouts = sessionsWith("checkout");
    const purchases = sessionsWith("purchase");
    const pct = (a: number, b: number) => `${((a / b) * 100).toFixed(1)} %`;
    expect(html).toContain(`${checkouts} · ${pct(checkouts, carts)}`);
    expect(html).toContain(`${purchases} · ${pct(purchases, checkouts)}`);
    expect(html).toContain(`<dt>Abandoned carts</dt><dd>${carts - purchases}`);
    expect(html).toContain(`<dd>${pct(carts - purchases, carts)}</dd>`);
    expect(html).toContain("<title id=\"funnel-t\">");
  });

  it("renders performance percentiles and a line chart in ms with a legend", async () => {
    const html = await text(`/ui/performance?${range}`);
    const loads = events.filter((e) => typeof e.loadTimeMs === "number").map((e) => e.loadTimeMs as number);
    expect(html).toContain(`<dt>Page views measured</dt><dd>${loads.length}</dd>`);
    const p50 = Number(/<dt>p50<\/dt><dd>([\d,]+) ms<\/dd>/.exec(html)![1].replace(/,/g, ""));
    expect(Math.abs(p50 - 500)).toBeLessThanOrEqual(10); // sketch accuracy 1 %
    for (const k of ["p50", "p95", "p99"]) expect(html).toContain(`</span>${k}</li>`);
    expect(html).toContain(" ms</text>");
    expect(html).toMatch(/<path d="M[\d.]+ [\d.]+/);
  });

  it("renders campaigns per first-touch source with revenue", async () => {
    const html = await text(`/ui/campaigns?${range}`);
    const rows = rowsOf(html);
    expect(rows).toContainEqual(["newsletter", "1", "1", money(revenueBySession.get("s1")!)]);
    expect(rows).toContainEqual(["(direct)", "1", "1", money(revenueBySession.get("s2")!)]);
    expect(rows).toContainEqual(["&lt;img src=x onerror=alert(1)>", "1", "0", money(0)]);
    expect(html).toContain('aria-labelledby="camp-revenue-t camp-revenue-d"');
  });

  it("renders the low-stock list with stock and units sold", async () => {
    const html = await text(`/ui/inventory?${range}`);
    const rows = rowsOf(html);
    expect(rows).toContainEqual(["p1", "3", String(unitsBy.get("p1"))]);
    expect(rows.some((r) => r[0] === "p2")).toBe(false); // stock 50 is above the threshold
  });

  it("renders a historical range with no data as an empty state", async () => {
    const from = base - 3 * 3_600_000;
    for (const v of ["overview", "products", "funnel", "performance", "campaigns", "inventory"]) {
      const html = await text(`/ui/${v}?from=${new Date(from).toISOString()}&to=${new Date(from + 3_600_000).toISOString()}`);
      if (v !== "inventory") expect(html).toContain("no data in this range");
      expect(html).toContain(`History · ${new Date(from).toISOString().slice(0, 16).replace("T", " ")} UTC`);
    }
  });

  it("reads datetime-local values as UTC and presets relative to now", async () => {
    const local = new Date(base).toISOString().slice(0, 16);
    const localTo = new Date(base + 10 * 60_000).toISOString().slice(0, 16);
    const html = await text(`/ui/overview?range=custom&from=${local}&to=${localTo}`);
    expect(html).toContain(`<dd>${money(revenueCents)}</dd>`);
    const day = await text("/ui/campaigns?range=24h");
    expect(day).toContain(money(revenueBySession.get("s1")!));
    expect(day).not.toContain("sse-connect");
  });

  it("escapes user-supplied strings", async () => {
    const html = await text(`/ui/campaigns?${range}`);
    expect(html).toContain("&lt;img src=x onerror=alert(1)>");
    expect(html).not.toContain("<img");
  });

  it("adds out-of-band nav and picker for htmx requests", async () => {
    const html = await text(`/ui/products?range=7d`, { "hx-request": "true" });
    expect(html).toContain('<nav id="nav" aria-label="Views" hx-swap-oob="true">');
    expect(html).toContain('hx-get="/ui/funnel?range=7d"');
    expect(html).toContain('id="range-picker"');
    expect(html).toContain('value="7d" aria-pressed="true"');
  });

  it("answers 404 JSON for an unknown view and 400 for bad ranges", async () => {
    const r404 = await get("/ui/teleport");
    expect(r404.status).toBe(404);
    expect(((await r404.json()) as { error: { code: string } }).error.code).toBe("not_found");
    for (const q of ["from=yesterday", `from=${base}&to=${base}`, "range=forever", "range=custom", `from=0&to=${Date.now()}`]) {
      const res = await get(`/ui/overview?${q}`);
      expect(res.status).toBe(400);
      expect(res.headers.get("content-type")).toContain("application/json");
      const b = (await res.json()) as { error: { code: string; message: string } };
      expect(b.error.code).toBe("invalid_parameter");
      expect(b.error.message.length).toBeGreaterThan(10);
    }
    expect((await get("/?view=nope")).status).toBe(404);
    expect((await get("/ui/stream?view=nope")).status).toBe(400);
  });
});

describe("GET /assets/*", () => {
  it("serves htmx, the SSE extension and the stylesheet with types and cache headers", async () => {
    const cases: Array<[string, string, string]> = [
      ["htmx.min.js", "text/javascript; charset=utf-8", "htmx"],
      ["sse.js", "text/javascript; charset=utf-8", "defineExtension('sse'"],
      ["app.css", "text/css; charset=utf-8", ".grid"],
    ];
    for (const [name, type, marker] of cases) {
      const res = await get(`/assets/${name}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe(type);
      expect(res.headers.get("cache-control")).toContain("max-age=");
      const etag = res.headers.get("etag")!;
      expect(etag.length).toBeGreaterThan(2);
      expect(await res.text()).toContain(marker);
      expect((await get(`/assets/${name}`, { "if-none-match": etag })).status).toBe(304);
    }
    expect((await get("/assets/secret.txt")).status).toBe(404);
  });
});

describe("GET /ui/stream", () => {
  let server: ReturnType<typeof Bun.serve> | null = null;
  afterEach(() => {
    server?.stop(true);
    server = null;
  });

  /** reads SSE frames until one satisfies `want` */
  async function nextFrame(reader: ReadableStreamDefaultReader<Uint8Array>, buf: { s: string }, want: (f: string) => boolean) {
    const dec = new TextDecoder();
    for (;;) {
      let i: number;
      while ((i = buf.s.indexOf("\n\n")) >= 0) {
        const frame = buf.s.slice(0, i);
        buf.s = buf.s.slice(i + 2);
        if (want(frame)) return frame;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error("stream ended");
      buf.s += dec.decode(value, { stream: true });
    }
  }

  it("sends a rendered partial after a contract message on the live channel", async () => {
    // the hot cache is wrapped so the test sees the stream subscribe and, after the abort, unsubscribe
    const unsubscribed = Promise.withResolvers<void>();
    let subscribers = 0;
    const hot = {
      ...t.engine.hot,
      subscribe(channel: string, fn: (m: string) => void) {
        const off = t.engine.hot.subscribe(channel, fn);
        if (channel === "live") subscribers++;
        return () => {
          off();
          if (channel === "live" && --subscribers === 0) unsubscribed.resolve();
        };
      },
    };
    const streamApp = new Elysia().use(dashboardPlugin({ ...t.engine, hot }, { throttleMs: 20 }));
    server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (req) => streamApp.handle(req) });
    const ac = new AbortController();
    const res = await fetch(`http://127.0.0.1:${server.port}/ui/stream?view=overview`, { signal: ac.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const reader = res.body!.getReader();
    const buf = { s: "" };
    // the first frame is rendered from the queries (no topic value yet)
    const first = await nextFrame(reader, buf, (f) => f.startsWith("event: overview\n"));
    expect(first).toContain(money(revenueCents));

    const summary = {
      from: new Date(Date.now() - 3_600_000).toISOString(),
      to: new Date().toISOString(),
      events: { page_view: 7, total: 7 },
      revenue: 12345.67,
      orders: 3,
      units: 4,
      aov: 4115.22,
      uniqueUsers: 2,
      uniqueSessions: 2,
      late: { merged: 0, dropped: 0 },
      duplicates: 0,
      watermark: null,
    };
    const value = {
      summary,
      rate: { page_view: 0.7, total: 0.7 },
      freshness: { watermark: new Date().toISOString(), eventLagMs: 4321, processingLagMs: 12 },
      series: [{ t: new Date(Date.now() - 1000).toISOString(), value: 1 }],
    };
    t.engine.hot.set("topic:overview", value);
    t.engine.hot.publish("live", JSON.stringify({ topic: "overview", seq: 1, kind: "snapshot", value }));
    const frame = await nextFrame(reader, buf, (f) => f.startsWith("event: overview\n"));
    expect(frame).toContain("12,345.67 USD");
    expect(frame).toContain("4,115.22 USD");
    expect(frame.split("\n").every((l, i) => i === 0 || l.startsWith("data: "))).toBe(true);
    const fresh = await nextFrame(reader, buf, (f) => f.startsWith("event: freshness\n"));
    expect(fresh).toContain('hx-swap-oob="true"');
    expect(fresh).toContain("event lag 4.3 s");
    expect(subscribers).toBe(1);
    ac.abort();
    await unsubscribed.promise; // the server noticed the disconnect and cleaned up
    expect(subscribers).toBe(0);
    t.engine.hot.set("topic:overview", undefined);
  });

  it("closes the stream and unsubscribes when the client aborts", async () => {
    const ac = new AbortController();
    const res = viewStream(t.engine, "funnel", ac.signal, { heartbeatMs: 60_000 });
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let got = "";
    while (!got.includes("event: funnel")) got += dec.decode((await reader.read()).value);
    ac.abort();
    for (;;) if ((await reader.read()).done) break;
    // a publish after the abort reaches no closed controller (it would throw into the publisher's loop)
    expect(() => t.engine.hot.publish("live", JSON.stringify({ topic: "funnel", seq: 2, kind: "delta", value: {} }))).not.toThrow();
  });
});
