import { describe, expect, it } from "bun:test";
import { canonicalPath, canonicalTarget, rawTarget } from "./request-target.ts";
import { ROUTES, createRouteTable, undeclaredRoutes } from "./routes.ts";

describe("canonicalTarget", () => {
  it("takes the path after the authority of an absolute URL and the whole of a relative one, never the Host", () => {
    expect(rawTarget("http://x/login/api/metrics/summary")).toBe("/login/api/metrics/summary");
    expect(rawTarget("http://a:1/api?x=1")).toBe("/api?x=1");
    expect(rawTarget("http://h?x=1")).toBe("/?x=1");
    expect(rawTarget("http://h")).toBe("/");
    expect(rawTarget("/health")).toBe("/health"); // Bun's url when the Host is missing or malformed
    expect(canonicalTarget("http://x/login/api/metrics/summary")).toEqual({ ok: true, path: "/login/api/metrics/summary", search: "" });
  });

  it("removes dot segments, merges slashes, decodes unreserved escapes and keeps a trailing slash", () => {
    const cases: Array<[string, string]> = [
      ["/api/events", "/api/events"],
      ["/api/events/", "/api/events/"],
      ["/api/events/.", "/api/events/"],
      ["/api/events/x/..", "/api/events/"],
      ["//api//events", "/api/events"],
      ["/a//../b", "/a/b"], // the empty segment is a segment (RFC 3986 §5.2.4, WHATWG)
      ["/../../a", "/a"],
      ["/%61pi/%65vents", "/api/events"],
      ["/%2e%2e/api", "/api"],
      ["/a/%2E/b", "/a/b"],
      ["/a%2fb", "/a%2Fb"], // an encoded slash is data, not a separator
      ["/a%5Cb", "/a%5Cb"],
      ["/a%7eb", "/a~b"],
      ["/", "/"],
      ["//", "/"],
    ];
    for (const [raw, want] of cases) expect([raw, canonicalPath(raw)]).toEqual([raw, want]);
  });

  it("refuses invalid escapes, raw controls, spaces and fragments, and over-long paths", () => {
    for (const bad of ["/%", "/%z1", "/a%2", "/a b", "/a\u0000", "/é", "/a#b"]) expect(canonicalPath(bad)).toBeNull();
    expect(canonicalTarget("http://h/" + "a".repeat(3000)).ok).toBe(false);
    expect(canonicalTarget("http://h/%zz")).toMatchObject({ ok: false, code: "malformed_target" });
  });
});

describe("route table", () => {
  const table = createRouteTable();

  it("matches static segments before parameters, and HEAD through GET except for streams", () => {
    expect(table.match("GET", "/ui/alerts")).toMatchObject({ kind: "route", route: { path: "/ui/alerts" } });
    expect(table.match("GET", "/ui/overview")).toMatchObject({ kind: "route", route: { path: "/ui/:view" }, params: { view: "overview" } });
    expect(table.match("HEAD", "/api/metrics/summary")).toMatchObject({ kind: "route", route: { path: "/api/metrics/summary" } });
    expect(table.match("HEAD", "/api/stream")).toEqual({ kind: "method", allow: ["GET", "OPTIONS"], cors: false });
  });

  it("tells a path with other methods (405 with Allow) from a path that does not exist", () => {
    expect(table.match("DELETE", "/api/events")).toEqual({ kind: "method", allow: ["OPTIONS", "POST"], cors: true });
    expect(table.match("GET", "/api/events/")).toEqual({ kind: "none" });
    expect(table.match("GET", "/ui/")).toEqual({ kind: "none" }); // a parameter is never empty
    expect(table.match("GET", "/API/events")).toEqual({ kind: "none" });
  });

  it("declares every route once, and finds what an app serves beyond the table", () => {
    expect(() => createRouteTable([...ROUTES, ROUTES[0]])).toThrow(/declared twice/);
    expect(undeclaredRoutes(table, [{ method: "GET", path: "/api/funnel" }, { method: "GET", path: "/secret" }]).undeclared).toEqual(["GET /secret"]);
  });
});
