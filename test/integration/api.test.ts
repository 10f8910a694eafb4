// The HTTP API in process (app.handle): every query endpoint, and hostile input at the ingest door
// with the valid events of the same batch still counted and the workers still alive.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { getJson, post, startTestEngine } from "../helpers.ts";

let t: Awaited<ReturnType<typeof startTestEngine>>;
const now = Date.now();
const base = Math.floor((now - 20 * 60_000) / 60_000) * 60_000; // a whole minute, 20 min ago
const from = base;
const to = base + 10 * 60_000;
const range = `from=${from}&to=${to}`;

const ev = (id: string, type: string, extra: Record<string, unknown> = {}) => ({
  eventId: id,
  type,
  timestamp: base + 1000,
  userId: "u1",
  sessionId: "s1",
  ...extra,
});

beforeAll(async () => {
  t = await startTestEngine();
});
afterAll(async () => {
  await t.stop();
});

describe("POST /api/events", () => {
  it("accepts valid events and rejects bad ones with index and reason, counting only the valid", async () => {
    const huge = "x".repeat(5000);
    const lines = [
      JSON.stringify(ev("a1", "page_view", { loadTimeMs: 800, utmSource: "google" })),
      "{not json",
      JSON.stringify(ev("a2", "product_view", { productId: 7 })), // wrong type
      JSON.stringify({ type: "page_view", timestamp: base, userId: "u", sessionId: "s" }), // missing eventId
      JSON.stringify(ev("a3", "teleport")), // unknown type
      JSON.stringify(ev("a4", "page_view", { timestamp: now + 3_600_000 })), // far future
      JSON.stringify(ev("a5", "page_view", { page: huge })), // oversized string
      JSON.stringify(ev("a6", "product_view", { productId: "p1", price: 10.5, category: "c" })),
      JSON.stringify(ev("a7", "purchase", { items: [{ productId: "p1", price: 10.5, quantity: 2 }], timestamp: base + 2000 })),
    ];
    const bytes = new TextEncoder().encode(lines.join("\n") + "\n");
    // an invalid UTF-8 line in the middle
    const bad = new Uint8Array([...new TextEncoder().encode('{"eventId":"zz","type":"page_view"'), 0xff, 0xfe, 0x7d, 0x0a]);
    const body = new Uint8Array(bytes.length + bad.length);
    body.set(bytes);
    body.set(bad, bytes.length);
    const res = await post(t.app, body);
    expect(res.status).toBe(202);
    const out = (await res.json()) as { accepted: number; rejected: number; errors: Array<{ index: number; reason: string }> };
    expect(out.accepted).toBe(3);
    expect(out.rejected).toBe(7);
    expect(out.errors.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6, 9]);
    for (const e of out.errors) expect(e.reason.length).toBeGreaterThan(5);
    expect(out.errors.find((e) => e.index === 2)!.reason).toContain("productId");
    expect(out.errors.find((e) => e.index === 9)!.reason).toContain("UTF-8");

    expect(await t.engine.caughtUp()).toBe(true);
    const { body: s } = await getJson(t.app, `/api/metrics/summary?${range}`);
    expect(s.events.total).toBe(3);
    expect(s.events.page_view).toBe(1);
    expect(s.events.purchase).toBe(1);
    expect(s.revenue).toBe(21);
    expect(s.orders).toBe(1);
    expect(s.units).toBe(2);
    expect(s.aov).toBe(21);
  });

  it("answers 400 when nothing in the batch is valid, 415 for other media types, 413 for oversized bodies", async () => {
    const r1 = await post(t.app, JSON.stringify([{ eventId: "x" }]), "application/json");
    expect(r1.status).toBe(400);
    const b1 = (await r1.json()) as { accepted: number; errors: unknown[] };
    expect(b1.accepted).toBe(0);
    expect(b1.errors.length).toBe(1);

    const r2 = await post(t.app, "{}", "application/xml");
    expect(r2.status).toBe(415);
    expect(((await r2.json()) as any).error.code).toBe("unsupported_media_type");

    const r3 = await post(t.app, "{not json", "application/json");
    expect(r3.status).toBe(400);
    expect(((await r3.json()) as any).error.code).toBe("malformed_json");

    const big = "x".repeat(t.engine.config.maxBodyBytes + 10);
    const r4 = await post(t.app, big, "application/x-ndjson");
    expect(r4.status).toBe(413);
    expect(((await r4.json()) as any).error.code).toBe("body_too_large");
  });

  it("keeps consuming after hostile input: a following valid event is counted", async () => {
    await post(t.app, JSON.stringify({ __proto__: { polluted: true }, constructor: 1 }), "application/json");
    await post(t.app, "[" + "[".repeat(10_000) + "]".repeat(10_000) + "]", "application/json");
    const r = await post(t.app, JSON.stringify(ev("after", "checkout", { timestamp: base + 3000 })), "application/json");
    expect(r.status).toBe(202);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(await t.engine.caughtUp()).toBe(true);
    const { body: s } = await getJson(t.app, `/api/metrics/summary?${range}`);
    expect(s.events.checkout).toBe(1);
    expect(s.events.total).toBe(4);
  });
});

describe("live views in the hot cache", () => {
  it("publishes a last-5-minutes summary delta that includes a just-ingested event", async () => {
    const { promise, resolve } = Promise.withResolvers<{ topic: string; value: { events: { total: number } } }>();
    const off = t.engine.hot.subscribe("deltas", (m) => {
      const d = JSON.parse(m);
      if (d.topic === "summary:5m" && d.value.events.total >= 1) resolve(d);
    });
    const started = performance.now();
    const r = await post(t.app, JSON.stringify({ eventId: "live-1", type: "page_view", timestamp: Date.now(), userId: "u9", sessionId: "s9" }), "application/json");
    expect(r.status).toBe(202);
    const d = await promise;
    off();
    expect(d.value.events.total).toBe(1);
    expect(performance.now() - started).toBeLessThan(5000);
    expect((t.engine.hot.get("summary:5m") as { events: { total: number } }).events.total).toBe(1);
  });
});

describe("GET /api/*", () => {
  it("serves every query endpoint with the contract's shapes", async () => {
    const ts = await getJson(t.app, `/api/metrics/timeseries?metric=events&step=1m&${range}`);
    expect(ts.status).toBe(200);
    expect(ts.body.metric).toBe("events");
    expect(ts.body.step).toBe("1m");
    expect(ts.body.points.length).toBe(10);
    expect(ts.body.points[0]).toEqual({ t: new Date(base).toISOString(), value: 4 });
    expect(ts.body.points[1].value).toBe(0);

    const rev = await getJson(t.app, `/api/metrics/timeseries?metric=revenue&step=1s&from=${base}&to=${base + 5000}`);
    expect(rev.body.points.map((p: { value: number }) => p.value)).toEqual([0, 0, 21, 0, 0]);

    const pv = await getJson(t.app, `/api/metrics/timeseries?metric=events&type=page_view&step=1h&${range}`);
    expect(pv.body.points.reduce((a: number, p: { value: number }) => a + p.value, 0)).toBe(1);

    const top = await getJson(t.app, `/api/products/top?by=revenue&limit=5&${range}`);
    expect(top.body).toEqual({ by: "revenue", items: [{ productId: "p1", value: 21 }] });
    const views = await getJson(t.app, `/api/products/top?by=views&${range}`);
    expect(views.body.items).toEqual([{ productId: "p1", value: 1 }]);

    const f = await getJson(t.app, `/api/funnel?${range}`);
    expect(f.body.sessions).toBe(1);
    expect(f.body.steps.map((s: { sessions: number }) => s.sessions)).toEqual([1, 0, 1, 1]);
    expect(f.body.cartAbandonment).toEqual({ sessions: 0, rate: 0 });

    const perf = await getJson(t.app, `/api/performance?${range}`);
    expect(perf.body.loadTimeMs.count).toBe(1);
    expect(Math.abs(perf.body.loadTimeMs.p50 - 800) / 800).toBeLessThan(0.02);

    const camp = await getJson(t.app, `/api/campaigns?${range}`);
    expect(camp.body.items).toEqual([{ source: "google", sessions: 1, orders: 1, revenue: 21 }]);

    const inv = await getJson(t.app, `/api/inventory?lowStock=10&${range}`);
    expect(inv.body).toEqual({ items: [] });

    expect((await getJson(t.app, "/health")).body.status).toBe("ok");
    expect((await getJson(t.app, "/ready")).body.status).toBe("ready");
  });

  it("rejects bad query parameters with 400 and a JSON error naming the parameter", async () => {
    for (const [path, word] of [
      ["/api/metrics/summary?from=yesterday", "from"],
      ["/api/metrics/summary?from=2026-01-01T00:00:00", "from"],
      [`/api/metrics/summary?from=${to}&to=${from}`, "from"],
      ["/api/metrics/timeseries?metric=bananas", "metric"],
      ["/api/metrics/timeseries?step=7s", "step"],
      ["/api/metrics/timeseries?metric=revenue&type=page_view", "type"],
      [`/api/metrics/timeseries?step=1s&from=${now - 20 * 3_600_000}&to=${now}`, "points"],
      [`/api/metrics/timeseries?step=1s&from=${now - 30 * 3_600_000}&to=${now - 29 * 3_600_000}`, "step=1s"],
      ["/api/products/top?by=price", "by"],
      ["/api/products/top?limit=0", "limit"],
      ["/api/products/top?limit=101", "limit"],
      ["/api/products/top?limit=1e3", "limit"],
      ["/api/inventory?lowStock=-1", "lowStock"],
    ] as const) {
      const r = await getJson(t.app, path);
      expect(r.status).toBe(400);
      expect(typeof r.body.error.code).toBe("string");
      expect(r.body.error.message).toContain(word);
      expect(JSON.stringify(r.body)).not.toContain("    at ");
    }
    const nf = await getJson(t.app, "/api/nope");
    expect(nf.status).toBe(404);
    expect(nf.body.error.code).toBe("not_found");
  });

  it("reports the latest stock by event time and the units sold in the range", async () => {
    const inv = [
      { eventId: "i1", type: "inventory_update", timestamp: base + 5000, productId: "p1", stock: 5 },
      { eventId: "i2", type: "inventory_update", timestamp: base + 4000, productId: "p1", stock: 50 }, // older: ignored
      { eventId: "i3", type: "inventory_update", timestamp: base + 4000, productId: "p2", stock: 40 },
    ];
    expect((await post(t.app, inv.map((e) => JSON.stringify(e)).join("\n"))).status).toBe(202);
    expect(await t.engine.caughtUp()).toBe(true);
    const low = await getJson(t.app, `/api/inventory?lowStock=10&${range}`);
    expect(low.body.items).toEqual([{ productId: "p1", stock: 5, unitsSold: 2 }]);
    const all = await getJson(t.app, `/api/inventory?${range}`);
    expect(all.body.items).toEqual([
      { productId: "p1", stock: 5, unitsSold: 2 },
      { productId: "p2", stock: 40, unitsSold: 0 },
    ]);
  });
});
