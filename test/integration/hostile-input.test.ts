// Hostile input at every door that reads a query string or a body: every GET route of the route table
// with hostile values for every parameter rtae reads (and some it does not), and hostile bodies for
// every route that takes one. Each answer is a fitting 2xx/3xx/4xx, errors are JSON, never a 5xx.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHttpApp } from "../../src/http-app.ts";
import { startAlerting } from "../../src/alerts/index.ts";
import { startLiveTopics } from "../../src/server/live.ts";
import { ROUTES, type HttpApp } from "../../src/server/index.ts";
import { createPrng } from "../../src/generator/prng.ts";
import { startTestEngine } from "../helpers.ts";

const ADMIN = "admin-token-0123456789abcdef";
const SAMPLE: Record<string, string> = { view: "overview", id: "r1", name: "app.css", file: "init.js" };

const PARAMS = ["from", "to", "range", "view", "metric", "type", "step", "by", "limit", "lowStock", "topics", "lastEventId", "next", "key", "format"];
const VALUES = [
  "", " ", "0", "-0", "-1", "1e21", "1e400", "NaN", "Infinity", "9999999999990000", "9999999999999999", "8640000000000000", "8640000000000001",
  "253402300800000", "99999999999999999999999", "2026-02-30T00:00:00Z", "2026-12-04T24:00:00Z", "2026-12-04T23:59:60Z", "0000-01-01T00:00:00Z",
  "+275760-09-13T00:00:00Z", "2026-12-04", "2026-12-04T12:00", "__proto__", "constructor", "toString", "%00", "%zz", "%", "%E2%82", "é", "😀",
  "a".repeat(10_000), "[]", "{}", "null", "true", "<script>alert(1)</script>", "../../etc/passwd", "1,2,3", "overview,overview,nope", "\u0000",
];

/** values every parameter gets on every route: the classes the attacker's probes found */
const ALWAYS = ["9999999999990000", "8640000000000001", "2026-02-30T00:00:00Z", "2026-12-04T24:00:00Z", "%zz", "a".repeat(10_000)];

let t: Awaited<ReturnType<typeof startTestEngine>>;
let live: ReturnType<typeof startLiveTopics>;
let alerts: ReturnType<typeof startAlerting>;
let app: HttpApp;

beforeAll(async () => {
  t = await startTestEngine(["--admin-token", ADMIN]);
  live = startLiveTopics(t.engine);
  alerts = startAlerting(t.engine, []);
  app = createHttpApp(t.engine, live, alerts, { rateLimit: false, loginRateLimit: false });
});
afterAll(async () => {
  live?.stop();
  await alerts?.stop();
  await t?.stop();
});

const auth = { authorization: `Bearer ${ADMIN}` };

async function ask(method: string, path: string, init: { headers?: Record<string, string>; body?: BodyInit } = {}): Promise<{ status: number; type: string; text: string }> {
  const ac = new AbortController();
  const res = await app.handle(new Request("http://rtae.test" + path, { method, headers: { ...auth, ...init.headers }, body: init.body, signal: ac.signal }));
  const type = res.headers.get("content-type") ?? "";
  // streams never end: their head is the answer
  const text = type.startsWith("text/event-stream") ? "" : await res.text();
  ac.abort();
  return { status: res.status, type, text };
}

function expectFitting(where: string, r: { status: number; type: string; text: string }, problems: string[]) {
  if (r.status >= 500) problems.push(`${where}: ${r.status} ${r.text.slice(0, 120)}`);
  if (r.status >= 400 && r.status < 500) {
    // the sign-in form answers its browser with the form again
    if (where.includes(" /login") && r.type.startsWith("text/html")) return;
    try {
      const o = JSON.parse(r.text);
      // the ingest door's 400 is its result: nothing accepted, each event's reason
      if (where.includes(" /api/events") && r.status === 400 && o.accepted === 0 && Array.isArray(o.errors) && o.errors.length > 0) return;
      const e = o.error;
      if (typeof e?.code !== "string" || typeof e?.message !== "string") problems.push(`${where}: ${r.status} without {error:{code,message}}`);
    } catch {
      problems.push(`${where}: ${r.status} body is not JSON: ${r.text.slice(0, 80)}`);
    }
  }
}

describe("hostile query parameters", () => {
  it("never answer 5xx on any GET route, and refusals are JSON errors", async () => {
    const problems: string[] = [];
    const rnd = createPrng(11).next;
    const gets = ROUTES.filter((r) => r.method === "GET" && !r.upgrade);
    for (const r of gets) {
      const path = r.path.replace(/:(\w+)/g, (_, k: string) => SAMPLE[k]);
      // routes that read a query get a seeded sample of every value per parameter; the rest a few (they ignore it)
      const reads = r.path.startsWith("/api/") || r.path === "/" || r.path.startsWith("/ui/") || r.path === "/login";
      for (const p of PARAMS) {
        const values = VALUES.filter((v) => ALWAYS.includes(v) || rnd() < (reads ? 0.4 : 0.05));
        for (const v of values) {
          const q = `${encodeURIComponent(p)}=${encodeURIComponent(v)}`;
          expectFitting(`GET ${path}?${q.slice(0, 60)}`, await ask("GET", `${path}?${q}`), problems);
        }
        // the same parameter twice, as an array, and with raw percent garbage
        for (const q of [`${p}=1&${p}=2`, `${p}[]=1`, `${p}[a]=1`, `${p}=%zz`, `${p}=%E2%82%AC%ZZ`])
          expectFitting(`GET ${path}?${q}`, await ask("GET", `${path}?${q}`), problems);
      }
      // from/to pairs that are each valid but together hostile
      for (const [from, to] of [["0", "8640000000000000"], ["253402300799000", "253402300799999"], ["9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999Z"], ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00.001Z"], ["2", "1"]])
        expectFitting(`GET ${path}?from=${from}&to=${to}`, await ask("GET", `${path}?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&step=1s`), problems);
    }
    expect(problems.slice(0, 30)).toEqual([]);
  }, 240_000);
});

describe("hostile bodies", () => {
  const deep = "[".repeat(200_000) + "]".repeat(200_000);
  const bodies: Array<[string, BodyInit, string]> = [
    ["empty", "", "application/json"],
    ["not json", "{nope", "application/json"],
    ["nested 200 k deep", deep, "application/json"],
    ["nested objects", '{"a":'.repeat(100_000) + "1" + "}".repeat(100_000), "application/json"],
    ["invalid UTF-8", new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), "application/json"],
    ["UTF-16", new Uint8Array([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]), "application/json"],
    ["BOM", "\ufeff{}", "application/json"],
    ["NUL", "{\"a\":\"\u0000\"}", "application/json"],
    ["number", "1e400", "application/json"],
    ["string", '"x"', "application/json"],
    ["null", "null", "application/json"],
    ["proto", '{"__proto__":{"admin":true},"constructor":{"prototype":{}}}', "application/json"],
    ["huge string", JSON.stringify({ token: "x".repeat(1_000_000) }), "application/json"],
    ["form", "token=%zz&next=%", "application/x-www-form-urlencoded"],
    ["multipart", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b--", "multipart/form-data; boundary=b"],
    ["ndjson garbage", "{}\n\n\nnull\n[]\n{\"eventId\":1}\n", "application/x-ndjson"],
    ["no type", "{}", ""],
    ["odd type", "{}", "application/json; charset=utf-7"],
  ];

  it("never answer 5xx on any route that takes a body", async () => {
    const problems: string[] = [];
    for (const r of ROUTES.filter((x) => x.method === "POST" || x.method === "PUT")) {
      const path = r.path.replace(/:(\w+)/g, (_, k: string) => SAMPLE[k]);
      for (const [name, body, type] of bodies) {
        const headers: Record<string, string> = type === "" ? {} : { "content-type": type };
        expectFitting(`${r.method} ${path} (${name})`, await ask(r.method, path, { headers, body }), problems);
      }
    }
    expect(problems).toEqual([]);
  }, 120_000);
});
