// Auth, rate limiting, CORS and security headers through the real app in process (app.handle):
// open mode, key kinds, the login cookie flow, a token bucket on an injected clock, and no secret
// ever echoed in a response body or a log line.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Elysia } from "elysia";
import { createApp, warnOpen } from "../../src/server/index.ts";
import { startTestEngine } from "../helpers.ts";

const INGEST = "ingest-key-0123456789abcdef";
const INGEST2 = "ingest-key-fedcba9876543210";
const READ = "read-token-0123456789abcdef";
const ADMIN = "admin-token-0123456789abcdef";
const SECRETS = [INGEST, INGEST2, READ, ADMIN];
const BASE = "http://rtae.test";

type App = { handle(r: Request): Promise<Response> };

let open: Awaited<ReturnType<typeof startTestEngine>>;
let closed: Awaited<ReturnType<typeof startTestEngine>>;
let app: App; // the closed engine's app, with an extra plugin route as the dashboard would add
const bodies: string[] = []; // every response body seen, checked for secrets at the end
const logged: string[] = [];
const origStderr = process.stderr.write.bind(process.stderr);
const origConsole = { log: console.log, warn: console.warn, error: console.error, info: console.info };

const event = (id: string) =>
  JSON.stringify({ eventId: id, type: "page_view", timestamp: Date.now() - 60_000, userId: "u1", sessionId: "s1", page: "/" });

async function call(a: App, path: string, init: RequestInit = {}): Promise<{ res: Response; text: string }> {
  const res = await a.handle(new Request(BASE + path, init));
  const text = await res.text();
  bodies.push(text);
  return { res, text };
}

const ingest = (a: App, headers: Record<string, string> = {}, query = "") =>
  call(a, `/api/events${query}`, { method: "POST", body: event(crypto.randomUUID()), headers: { "content-type": "application/json", ...headers } });

const bearer = (s: string) => ({ authorization: `Bearer ${s}` });

beforeAll(async () => {
  // capture everything the server could log while the tests run
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    logged.push(typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk));
    return origStderr(chunk as string, ...(rest as []));
  }) as typeof process.stderr.write;
  for (const k of ["log", "warn", "error", "info"] as const) console[k] = (...args: unknown[]) => void logged.push(args.map(String).join(" "));

  open = await startTestEngine();
  closed = await startTestEngine(["--ingest-keys", `${INGEST},${INGEST2}`, "--read-tokens", READ, "--admin-token", ADMIN, "--log-level", "debug"]);
  // a plugin route as the dashboard adds one (declared in the route table as GET /ui/:view)
  const dashboard = new Elysia().get("/ui/:view", () => new Response("<p>panel</p>", { headers: { "content-type": "text/html" } }));
  app = createApp(closed.engine, { plugins: [dashboard] });
});

afterAll(async () => {
  await open.stop();
  await closed.stop();
  process.stderr.write = origStderr as typeof process.stderr.write;
  Object.assign(console, origConsole);
});

describe("open mode (no keys or tokens configured)", () => {
  it("ingests and reads without credentials", async () => {
    expect((await ingest(open.app)).res.status).toBe(202);
    expect((await call(open.app, "/api/metrics/summary")).res.status).toBe(200);
  });

  it("warns at start unless the listener is loopback, and not once everything is protected", () => {
    const none = { ingestKeys: [], readTokens: [], adminToken: null };
    expect(warnOpen({ ...none, host: "0.0.0.0" })).toContain("authentication is off");
    for (const host of ["127.0.0.1", "::1", "localhost"]) expect(warnOpen({ ...none, host })).toBeNull();
    expect(warnOpen({ ...none, readTokens: [READ], host: "0.0.0.0" })).toContain("ingest is open");
    expect(warnOpen({ ...none, ingestKeys: [INGEST], host: "0.0.0.0" })).toContain("reads are open");
    expect(warnOpen({ ingestKeys: [INGEST], readTokens: [READ], adminToken: ADMIN, host: "0.0.0.0" })).toBeNull();
    expect(warnOpen({ ...none, ingestKeys: [INGEST], host: "0.0.0.0" })).not.toContain(INGEST);
  });
});

describe("keys configured", () => {
  it("answers 401 JSON without credentials on ingest and read endpoints", async () => {
    for (const r of [await ingest(app), await call(app, "/api/metrics/summary"), await call(app, "/api/funnel"), await call(app, "/ui/panel")]) {
      expect(r.res.status).toBe(401);
      expect(r.res.headers.get("content-type")).toContain("application/json");
      expect(JSON.parse(r.text).error.code).toBe("unauthorized");
    }
  });

  it("answers 401 for an unknown credential and 403 for a credential of the wrong kind", async () => {
    expect((await ingest(app, bearer("not-a-real-key-0123456789"))).res.status).toBe(401);
    const readOnIngest = await ingest(app, bearer(READ));
    expect(readOnIngest.res.status).toBe(403);
    expect(JSON.parse(readOnIngest.text).error.code).toBe("forbidden");
    const ingestOnRead = await call(app, "/api/metrics/summary", { headers: bearer(INGEST) });
    expect(ingestOnRead.res.status).toBe(403);
    expect(JSON.parse(ingestOnRead.text).error.code).toBe("forbidden");
    expect((await call(app, "/ui/panel", { headers: { "x-rtae-key": INGEST } })).res.status).toBe(403);
  });

  it("accepts the right credentials: ingest key (Bearer, X-Rtae-Key, ?key=), read token, admin token everywhere", async () => {
    expect((await ingest(app, bearer(INGEST))).res.status).toBe(202);
    expect((await ingest(app, { "x-rtae-key": INGEST2 })).res.status).toBe(202);
    expect((await ingest(app, {}, `?key=${encodeURIComponent(INGEST)}`)).res.status).toBe(202);
    expect((await ingest(app, bearer(ADMIN))).res.status).toBe(202);
    expect((await call(app, "/api/metrics/summary", { headers: bearer(READ) })).res.status).toBe(200);
    expect((await call(app, "/api/metrics/summary", { headers: bearer(ADMIN) })).res.status).toBe(200);
    expect((await call(app, "/ui/panel", { headers: bearer(READ) })).res.status).toBe(200);
  });

  it("accepts ?key= only on POST /api/events, never on a read", async () => {
    expect((await call(app, `/api/metrics/summary?key=${READ}`)).res.status).toBe(401);
  });

  it("keeps health, readiness, tracker, login, assets and docs open", async () => {
    expect((await call(app, "/health")).res.status).toBe(200);
    expect((await call(app, "/ready")).res.status).toBe(200);
    expect((await call(app, "/login")).res.status).toBe(200);
    expect((await call(app, "/swagger")).res.status).toBe(200);
    expect((await call(app, "/swagger/json")).res.status).toBe(200);
    // not served by this app, but open: 404, not 401
    expect((await call(app, "/t.js")).res.status).toBe(404);
    expect((await call(app, "/assets/app.css")).res.status).toBe(404);
  });

  it("refuses to build an app whose plugin serves a route the route table does not declare", () => {
    const rogue = new Elysia().get("/api/stream-like", () => ({ ok: true }));
    expect(() => createApp(closed.engine, { plugins: [rogue] })).toThrow(/GET \/api\/stream-like/);
  });

  it("redirects a browser asking for HTML to /login instead of answering 401", async () => {
    const { res } = await call(app, "/ui/panel?x=1", { headers: { accept: "text/html,application/xhtml+xml" } });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`/login?next=${encodeURIComponent("/ui/panel?x=1")}`);
  });
});

describe("login session", () => {
  const login = (token: string, next = "/ui/panel") =>
    call(app, "/login", {
      method: "POST",
      body: new URLSearchParams({ token, next }).toString(),
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
  const cookieOf = (res: Response) => (res.headers.get("set-cookie") ?? "").split(";")[0];

  it("sets an HttpOnly SameSite=Strict cookie, not holding the token, that authorizes reads", async () => {
    const { res } = await login(READ);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/ui/panel");
    const setCookie = res.headers.get("set-cookie") ?? "";
    expect(setCookie).toMatch(/^rtae_session=[^;]+;/);
    expect(setCookie).toContain("HttpOnly");
    expect(setCookie).toContain("SameSite=Strict");
    expect(setCookie).toContain("Path=/");
    expect(setCookie).not.toContain(READ);
    const cookie = cookieOf(res);
    const r = await call(app, "/api/metrics/summary", { headers: { cookie } });
    expect(r.res.status).toBe(200);
    expect(typeof JSON.parse(r.text).events.total).toBe("number");
  });

  it("refuses a tampered cookie, a wrong token and an ingest key, and never redirects off-site", async () => {
    const cookie = cookieOf((await login(READ)).res);
    const value = cookie.slice("rtae_session=".length);
    const [payload, sig] = value.split(".");
    const flipped = (sig[0] === "A" ? "B" : "A") + sig.slice(1);
    const forgedRole = Buffer.from(Buffer.from(payload, "base64url").toString().replace(/^read/, "admin")).toString("base64url");
    for (const bad of [`${payload}.${flipped}`, `${forgedRole}.${sig}`, `${payload}.`, "garbage"]) {
      const r = await call(app, "/api/metrics/summary", { headers: { cookie: `rtae_session=${bad}` } });
      expect(r.res.status).toBe(401);
    }
    expect((await login("wrong-token-0123456789abcdef")).res.status).toBe(401);
    expect((await login(INGEST)).res.status).toBe(403);
    expect((await login(READ, "//evil.example/x")).res.headers.get("location")).toBe("/");
    expect((await login(READ, "https://evil.example/x")).res.headers.get("location")).toBe("/");
  });

  it("logout clears the cookie and revokes the session", async () => {
    const cookie = cookieOf((await login(ADMIN)).res);
    expect((await call(app, "/api/funnel", { headers: { cookie } })).res.status).toBe(200);
    const out = await call(app, "/logout", { method: "POST", headers: { cookie } });
    expect(out.res.status).toBe(303);
    expect(out.res.headers.get("set-cookie")).toMatch(/^rtae_session=;.*Max-Age=0/);
    expect((await call(app, "/api/funnel", { headers: { cookie } })).res.status).toBe(401);
    // the signature's last base64url character has two spare bits: a variant spelling of the same bytes
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const variant = cookie.slice(0, -1) + alphabet[alphabet.indexOf(cookie.at(-1)!) ^ 1];
    expect(Buffer.from(variant.split(".")[1], "base64url")).toEqual(Buffer.from(cookie.split(".")[1], "base64url"));
    expect((await call(app, "/api/funnel", { headers: { cookie: variant } })).res.status).toBe(401);
  });

  it("expires sessions on the injected clock", async () => {
    let now = 1_000_000;
    const a = createApp(closed.engine, { now: () => now, sessionTtlMs: 60_000 });
    const res = await a.handle(new Request(`${BASE}/login`, { method: "POST", body: `token=${READ}`, headers: { "content-type": "application/x-www-form-urlencoded" } }));
    const cookie = cookieOf(res);
    expect((await call(a, "/api/funnel", { headers: { cookie } })).res.status).toBe(200);
    now += 60_001;
    expect((await call(a, "/api/funnel", { headers: { cookie } })).res.status).toBe(401);
  });
});

describe("sign-in throttling and same-origin form posts", () => {
  const form = (token: string, headers: Record<string, string> = {}) => ({
    method: "POST",
    body: new URLSearchParams({ token, next: "/" }).toString(),
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
  });

  it("throttles sign-in attempts per client address with 429 and Retry-After, and recovers on the clock", async () => {
    let now = 1_000_000;
    const a = createApp(closed.engine, { now: () => now, loginRateLimit: { rate: 0.2, burst: 10 }, clientIp: (r) => r.headers.get("x-test-ip") });
    for (let i = 0; i < 10; i++) expect((await call(a, "/login", form("wrong-token-0000000000", { "x-test-ip": "10.0.0.1" }))).res.status).toBe(401);
    const limited = await call(a, "/login", form(READ, { "x-test-ip": "10.0.0.1" }));
    expect(limited.res.status).toBe(429);
    expect(Number(limited.res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(limited.text).error.code).toBe("rate_limited");
    // another address has its own bucket; the first recovers as tokens refill
    expect((await call(a, "/login", form(READ, { "x-test-ip": "10.0.0.2" }))).res.status).toBe(303);
    now += 5_000;
    expect((await call(a, "/login", form(READ, { "x-test-ip": "10.0.0.1" }))).res.status).toBe(303);
  });

  it("refuses a sign-in or sign-out posted from another origin, and takes same-origin and header-less posts", async () => {
    const host = { host: "rtae.test" };
    const cross: Array<Record<string, string>> = [{ origin: "https://evil.example" }, { origin: "null" }, { origin: "http://rtae.test.evil.example" }, { "sec-fetch-site": "cross-site" }, { "sec-fetch-site": "same-site" }];
    for (const h of cross) {
      for (const path of ["/login", "/logout"]) {
        const r = await call(app, path, form(READ, { ...host, ...h }));
        expect(r.res.status).toBe(403);
        expect(JSON.parse(r.text).error.code).toBe("cross_origin");
        expect(r.res.headers.get("set-cookie")).toBeNull();
      }
    }
    expect((await call(app, "/login", form(READ, { ...host, origin: "http://rtae.test", "sec-fetch-site": "same-origin" }))).res.status).toBe(303);
    // a browser under Referrer-Policy: no-referrer posts with Origin: null; Sec-Fetch-Site decides
    expect((await call(app, "/login", form(READ, { ...host, origin: "null", "sec-fetch-site": "same-origin" }))).res.status).toBe(303);
    expect((await call(app, "/login")).res.headers.get("referrer-policy")).toBe("same-origin");
    expect((await call(app, "/login", form(READ, host))).res.status).toBe(303);
  });
});

describe("ingest rate limit", () => {
  it("answers 429 with Retry-After after the burst, per key, and recovers as tokens refill", async () => {
    let now = 5_000_000;
    const rate = 2; // tokens per second
    const burst = 3;
    const a = createApp(closed.engine, { now: () => now, rateLimit: { rate, burst } });
    for (let i = 0; i < burst; i++) expect((await ingest(a, bearer(INGEST))).res.status).toBe(202);
    const limited = await ingest(a, bearer(INGEST));
    expect(limited.res.status).toBe(429);
    expect(JSON.parse(limited.text).error.code).toBe("rate_limited");
    expect(limited.res.headers.get("retry-after")).toBe("1"); // 1 token at 2/s = 500 ms, rounded up to whole seconds
    // another key has its own bucket
    expect((await ingest(a, bearer(INGEST2))).res.status).toBe(202);
    now += 499;
    expect((await ingest(a, bearer(INGEST))).res.status).toBe(429);
    now += 1;
    expect((await ingest(a, bearer(INGEST))).res.status).toBe(202);
    expect((await ingest(a, bearer(INGEST))).res.status).toBe(429);
    now += 10_000; // refills to the burst, not beyond
    for (let i = 0; i < burst; i++) expect((await ingest(a, bearer(INGEST))).res.status).toBe(202);
    expect((await ingest(a, bearer(INGEST))).res.status).toBe(429);
    // reads are not rate limited
    for (let i = 0; i < burst + 2; i++) expect((await call(a, "/api/performance", { headers: bearer(READ) })).res.status).toBe(200);
  });

  it("keys clients without an ingest key by address (X-Forwarded-For only with trustProxy)", async () => {
    const now = 7_000_000;
    const a = createApp(open.engine, { now: () => now, rateLimit: { rate: 1, burst: 1 }, trustProxy: true });
    expect((await ingest(a, { "x-forwarded-for": "10.0.0.1" })).res.status).toBe(202);
    expect((await ingest(a, { "x-forwarded-for": "10.0.0.1, 10.9.9.9" })).res.status).toBe(429);
    expect((await ingest(a, { "x-forwarded-for": "10.0.0.2" })).res.status).toBe(202);
    const b = createApp(open.engine, { now: () => now, rateLimit: { rate: 1, burst: 1 } });
    expect((await ingest(b, { "x-forwarded-for": "10.0.0.1" })).res.status).toBe(202);
    expect((await ingest(b, { "x-forwarded-for": "10.0.0.2" })).res.status).toBe(429); // header ignored: same client
  });
});

describe("CORS and security headers", () => {
  it("answers the ingest preflight with CORS headers and no auth", async () => {
    const { res } = await call(app, "/api/events", {
      method: "OPTIONS",
      headers: { origin: "https://shop.example", "access-control-request-method": "POST", "access-control-request-headers": "content-type, x-rtae-key" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
    const allowed = (res.headers.get("access-control-allow-headers") ?? "").split(",").map((s) => s.trim().toLowerCase());
    for (const h of ["content-type", "authorization", "x-rtae-key"]) expect(allowed).toContain(h);
    expect(Number(res.headers.get("access-control-max-age"))).toBeGreaterThan(0);
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
  });

  it("puts CORS on ingest answers, including refusals, and not on reads", async () => {
    expect((await ingest(app, bearer(INGEST))).res.headers.get("access-control-allow-origin")).toBe("*");
    expect((await ingest(app)).res.headers.get("access-control-allow-origin")).toBe("*");
    expect((await call(app, "/api/funnel", { headers: bearer(READ) })).res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("sends the security headers on JSON, HTML, error, redirect and plugin responses", async () => {
    const signIn = (await call(app, "/login")).res;
    const responses = [
      signIn,
      (await call(app, "/api/metrics/summary", { headers: bearer(READ) })).res,
      (await call(app, "/api/metrics/summary?from=junk", { headers: bearer(READ) })).res,
      (await call(app, "/api/metrics/summary")).res,
      (await call(app, "/swagger")).res,
      (await call(app, "/ui/panel", { headers: bearer(READ) })).res,
      (await call(app, "/ui/panel", { headers: { accept: "text/html" } })).res,
      (await call(app, "/nope", { headers: bearer(READ) })).res,
      (await ingest(app, bearer(INGEST))).res,
    ];
    for (const res of responses) {
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      // the sign-in page alone says same-origin (its form must post its Origin); nothing sends a referrer off-site
      expect(res.headers.get("referrer-policy")).toBe(res === signIn ? "same-origin" : "no-referrer");
      expect(res.headers.get("x-frame-options")).toBe("DENY");
      expect(res.headers.get("cross-origin-opener-policy")).toBe("same-origin");
      const csp = res.headers.get("content-security-policy") ?? "";
      for (const d of ["script-src 'self'", "style-src 'self'", "connect-src 'self'"]) expect(csp).toContain(d);
      expect(csp).not.toContain("unsafe-inline");
    }
  });
});

describe("secrets", () => {
  it("never appear in a response body or a log line", () => {
    expect(bodies.length).toBeGreaterThan(50);
    for (const s of SECRETS) {
      for (const b of bodies) expect(b.includes(s)).toBe(false);
      for (const l of logged) expect(l.includes(s)).toBe(false);
    }
  });
});
