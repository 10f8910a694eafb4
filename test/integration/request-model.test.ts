// One request model, probed over real TCP: for every declared route × every credential kind × path
// variants (dot segments, encodings, double and trailing slashes, case, open-prefix tricks, absolute
// form) × Host variants (short, long, malformed, missing on HTTP/1.0), the answer must be the one the
// route table gives for the path as a URL parser reads it, and a handler may run only for that route
// and only when the table lets the credential in. Never a 5xx.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHttpApp } from "../../src/http-app.ts";
import { createPrng } from "../../src/generator/prng.ts";
import { startAlerting } from "../../src/alerts/index.ts";
import { startLiveTopics } from "../../src/server/live.ts";
import { METHODS, ROUTES, createRouteTable, type Access, type Listening, type RouteSpec } from "../../src/server/index.ts";
import { startTestEngine } from "../helpers.ts";
import { pool, rawRequest, requestHead } from "../raw-http.ts";

const INGEST = "ingest-key-0123456789abcdef";
const READ = "read-token-0123456789abcdef";
const ADMIN = "admin-token-0123456789abcdef";

type Cred = "none" | "invalid" | "ingest" | "ingestQuery" | "read" | "session" | "admin";
const CREDS: readonly Cred[] = ["none", "invalid", "ingest", "ingestQuery", "read", "session", "admin"];

/** The table's rule, restated: who may call a route of each access kind. */
const ALLOWED: Record<Access, readonly Cred[]> = {
  open: CREDS,
  ingest: ["ingest", "ingestQuery", "admin"],
  read: ["read", "session", "admin"],
  admin: ["admin"],
};

const SAMPLE: Record<string, string> = { view: "overview", id: "r1", name: "app.css", file: "init.js" };
const concrete = (r: RouteSpec) => r.path.replace(/:(\w+)/g, (_, k: string) => SAMPLE[k]);

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * The path a URL parser sees, independently of rtae's own code: the WHATWG parser (which Bun's
 * request URLs follow) resolves dot segments and backslashes; then unreserved percent-encodings are
 * decoded and slashes merged, as RFC 3986 §6.2.2 allows. Null for a target that is not a path.
 */
function oraclePath(target: string): string | null {
  let t = target;
  const abs = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(t);
  if (abs) t = t.slice(abs[0].length) || "/";
  let p: string;
  try {
    p = new URL("http://oracle.invalid" + t).pathname; // origin-form: "//a" is a path, not an authority
  } catch {
    return null;
  }
  if (/%(?![0-9A-Fa-f]{2})/.test(p)) return null;
  p = p.replace(/%([0-9A-Fa-f]{2})/g, (m, h: string) => {
    const ch = String.fromCharCode(parseInt(h, 16));
    return UNRESERVED.test(ch) ? ch : m.toUpperCase();
  });
  p = new URL("http://oracle.invalid" + p).pathname; // decoding %2E can form new dot segments
  return p.replace(/\/{2,}/g, "/");
}

/** Path variants of a concrete path: each names the same route, another route, or none. */
function variants(p: string, rnd: () => number): string[] {
  const body = p.slice(1);
  const out = [p, p + "/", p + "/.", p + "/x/..", "/./" + body, "//" + body, "/login/.." + p, "/assets/../" + body, "/login" + p, "/assets" + p, "/swagger" + p, "/%2e%2e/" + body, "/%2E/" + body, p.toUpperCase(), p + ";x", p.replaceAll("/", "\\"), "http://evil.example" + p];
  if (body.includes("/")) {
    const i = p.indexOf("/", 1);
    out.push(p.slice(0, i) + "//" + p.slice(i + 1), p.slice(0, i) + "%2F" + p.slice(i + 1), p.slice(0, i) + "/./" + p.slice(i + 1));
  }
  // one unreserved character percent-encoded, in lower and upper hex
  const letters = [...body].map((c, i) => ({ c, i })).filter(({ c }) => /[a-z]/.test(c));
  if (letters.length > 0) {
    const { c, i } = letters[Math.floor(rnd() * letters.length)];
    const hex = c.charCodeAt(0).toString(16);
    out.push("/" + body.slice(0, i) + "%" + hex + body.slice(i + 1), "/" + body.slice(0, i) + "%" + hex.toUpperCase() + body.slice(i + 1));
  }
  return [...new Set(out)];
}

interface Probe {
  id: number;
  method: string;
  target: string;
  host: string | null;
  version: "1.0" | "1.1";
  cred: Cred;
  /** the route the probe was generated from (for bodies and upgrade headers) */
  from: RouteSpec;
}

let t: Awaited<ReturnType<typeof startTestEngine>>;
let live: ReturnType<typeof startLiveTopics>;
let alerts: ReturnType<typeof startAlerting>;
let http: Listening;
let port = 0;
let session = "";
const handled = new Map<string, string>(); // probe id -> route pattern whose handler ran
const table = createRouteTable();

beforeAll(async () => {
  t = await startTestEngine(["--ingest-keys", INGEST, "--read-tokens", READ, "--admin-token", ADMIN]);
  live = startLiveTopics(t.engine);
  alerts = startAlerting(t.engine, []);
  const app = createHttpApp(t.engine, live, alerts, {
    rateLimit: false,
    loginRateLimit: false,
    onHandled: (req, route) => {
      const id = req.headers.get("x-probe");
      if (id !== null) handled.set(id, route.path);
    },
  });
  http = app.listen({ port: 0, hostname: "127.0.0.1" });
  port = http.port;
  session = await login();
});

afterAll(async () => {
  live?.stop();
  await http?.stop(true);
  await alerts?.stop();
  await t?.stop();
});

const EVENT = JSON.stringify({ eventId: "probe", type: "page_view", timestamp: Date.now() - 60_000, userId: "u", sessionId: "s", page: "/" });
const RULE = JSON.stringify({ id: "r1", name: "probe", kind: "threshold", metric: "orders", window: "1m", op: ">", value: 1e9 });

async function login(): Promise<string> {
  const form = `token=${READ}`;
  const r = await rawRequest(port, requestHead("POST", "/login", "localhost", { "content-type": "application/x-www-form-urlencoded", "content-length": String(form.length) }) + form);
  expect(r.status).toBe(303);
  return /rtae_session=([^;]+)/.exec(r.headers["set-cookie"] ?? "")![1];
}

async function send(p: Probe) {
  const headers: Record<string, string> = { "x-probe": String(p.id), connection: "close" };
  let target = p.target;
  if (p.cred === "invalid") headers.authorization = "Bearer not-a-valid-credential-000000";
  if (p.cred === "ingest") headers.authorization = `Bearer ${INGEST}`;
  if (p.cred === "read") headers.authorization = `Bearer ${READ}`;
  if (p.cred === "admin") headers.authorization = `Bearer ${ADMIN}`;
  // a sign-out revokes its session: it gets one of its own
  if (p.cred === "session") headers.cookie = `rtae_session=${p.from.path === "/logout" ? await login() : session}`;
  if (p.cred === "ingestQuery") target += (target.includes("?") ? "&" : "?") + `key=${INGEST}`;
  if (p.from.upgrade) Object.assign(headers, { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" });
  let body = "";
  if (p.method === "POST" || p.method === "PUT") {
    body = p.from.path === "/api/events" ? EVENT : p.from.path === "/login" ? `token=${READ}` : RULE;
    headers["content-type"] = p.from.path === "/login" ? "application/x-www-form-urlencoded" : "application/json";
    headers["content-length"] = String(body.length);
  }
  return rawRequest(port, requestHead(p.method, target, p.host, headers, p.version) + body, { headOnly: true, timeoutMs: 5000 });
}

/** What the route table says a probe must get: a status class, and the route whose handler may run. */
function expected(p: Probe): { status: number | "handler" | "refused"; route: string | null; bun?: true } {
  // Bun's own answers, before any code of ours: no Host on HTTP/1.1 (RFC 9112 §3.2), a target that is
  // neither origin-form nor absolute-form
  if (p.version === "1.1" && p.host === null) return { status: 400, route: null, bun: true };
  if (!p.target.startsWith("/") && !/^https?:\/\//.test(p.target)) return { status: 400, route: null, bun: true };
  if (!(METHODS as readonly string[]).includes(p.method)) return { status: 501, route: null };
  const path = oraclePath(p.target);
  if (path === null) return { status: 400, route: null };
  const m = table.match(p.method, path);
  if (m.kind === "none") return { status: 404, route: null };
  if (m.kind === "method") return { status: p.method === "OPTIONS" ? 204 : 405, route: null };
  return ALLOWED[m.route.access].includes(p.cred) ? { status: "handler", route: m.route.path } : { status: "refused", route: null };
}

async function check(probes: Probe[]) {
  const results = await pool(probes, 12, send);
  const problems: string[] = [];
  probes.forEach((p, i) => {
    const r = results[i];
    const want = expected(p);
    const ran = handled.get(String(p.id)) ?? null;
    const where = `${p.method} ${p.target} (Host ${JSON.stringify(p.host)}, HTTP/${p.version}, ${p.cred})`;
    if (r.status >= 500 && !(typeof want.status === "number" && want.status === 501 && r.status === 501)) problems.push(`${where}: ${r.status}`);
    if (ran !== want.route) problems.push(`${where}: handler ${ran} ran, table says ${want.route}`);
    if (want.status === "handler") {
      // the handler ran (checked above); its own answer may be a 404 (no such rule) but never a refusal
      if (r.status === 401 || r.status === 403 || r.status === 405 || r.status === 0) problems.push(`${where}: ${r.status}, table lets it in`);
    } else if (want.status === "refused") {
      if (r.status !== 401 && r.status !== 403) problems.push(`${where}: ${r.status}, want 401/403`);
    } else if (r.status !== want.status) problems.push(`${where}: ${r.status}, want ${want.status}`);
    // errors the guard and front give are JSON with the security headers
    if (want.status !== "handler" && !want.bun && r.status >= 400 && r.headers["x-content-type-options"] !== "nosniff")
      problems.push(`${where}: ${r.status} without security headers`);
  });
  expect(problems.slice(0, 40)).toEqual([]);
}

const HOSTS: ReadonlyArray<string | null> = ["x", "a:1", "localhost", "127.0.0.1", "[::1]:8080", "", "a/b", "a?b", "h".repeat(300), "evil.example:443", null];

describe("one request model for guard, rate limiter and router", () => {
  it("routes every path variant of every route to the table's route and credential rule, whatever the Host", async () => {
    const rnd = createPrng(9).next;
    const probes: Probe[] = [];
    let id = 0;
    for (const r of ROUTES) {
      for (const target of variants(concrete(r), rnd)) {
        for (const cred of CREDS) {
          const host = HOSTS[Math.floor(rnd() * HOSTS.length)];
          probes.push({ id: id++, method: r.method, target, host, version: host === null ? "1.0" : "1.1", cred, from: r });
        }
      }
    }
    await check(probes);
  }, 120_000);

  it("answers the exact path of every route the same under every Host variant and HTTP/1.0 without Host", async () => {
    const probes: Probe[] = [];
    let id = 1_000_000;
    for (const r of ROUTES)
      for (const host of HOSTS)
        for (const cred of CREDS)
          for (const version of host === null ? (["1.0", "1.1"] as const) : (["1.1"] as const))
            probes.push({ id: id++, method: r.method, target: concrete(r), host, version, cred, from: r });
    await check(probes);
  }, 120_000);

  it("answers 405 with Allow for a declared path and another method, 204 to OPTIONS, 501 to methods rtae does not implement", async () => {
    const probes: Probe[] = [];
    let id = 2_000_000;
    const paths = new Map<string, RouteSpec>();
    for (const r of ROUTES) paths.set(concrete(r), r);
    for (const [path, r] of paths)
      for (const method of ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "TRACE", "CONNECT", "MKCOL"])
        probes.push({ id: id++, method, target: path, host: "localhost", version: "1.1", cred: "admin", from: r });
    await check(probes);
    const r405 = await rawRequest(port, requestHead("DELETE", "/api/metrics/summary", "localhost", { authorization: `Bearer ${ADMIN}` }), { headOnly: true });
    expect(r405.status).toBe(405);
    expect(r405.headers.allow).toBe("GET, HEAD, OPTIONS");
    const pre = await rawRequest(port, requestHead("OPTIONS", "/api/events", "localhost", { origin: "https://shop.example", "access-control-request-method": "POST" }), { headOnly: true });
    expect(pre.status).toBe(204);
    expect(pre.headers["access-control-allow-origin"]).toBe("*");
    const other = await rawRequest(port, requestHead("OPTIONS", "/api/metrics/summary", "localhost", { origin: "https://shop.example" }), { headOnly: true });
    expect(other.status).toBe(204);
    expect(other.headers["access-control-allow-origin"]).toBeUndefined();
  }, 60_000);

  it("answers undeclared paths with 404 JSON before any handler, and malformed targets with 400", async () => {
    for (const target of ["/nope", "/api", "/api/", "/api/events/extra", "/ui", "/ui/", "/ui/overview/x", "/assets/", "/login/x", "/swagger/", "/%zz", "/a%", "/x#y"]) {
      const r = await rawRequest(port, requestHead("GET", target, "localhost", { authorization: `Bearer ${ADMIN}` }));
      expect([400, 404]).toContain(r.status);
      expect(JSON.parse(r.body).error.code).toMatch(/^(not_found|malformed_target)$/);
      expect(r.headers["content-type"]).toContain("application/json");
    }
  });

  it("takes events on /api/events only: no variant lets a read token or no key send events", async () => {
    const before = t.engine.counters().logEnd.reduce((a, b) => a + b, 0);
    for (const target of ["/api/events/", "/api/events/.", "/api/events/x/..", "/api//events", "/login/../api/events", "/%61pi/events", "/API/events"]) {
      for (const cred of ["none", "read"] as const) {
        const headers: Record<string, string> = { "content-type": "application/json", "content-length": String(EVENT.length) };
        if (cred === "read") headers.authorization = `Bearer ${READ}`;
        const r = await rawRequest(port, requestHead("POST", target, "x", headers) + EVENT);
        expect([401, 403, 404]).toContain(r.status);
      }
    }
    expect(t.engine.counters().logEnd.reduce((a, b) => a + b, 0)).toBe(before);
  });
});
