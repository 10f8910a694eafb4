// Hostile from/to values on every range endpoint of the read API and the dashboard (app.handle, in process):
// each answer is a 200 or a 400 with the JSON error shape, never a 5xx, and a bound at the end of the
// accepted range (9999-12-31T23:59:59.999Z) still renders.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Elysia } from "elysia";
import { TIME_MAX } from "../../src/ingest/index.ts";
import { VIEWS, dashboardPlugin } from "../../src/views/index.ts";
import { post, startTestEngine } from "../helpers.ts";

type Handler = { handle(r: Request): Promise<Response> };

let t: Awaited<ReturnType<typeof startTestEngine>>;
let dashboard: Handler;
const now = Date.now();
const HOUR = 3_600_000;

const HOSTILE = [
  "9999999999990000",
  "9999999999999999",
  "8640000000000000",
  "8640000000000001",
  "8.64e15",
  "1e21",
  "1e400",
  "-1",
  "-0",
  "0",
  "-3600000",
  String(TIME_MAX),
  String(TIME_MAX + 1),
  "9999-12-31T23:59:59.999Z",
  "9999-12-31T23:59:59.999-23:59",
  "9999-12-31T23:59:59.999999999+23:59",
  "10000-01-01T00:00:00Z",
  "+275760-09-13T00:00:00.001Z",
  "0000-01-01T00:00:00Z",
  "1969-12-31T23:59:59.999Z",
  "1970-01-01T00:00:00Z",
  "2026-02-30T00:00:00Z",
  "2025-02-29T00:00:00Z",
  "2100-02-29T00:00:00Z",
  "2026-01-01T24:00:00Z",
  "2026-01-01T24:00",
  "2026-01-01T23:60Z",
  "2026-01-01T23:59:60Z",
  "2026-01-01T00:00:00+24:00",
  "2026-01-01T00:00:00", // zone-less: the dashboard reads it as UTC, the API refuses it
  "2026-01-01",
  "２０２６-01-01T00:00:00Z",
  "NaN",
  "Infinity",
  "-Infinity",
  "null",
  "",
  " ",
  "x".repeat(10_000),
  "9".repeat(5_000),
  "2026-01-01T00:00:00Z".repeat(50),
];

/** Query strings: each hostile value as from, as to, as both, and against a sane other bound. */
function queries(): string[] {
  const q = (k: string, v: string) => `${k}=${encodeURIComponent(v)}`;
  const out = new Set<string>();
  for (const h of HOSTILE) {
    out.add(q("from", h));
    out.add(q("to", h));
    out.add(`${q("from", h)}&${q("to", h)}`);
    out.add(`${q("from", h)}&to=${now}`);
    out.add(`from=${now - HOUR}&${q("to", h)}`);
    out.add(`from=${TIME_MAX - HOUR}&${q("to", h)}`);
    out.add(`${q("from", h)}&to=${TIME_MAX}`);
    // a short range next to a numeric value, so the span check does not refuse it first
    const n = Number(h);
    if (h.trim() !== "" && Number.isFinite(n)) {
      out.add(`${q("from", h)}&${q("to", String(n + HOUR))}`);
      out.add(`${q("from", String(n - HOUR))}&${q("to", h)}`);
    }
  }
  // the last hour the parser accepts, in both spellings
  out.add(`from=${TIME_MAX - HOUR}&to=${TIME_MAX}`);
  out.add(`from=${encodeURIComponent("9999-12-31T23:00:00Z")}&to=${encodeURIComponent("9999-12-31T23:59:59.999Z")}`);
  // percent-encoding that does not decode
  for (const raw of ["from=%", "from=%E0%A4%A", "from=%00", "to=%FF%FE", "from=%2B1"]) out.add(raw);
  return [...out];
}

const API_PATHS = [
  "/api/metrics/summary",
  "/api/metrics/timeseries?step=1s",
  "/api/metrics/timeseries?step=1m",
  "/api/metrics/timeseries?step=1h",
  "/api/metrics/timeseries?metric=users&step=1h",
  "/api/products/top",
  "/api/funnel",
  "/api/performance",
  "/api/campaigns",
  "/api/inventory",
];
const DASHBOARD_PATHS = ["/", ...VIEWS.map((v) => `/?view=${v}`), ...VIEWS.map((v) => `/ui/${v}`)];

const join = (path: string, q: string) => `${path}${path.includes("?") ? "&" : "?"}${q}`;

/** Every answer is 200 or a 400 with `{error: {code, message}}`; returns the status. */
async function expectNo5xx(app: Handler, path: string): Promise<number> {
  const res = await app.handle(new Request(`http://rtae.test${path}`));
  const body = await res.text();
  if (res.status !== 200 && res.status !== 400) throw new Error(`${path.slice(0, 200)}: status ${res.status} ${body.slice(0, 200)}`);
  if (res.status === 400) {
    expect(res.headers.get("content-type")).toContain("application/json");
    const err = (JSON.parse(body) as { error: { code: unknown; message: unknown } }).error;
    expect(typeof err.code).toBe("string");
    expect(typeof err.message).toBe("string");
    expect(body).not.toContain("    at ");
    expect(body.length).toBeLessThan(1000);
  }
  return res.status;
}

beforeAll(async () => {
  t = await startTestEngine();
  dashboard = new Elysia().use(dashboardPlugin(t.engine, { throttleMs: 20 }));
  // one event in the last hour and one at the far end of time's range (refused by the door: in the future)
  const ev = (id: string, timestamp: number | string) => JSON.stringify({ eventId: id, type: "page_view", timestamp, userId: "u", sessionId: "s", page: "/", loadTimeMs: 10 });
  const res = await post(t.app, [ev("d1", now - 60_000), ev("d2", TIME_MAX), ev("d3", "9999999999990000")].join("\n"));
  expect(((await res.json()) as { accepted: number }).accepted).toBe(1);
  expect(await t.engine.caughtUp()).toBe(true);
});
afterAll(async () => {
  await t.stop();
});

describe("hostile from/to on the read API", () => {
  it("answers 200 or 400 with a JSON error on every range endpoint, never 5xx", async () => {
    const qs = queries();
    const seen = new Set<number>();
    for (const path of API_PATHS) for (const q of qs) seen.add(await expectNo5xx(t.app, join(path, q)));
    expect([...seen].sort()).toEqual([200, 400]);
  });

  it("refuses dates past the Date range and impossible dates with invalid_parameter naming the parameter", async () => {
    for (const [q, name] of [
      ["from=9999999999990000&to=9999999999999999", "from"],
      [`from=${now - HOUR}&to=9999999999999999`, "to"],
      [`from=${now - HOUR}&to=8640000000000000`, "to"],
      ["from=2026-02-30T00:00:00Z", "from"],
      ["from=2026-01-01T24:00:00Z", "from"],
      [`from=${encodeURIComponent("2026-01-01T00:00:00+24:00")}`, "from"],
      ["from=2026-01-01T00:00:00", "from"],
    ] as const) {
      for (const path of ["/api/metrics/summary", "/api/metrics/timeseries?step=1h"]) {
        const res = await t.app.handle(new Request(`http://rtae.test${join(path, q)}`));
        expect(res.status).toBe(400);
        const b = (await res.json()) as { error: { code: string; message: string } };
        expect(b.error.code).toBe("invalid_parameter");
        expect(b.error.message).toStartWith(`${name} `);
      }
    }
  });

  it("answers the last hour before 9999-12-31T23:59:59.999Z with ISO bounds and every bucket", async () => {
    for (const [q, from] of [
      [`from=${TIME_MAX - HOUR}&to=${TIME_MAX}`, "9999-12-31T22:59:59.999Z"],
      [`from=9999-12-31T23:00:00Z&to=${encodeURIComponent("9999-12-31T23:59:59.999Z")}`, "9999-12-31T23:00:00.000Z"],
    ]) {
      const s = await t.app.handle(new Request(`http://rtae.test/api/metrics/summary?${q}`));
      expect(s.status).toBe(200);
      const body = (await s.json()) as { from: string; to: string; events: { total: number } };
      expect(body).toMatchObject({ from, to: "9999-12-31T23:59:59.999Z" });
      expect(body.events.total).toBe(0);
      const ts = await t.app.handle(new Request(`http://rtae.test/api/metrics/timeseries?step=1m&${q}`));
      expect(ts.status).toBe(200);
      const points = ((await ts.json()) as { points: Array<{ t: string; value: number }> }).points;
      expect(points.at(-1)).toEqual({ t: "9999-12-31T23:59:00.000Z", value: 0 });
      expect(points.length).toBeGreaterThanOrEqual(60);
    }
  });
});

describe("hostile from/to on the dashboard", () => {
  it("answers 200 or 400 with a JSON error on the page and every view partial, never 5xx", async () => {
    const qs = queries();
    const seen = new Set<number>();
    for (const path of DASHBOARD_PATHS) for (const q of qs) seen.add(await expectNo5xx(dashboard, join(path, q)));
    expect([...seen].sort()).toEqual([200, 400]);
  });

  it("reads a zone-less datetime-local value as UTC and refuses the impossible ones the API refuses", async () => {
    const ok = await dashboard.handle(new Request("http://rtae.test/ui/overview?from=9999-12-31T23:00&to=9999-12-31T23:59"));
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("9999-12-31 23:00 UTC");
    for (const q of ["from=2026-02-30T00:00", "from=2026-01-01T24:00", "from=9999999999990000&to=9999999999999999"]) {
      const res = await dashboard.handle(new Request(`http://rtae.test/ui/overview?${q}`));
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_parameter");
    }
  });
});
