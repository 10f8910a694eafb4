// The OpenAPI spec at /swagger/json and the Swagger UI at /swagger: every route documented with
// the contract's statuses and error shape, and a page that loads only local assets.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Elysia } from "elysia";
import { createApp } from "../../src/server/index.ts";
import { startTestEngine } from "../helpers.ts";

let t: Awaited<ReturnType<typeof startTestEngine>>;
let app: { handle(r: Request): Promise<Response> };
let spec: any;

const get = (path: string) => app.handle(new Request(`http://rtae.test${path}`));

const READS = [
  "/api/metrics/summary",
  "/api/metrics/timeseries",
  "/api/products/top",
  "/api/funnel",
  "/api/performance",
  "/api/campaigns",
  "/api/inventory",
];

beforeAll(async () => {
  t = await startTestEngine();
  // plugin routes (declared in the route table) appear in the document too
  const extra = new Elysia().get("/ui/:view", () => "x").get("/api/alerts", () => ({ ok: true }), { detail: { summary: "added by a plugin" } });
  app = createApp(t.engine, { plugins: [extra] });
  const res = await get("/swagger/json");
  expect(res.status).toBe(200);
  spec = JSON.parse(await res.text());
});
afterAll(async () => {
  await t.stop();
});

describe("GET /swagger/json", () => {
  it("is an OpenAPI 3 document listing every route path with its methods", () => {
    expect(spec.openapi).toMatch(/^3\./);
    expect(spec.info.title).toBe("rtae");
    const expected: Array<[string, string]> = [
      ["/api/events", "post"],
      ...READS.map((p): [string, string] => [p, "get"]),
      ["/api/stream", "get"],
      ["/ws", "get"],
      ["/", "get"],
      ["/health", "get"],
      ["/ready", "get"],
      ["/login", "get"],
      ["/login", "post"],
      ["/logout", "post"],
      ["/api/alerts", "get"],
    ];
    for (const [path, method] of expected) {
      expect(spec.paths[path]?.[method]).toBeDefined();
      const op = spec.paths[path][method];
      expect(typeof op.summary).toBe("string");
      if (path !== "/api/alerts") expect(op.tags.length).toBeGreaterThan(0);
    }
    expect(Object.keys(spec.paths).some((p) => p.startsWith("/swagger"))).toBe(false);
  });

  it("documents query parameters, the success schema and the error statuses of every read", () => {
    const errorRef = "#/components/schemas/Error";
    for (const p of READS) {
      const op = spec.paths[p].get;
      const names = op.parameters.map((x: { name: string; in: string }) => `${x.in}:${x.name}`);
      expect(names).toContain("query:from");
      expect(names).toContain("query:to");
      expect(op.responses["200"].content["application/json"].schema.$ref).toMatch(/^#\/components\/schemas\//);
      for (const s of ["400", "401", "403"]) expect(op.responses[s].content["application/json"].schema.$ref).toBe(errorRef);
    }
    const ts = spec.paths["/api/metrics/timeseries"].get.parameters;
    expect(ts.find((x: { name: string }) => x.name === "step").schema.enum).toEqual(["1s", "1m", "1h"]);
    const top = spec.paths["/api/products/top"].get.parameters.find((x: { name: string }) => x.name === "limit");
    expect(top.schema).toMatchObject({ type: "integer", minimum: 1, maximum: 100 });
    const err = spec.components.schemas.Error;
    expect(err.properties.error.properties.code.type).toBe("string");
    expect(err.properties.error.properties.message.type).toBe("string");
    for (const name of spec.paths["/api/metrics/summary"].get.responses["200"].content["application/json"].schema.$ref.split("/").slice(-1))
      expect(spec.components.schemas[name].properties.events).toBeDefined();
  });

  it("documents POST /api/events: JSON, NDJSON and text bodies, 202 and every refusal", () => {
    const op = spec.paths["/api/events"].post;
    expect(Object.keys(op.requestBody.content).sort()).toEqual(["application/json", "application/x-ndjson", "text/plain"]);
    for (const s of ["202", "400", "401", "403", "413", "415", "429"]) expect(op.responses[s]).toBeDefined();
    expect(op.responses["429"].headers["Retry-After"]).toBeDefined();
    expect(op.parameters.map((x: { name: string }) => x.name)).toContain("key");
    expect(Object.keys(spec.components.securitySchemes).sort()).toEqual(["bearer", "ingestKeyHeader", "ingestKeyQuery", "session"]);
  });

  it("resolves every $ref to a component", () => {
    const refs = JSON.stringify(spec).match(/"\$ref":"[^"]+"/g) ?? [];
    expect(refs.length).toBeGreaterThan(10);
    for (const r of refs) {
      const name = r.slice(r.lastIndexOf("/") + 1, -1);
      expect(spec.components.schemas[name]).toBeDefined();
    }
  });
});

describe("GET /swagger", () => {
  it("serves a page whose scripts and styles are all local and whose every asset loads", async () => {
    const res = await get("/swagger");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    const html = await res.text();
    const tags = html.match(/<(script|link)\b[^>]*>/g) ?? [];
    expect(tags.length).toBeGreaterThanOrEqual(3);
    expect(/https?:\/\//.test(html)).toBe(false);
    // no inline script: the CSP allows only 'self'
    for (const s of html.match(/<script\b[^>]*>/g) ?? []) expect(s).toMatch(/\bsrc="\/[^/]/);
    const urls = tags.map((tag) => /\b(?:src|href)="([^"]+)"/.exec(tag)?.[1]).filter((u): u is string => u !== undefined && !u.startsWith("data:"));
    expect(urls.length).toBe(3);
    for (const u of urls) {
      expect(u.startsWith("/swagger/assets/")).toBe(true);
      const a = await get(u);
      expect(a.status).toBe(200);
      expect(a.headers.get("content-type")).toMatch(u.endsWith(".css") ? /^text\/css/ : /^text\/javascript/);
      const body = await a.text();
      expect(body.length).toBeGreaterThan(u.endsWith("init.js") ? 20 : 50_000);
    }
    expect(await (await get("/swagger/assets/init.js")).text()).toContain('"/swagger/json"');
  });

  it("answers 404 for an asset that is not embedded", async () => {
    expect((await get("/swagger/assets/nope.js")).status).toBe(404);
    expect((await get("/swagger/assets/__proto__")).status).toBe(404);
  });
});
