// The browser tracker end to end: /t.js served by the app, loaded by a shop page of another origin in real
// Chromium, its beacons ingested by a real engine; plus the tracker's browser-side rules with deliveries captured in the page.

import type { Listening } from "../../src/server/front.ts";
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync } from "node:fs";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { createApp } from "../../src/server/app.ts";
import { TRACKER_SOURCE, trackerPlugin, trackerScript } from "../../src/views/tracker/plugin.ts";
import { launchBrowser, saveScreenshot, skipBrowserTests } from "../browser.ts";
import { startTestEngine } from "../helpers.ts";

const KEY = "shop-ingest-key-0123456789";
const SHOP_QUERY = "ref=home&utm_source=newsletter&utm_medium=email&utm_campaign=bf";

// The stub a shop pastes before the async script: calls made before /t.js arrives wait in rtae.q.
const STUB = `window.rtae=window.rtae||{q:[],track:function(){rtae.q.push(arguments)}};`;
const page = (title: string, head: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title><link rel="icon" href="data:,">${head}</head>` +
  `<body style="font-family:sans-serif"><h1>${title}</h1><p>A product page of the test shop.</p><button>Add to cart</button></body></html>`;
const shopPages = (rtae: string): Record<string, string> => ({
  "/__test/shop": page(
    "Test shop",
    `<script>${STUB}rtae.track("add_to_cart",{productId:"p1",price:9.99,quantity:2});</script>` +
      `<script async src="${rtae}/t.js" data-key="${KEY}"></script>`,
  ),
  "/__test/plain": page("Another page", `<script async src="${rtae}/t.js"></script>`),
  // events to another collector (never reached: these deliveries are captured in the page)
  "/__test/endpoint": page("Own endpoint", `<script async src="${rtae}/t.js" data-endpoint="https://collect.example/rtae/" data-key="a b&c"></script>`),
});

let t: Awaited<ReturnType<typeof startTestEngine>>;
let server: Listening;
let shop: ReturnType<typeof Bun.serve>;
let origin = "";
let shopOrigin = "";
let app: { handle(r: Request): Promise<Response> };

beforeAll(async () => {
  t = await startTestEngine(["--ingest-keys", KEY]);
  const http = createApp(t.engine, { plugins: [trackerPlugin(t.engine)] });
  app = http;
  server = http.listen({ port: 0, hostname: "127.0.0.1" });
  origin = `http://127.0.0.1:${server.port}`;
  // The shop is another origin, as in production; rtae's own CSP (no inline script) does not apply to it.
  const pages = shopPages(origin);
  shop = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req) => {
      const body = pages[new URL(req.url).pathname];
      return body === undefined
        ? new Response("not found", { status: 404 })
        : new Response(body, { headers: { "content-type": "text/html; charset=utf-8" } });
    },
  });
  shopOrigin = `http://127.0.0.1:${shop.port}`;
});
afterAll(async () => {
  shop?.stop(true);
  await server?.stop(true);
  await t?.stop();
});

describe("GET /t.js", () => {
  it("serves the tracker as cacheable JavaScript under 3 KB gzipped", async () => {
    const res = await app.handle(new Request("http://rtae.test/t.js"));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/javascript; charset=utf-8");
    expect(res.headers.get("cache-control")).toContain("max-age=");
    const body = await res.text();
    expect(body).toBe(trackerScript());
    expect(Bun.gzipSync(new TextEncoder().encode(body)).length).toBeLessThanOrEqual(3 * 1024);

    const etag = res.headers.get("etag");
    expect(etag).toBeTruthy();
    const again = await app.handle(new Request("http://rtae.test/t.js", { headers: { "if-none-match": etag! } }));
    expect(again.status).toBe(304);
  });

  it("shrinks the source without changing its code lines", () => {
    // the line-level shrink is safe only without template literals or multi-line strings
    expect(TRACKER_SOURCE.includes("`")).toBe(false);
    expect(TRACKER_SOURCE.includes("\\\n")).toBe(false);
    const served = trackerScript();
    expect(() => new Function(served)).not.toThrow();
    const codeLines = TRACKER_SOURCE.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("//"));
    expect(served).toBe(codeLines.join("\n") + "\n");
    expect(served.length).toBeLessThan(TRACKER_SOURCE.length);
  });
});

type Sent = { via: string; url: string; contentType: string; events: Array<Record<string, unknown>> };

/** Replace sendBeacon (and fetch) in the page so every delivery is recorded instead of sent. */
const CAPTURE = (beaconAccepts: boolean, dnt: boolean, noRandomUUID: boolean) => `
  window.__sent = [];
  window.__texts = [];
  ${dnt ? `Object.defineProperty(Navigator.prototype, "doNotTrack", { get: () => "1" });` : ""}
  ${noRandomUUID ? `Object.defineProperty(Crypto.prototype, "randomUUID", { value: undefined });` : ""}
  navigator.sendBeacon = function (url, data) {
    window.__sent.push({ via: "beacon", url: String(url), blob: data, contentType: data.type });
    data.text().then((t) => window.__texts.push(t));
    return ${beaconAccepts};
  };
  window.fetch = function (url, init) {
    window.__sent.push({ via: "fetch", url: String(url), blob: new Blob([init.body]), contentType: init.headers["content-type"],
      keepalive: init.keepalive, method: init.method, mode: init.mode });
    window.__texts.push(String(init.body));
    return Promise.resolve(new Response(null, { status: 202 }));
  };`;

async function sent(p: Page): Promise<Sent[]> {
  return p.evaluate(async () => {
    const all = (window as unknown as { __sent: Array<{ via: string; url: string; blob: Blob; contentType: string; keepalive?: boolean; method?: string; mode?: string }> }).__sent;
    const out = [];
    for (const s of all) {
      const text = await s.blob.text();
      if (s.via === "fetch" && (s.keepalive !== true || s.method !== "POST" || s.mode !== "no-cors")) throw new Error("fetch is not a keepalive no-cors POST");
      out.push({ via: s.via, url: s.url, contentType: s.contentType, events: text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l)) });
    }
    return out;
  });
}
const eventsOf = (s: Sent[]) => s.flatMap((x) => x.events);

/** Resolves once the page view (sent after the load event) has been handed to the browser. */
const pageViewSent = (p: Page) =>
  p.waitForFunction(() => (window as unknown as { __texts: string[] }).__texts.some((t) => t.includes('"type":"page_view"')));

/** Track an event and flush synchronously through the pagehide path. */
const trackAndFlush = (p: Page, type: string, props: Record<string, unknown>) =>
  p.evaluate(
    ([type, props]) => {
      (window as unknown as { rtae: { track(t: string, p: unknown): void } }).rtae.track(type as string, props);
      window.dispatchEvent(new Event("pagehide"));
    },
    [type, props] as const,
  );

describe.skipIf(skipBrowserTests())("tracker in Chromium", () => {
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const errors: string[] = [];

  async function open(path: string, init?: string): Promise<Page> {
    const ctx = await browser.newContext();
    contexts.push(ctx);
    if (init !== undefined) await ctx.addInitScript(init);
    const p = await ctx.newPage();
    p.on("console", (m) => {
      if (m.type() === "error") errors.push(`${path}: ${m.text()}`);
    });
    p.on("pageerror", (e) => errors.push(`${path}: ${e.message}`));
    await p.goto(shopOrigin + path);
    try {
      await p.waitForFunction(() => (window as unknown as { rtae?: { loaded?: boolean } }).rtae?.loaded === true, undefined, { timeout: 10_000 });
    } catch (err) {
      throw new Error(`the tracker did not start on ${path}; page errors: ${JSON.stringify(errors)}; ${String(err)}`);
    }
    return p;
  }

  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    for (const c of contexts) await c.close();
    await browser?.close();
  });

  it("records a shop visit end to end: page view with load time, queued add_to_cart, campaign attribution", async () => {
    const p = await open(`/__test/shop?${SHOP_QUERY}`);
    const deadline = Date.now() + 15_000;
    let summary: { events: Record<string, number>; uniqueSessions: number; uniqueUsers: number } | undefined;
    for (;;) {
      summary = (await (await app.handle(new Request(`${origin}/api/metrics/summary`))).json()) as typeof summary;
      if (summary!.events.page_view >= 1 && summary!.events.add_to_cart >= 1) break;
      if (Date.now() > deadline) throw new Error(`events did not arrive: ${JSON.stringify(summary)}`);
      await Bun.sleep(50);
    }
    expect(summary!.events.total).toBe(2);
    expect(summary!.events.page_view).toBe(1);
    expect(summary!.events.add_to_cart).toBe(1);
    expect(summary!.uniqueSessions).toBe(1);
    expect(summary!.uniqueUsers).toBe(1);

    const get = async (path: string) => (await app.handle(new Request(origin + path))).json() as Promise<any>;
    expect((await get("/api/campaigns")).items).toEqual([{ source: "newsletter", sessions: 1, orders: 0, revenue: 0 }]);
    expect((await get("/api/products/top?by=carts")).items).toEqual([{ productId: "p1", value: 1 }]);

    // the load time the browser itself measured, against the engine's percentile (1 % sketch, ms rounding)
    const expected = await p.evaluate(() => {
      const n = performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming;
      return Math.round(n.loadEventEnd - n.startTime);
    });
    const perf = (await get("/api/performance")).loadTimeMs;
    expect(perf.count).toBe(1);
    expect(Math.abs(perf.p50 - expected)).toBeLessThanOrEqual(Math.max(1, expected * 0.02));

    const shot = await saveScreenshot(p, "tracker-shop");
    expect(existsSync(shot)).toBe(true);
    expect(errors).toEqual([]);
  });

  it("sends the page without utm params, the UTM fields and the key on the beacon URL, one user and session across pages of a tab", async () => {
    const p = await open(`/__test/shop?${SHOP_QUERY}`, CAPTURE(true, false, false));
    await pageViewSent(p);
    await trackAndFlush(p, "purchase", { orderId: "o1", items: [{ productId: "p1", price: 9.99, quantity: 2 }] });
    const first = await sent(p);
    for (const s of first) {
      expect(s.via).toBe("beacon");
      expect(s.url).toBe(`${origin}/api/events?key=${KEY}`);
      expect(s.contentType).toBe("text/plain");
    }
    const evs = eventsOf(first);
    expect(evs.map((e) => e.type).sort()).toEqual(["add_to_cart", "page_view", "purchase"]);
    const pv = evs.find((e) => e.type === "page_view")!;
    expect(pv.page).toBe("/__test/shop?ref=home");
    expect([pv.utmSource, pv.utmMedium, pv.utmCampaign]).toEqual(["newsletter", "email", "bf"]);
    expect(pv.referrer).toBeUndefined();
    expect(typeof pv.loadTimeMs).toBe("number");
    const cart = evs.find((e) => e.type === "add_to_cart")!;
    expect([cart.productId, cart.price, cart.quantity]).toEqual(["p1", 9.99, 2]);

    // a second page in the same tab keeps user and session; a new browser profile gets a new user
    await p.goto(`${shopOrigin}/__test/plain`);
    await pageViewSent(p);
    const second = await sent(p);
    expect(second[0].url).toBe(`${origin}/api/events`);
    const all = [...evs, ...eventsOf(second)];
    expect(new Set(all.map((e) => e.userId)).size).toBe(1);
    expect(new Set(all.map((e) => e.sessionId)).size).toBe(1);
    expect(new Set(all.map((e) => e.eventId)).size).toBe(all.length);
    for (const e of all) {
      expect(typeof e.timestamp).toBe("number");
      expect(Math.abs((e.timestamp as number) - Date.now())).toBeLessThan(60_000);
    }

    const other = await open("/__test/plain", CAPTURE(true, false, false));
    await pageViewSent(other);
    const [o] = eventsOf(await sent(other));
    expect(o.userId).not.toBe(all[0].userId);
    expect(o.sessionId).not.toBe(all[0].sessionId);
  });

  it("starts a new session after 30 minutes of inactivity and keeps the user", async () => {
    const p = await open("/__test/plain", CAPTURE(true, false, false));
    await trackAndFlush(p, "product_view", { productId: "p1" });
    await p.evaluate(() => sessionStorage.setItem("rtae_seen", String(Date.now() - 31 * 60_000)));
    await trackAndFlush(p, "product_view", { productId: "p2" });
    await trackAndFlush(p, "product_view", { productId: "p3" });
    const evs = eventsOf(await sent(p)).filter((e) => e.type === "product_view");
    expect(evs.map((e) => e.productId)).toEqual(["p1", "p2", "p3"]);
    expect(evs[1].sessionId).not.toBe(evs[0].sessionId);
    expect(evs[2].sessionId).toBe(evs[1].sessionId);
    expect(new Set(evs.map((e) => e.userId)).size).toBe(1);
  });

  it("sends and stores nothing when Do Not Track is on", async () => {
    const p = await open(`/__test/shop?${SHOP_QUERY}`, CAPTURE(true, true, false));
    await trackAndFlush(p, "add_to_cart", { productId: "p1" }); // the same call sends at once without DNT (tests above)
    expect(await sent(p)).toEqual([]);
    const stored = await p.evaluate(() => localStorage.length + sessionStorage.length);
    expect(stored).toBe(0);
  });

  it("falls back to fetch with keepalive when sendBeacon refuses, with ids unique without crypto.randomUUID", async () => {
    const p = await open("/__test/plain", CAPTURE(false, false, true));
    for (let i = 0; i < 5; i++) await trackAndFlush(p, "product_view", { productId: `p${i}` });
    const all = await sent(p);
    const fetched = all.filter((s) => s.via === "fetch");
    expect(fetched.length).toBe(all.filter((s) => s.via === "beacon").length);
    expect(fetched.length).toBeGreaterThanOrEqual(5);
    for (const s of fetched) expect(s.contentType).toBe("text/plain");
    const evs = eventsOf(fetched);
    expect(evs.filter((e) => e.type === "product_view").length).toBe(5);
    for (const e of evs) expect(e.eventId).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set(evs.map((e) => e.eventId)).size).toBe(evs.length);
  });

  it("sends to data-endpoint with the key URL-encoded", async () => {
    const p = await open("/__test/endpoint", CAPTURE(true, false, false));
    await trackAndFlush(p, "checkout", {});
    const all = await sent(p);
    expect(all.length).toBeGreaterThan(0);
    for (const s of all) expect(s.url).toBe("https://collect.example/rtae/api/events?key=a%20b%26c");
    expect(eventsOf(all).map((e) => e.type)).toContain("checkout");
  });
});
