// The global request guard, first in the Elysia app: it looks the canonical path up in the route table
// and answers 404/405/OPTIONS there, then decides auth, same-origin form posts and rate limits from
// the route's row alone. A second hook checks that Elysia's router picked the same route, and refuses
// the request if it did not, so a router quirk can never reach a handler the guard did not clear.

import { Elysia } from "elysia";
import type { Auth, Principal } from "./auth.ts";
import { frontInfo, type FrontInfo } from "./front.ts";
import { logger } from "../log.ts";
import type { RateLimiter } from "./rate-limit.ts";
import { canonicalTarget, rawTarget } from "./request-target.ts";
import type { RouteSpec, RouteTable } from "./routes.ts";
import { INGEST_CORS_HEADERS, SECURITY_HEADERS, applySecurityHeaders, jsonError, optionsResponse } from "./security.ts";

const log = logger("Http");

export interface GuardOptions {
  auth: Auth;
  table: RouteTable;
  /** Token buckets by the route table's `limit`; a missing one is no limit. */
  limiters: Partial<Record<NonNullable<RouteSpec["limit"]>, RateLimiter | null>>;
  /** Trust the first `X-Forwarded-For` address and `X-Forwarded-Host` (only behind a proxy that sets them). */
  trustProxy?: boolean;
  /** The client address of a request when it did not come through the front's server (tests). */
  clientIp?: (request: Request) => string | null | undefined;
  /** Called when a handler is about to run, with the route both guard and router chose. */
  onHandled?: (request: Request, route: RouteSpec) => void;
}

/** What the guard decided for a request that it let through. */
export interface Cleared {
  route: RouteSpec;
  /** null where the route is open or credentials are not configured */
  principal: Principal | null;
}

const cleared = new WeakMap<Request, Cleared>();

/** The guard's decision for a request a handler is running for. */
export const clearedOf = (request: Request): Cleared | undefined => cleared.get(request);

const MAX_ECHO = 120;

/** The client address used as a rate-limit key when no credential identifies the sender. */
function clientAddress(request: Request, info: FrontInfo | undefined, opts: GuardOptions): string {
  if (opts.trustProxy === true) {
    const xff = request.headers.get("x-forwarded-for");
    if (xff !== null && xff.trim() !== "") return xff.split(",")[0].trim().slice(0, 64);
  }
  const given = opts.clientIp?.(request);
  if (given !== null && given !== undefined && given !== "") return given;
  try {
    const a = info?.server?.requestIP(info.original);
    if (a !== null && a !== undefined) return a.address;
  } catch {
    // requestIP throws for a request the server did not receive
  }
  return "unknown";
}

const wantsHtml = (request: Request): boolean => request.headers.get("accept")?.includes("text/html") === true;

/**
 * A form post acting on the session must come from this origin. Browsers send Sec-Fetch-Site on every
 * request, and it decides when present. Without it, Origin must name this host: "null" is refused, which
 * is why the sign-in page itself is served with `Referrer-Policy: same-origin` (under `no-referrer` a
 * browser posts its form with `Origin: null`). Clients that send neither (curl, scripts) carry no
 * ambient cookie, so there is nothing to forge.
 */
function crossSite(request: Request, trustProxy: boolean): boolean {
  const site = request.headers.get("sec-fetch-site");
  if (site !== null) return site !== "same-origin" && site !== "none";
  const origin = request.headers.get("origin");
  if (origin === null) return false;
  if (origin === "null") return true;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return true;
  }
  const own = (trustProxy ? request.headers.get("x-forwarded-host") : null) ?? request.headers.get("host");
  return own === null || own.toLowerCase() !== host.toLowerCase();
}

/** The guard plugin; `.use()` it first so its hooks cover every later route. */
export function guardPlugin(opts: GuardOptions) {
  const { auth, table } = opts;
  return new Elysia({ name: "rtae-guard" })
    .onRequest(({ request, set }) => {
      const headers = set.headers as Record<string, string>;
      applySecurityHeaders(headers, false);
      const info = frontInfo(request);
      let path: string;
      if (info !== undefined) path = info.path;
      else {
        // not through the front (an in-process caller of the Elysia app itself): only canonical targets pass
        const t = canonicalTarget(request.url);
        if (!t.ok) return jsonError(400, t.code, t.message);
        const raw = rawTarget(request.url);
        const q = raw.indexOf("?");
        if ((q < 0 ? raw : raw.slice(0, q)) !== t.path) return jsonError(404, "not_found", "no such endpoint");
        path = t.path;
      }
      const method = request.method;
      const m = table.match(method, path);
      if (m.kind === "none") return jsonError(404, "not_found", `no such endpoint: ${method} ${JSON.stringify(path.slice(0, MAX_ECHO))}`);
      if (m.kind === "method") {
        if (method === "OPTIONS") return optionsResponse(m.allow, m.cors);
        return jsonError(405, "method_not_allowed", `${method} is not allowed here; use ${m.allow.join(", ")}`, { allow: m.allow.join(", ") });
      }
      const { route } = m;
      const cors: Record<string, string> = route.cors ? { ...INGEST_CORS_HEADERS } : {};
      if (route.cors) Object.assign(headers, cors);

      if (route.sameOrigin && crossSite(request, opts.trustProxy === true))
        return jsonError(403, "cross_origin", "this form must be posted from rtae's own pages");

      const url = new URL(request.url);
      const d = auth.check(request, url, route.access);
      if (!d.ok) {
        if (d.status === 401 && route.access === "read" && (method === "GET" || method === "HEAD") && wantsHtml(request)) {
          url.searchParams.delete("key"); // never echo a secret, even in a Location header
          return new Response(null, {
            status: 303,
            headers: { location: `/login?next=${encodeURIComponent(path + url.search)}`, "cache-control": "no-store", ...SECURITY_HEADERS },
          });
        }
        const challenge: Record<string, string> = d.status === 401 ? { "www-authenticate": 'Bearer realm="rtae"' } : {};
        return jsonError(d.status, d.code, d.message, { ...challenge, ...cors });
      }

      const limiter = route.limit === undefined ? null : (opts.limiters[route.limit] ?? null);
      if (limiter !== null) {
        const who = route.limit === "ingest" && d.principal !== null ? `key:${d.principal.id}` : `ip:${clientAddress(request, info, opts)}`;
        const waitMs = limiter.take(who);
        if (waitMs > 0) {
          const secs = Math.max(1, Math.ceil(waitMs / 1000));
          return jsonError(429, "rate_limited", `too many requests; retry in ${secs} s`, {
            "retry-after": String(secs),
            ...cors,
            ...(route.cors ? { "access-control-expose-headers": "retry-after" } : {}),
          });
        }
      }

      // Bun closes connections idle for the server's timeout; a stream is idle between heartbeats by design
      if (route.stream && info?.server) info.server.timeout(info.original, 0);
      cleared.set(request, { route, principal: d.principal });
    })
    .onBeforeHandle({ as: "global" }, ({ request, route }) => {
      const c = cleared.get(request);
      if (c !== undefined && c.route.path === route) {
        opts.onHandled?.(request, c.route);
        return;
      }
      log.error("router and guard disagree; request refused", { method: request.method, guard: c?.route.path ?? null, router: route });
      return jsonError(404, "not_found", "no such endpoint");
    });
}
