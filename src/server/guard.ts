// The global request guard: security headers, CORS preflight, path-based auth and ingest rate
// limiting, all in onRequest so they run before routing and cover routes of every plugin.

import { Elysia } from "elysia";
import type { Server } from "bun";
import { routePolicy, type Auth } from "./auth.ts";
import { errorBody } from "./errors.ts";
import type { RateLimiter } from "./rate-limit.ts";
import { SECURITY_HEADERS, applySecurityHeaders, preflightResponse } from "./security.ts";

export interface GuardOptions {
  auth: Auth;
  /** Rate limiter for POST /api/events, or null for none. */
  limiter: RateLimiter | null;
  /** Trust the first `X-Forwarded-For` address (only behind a proxy that sets it). */
  trustProxy?: boolean;
  /** The client address of a request when the app is served by `app.handle` (e.g. `server.requestIP`). */
  clientIp?: (request: Request) => string | null | undefined;
}

const jsonError = (status: number, code: string, message: string, extra: Record<string, string> = {}): Response =>
  new Response(errorBody(code, message), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...SECURITY_HEADERS, ...extra },
  });

/** The client address used as a rate-limit key when no ingest key identifies the sender. */
function clientAddress(request: Request, server: Server<unknown> | null, opts: GuardOptions): string {
  if (opts.trustProxy === true) {
    const xff = request.headers.get("x-forwarded-for");
    if (xff !== null && xff.trim() !== "") return xff.split(",")[0].trim();
  }
  const given = opts.clientIp?.(request);
  if (given !== null && given !== undefined && given !== "") return given;
  try {
    const a = server?.requestIP(request);
    if (a !== null && a !== undefined) return a.address;
  } catch {
    // requestIP throws for requests that did not come through this server (app.handle in tests)
  }
  return "unknown";
}

const wantsHtml = (request: Request): boolean => {
  const accept = request.headers.get("accept");
  return accept !== null && accept.includes("text/html");
};

/** The guard plugin; `.use()` it first so its headers and checks apply to every later route. */
export function guardPlugin(opts: GuardOptions) {
  const { auth, limiter } = opts;
  return new Elysia({ name: "rtae-guard" }).onRequest(({ request, set, server }) => {
    const url = new URL(request.url);
    const path = url.pathname;
    const ingest = path === "/api/events";
    applySecurityHeaders(set.headers as Record<string, string>, ingest);
    if (ingest && request.method === "OPTIONS") return preflightResponse();

    const need = routePolicy(request.method, path);
    const d = auth.check(request, url, need);
    if (!d.ok) {
      const cors: Record<string, string> = ingest ? { "access-control-allow-origin": "*" } : {};
      if (d.status === 401 && (request.method === "GET" || request.method === "HEAD") && wantsHtml(request)) {
        url.searchParams.delete("key"); // never echo a secret, even in a Location header
        return new Response(null, {
          status: 303,
          headers: { location: `/login?next=${encodeURIComponent(path + url.search)}`, "cache-control": "no-store", ...SECURITY_HEADERS },
        });
      }
      const challenge: Record<string, string> = d.status === 401 ? { "www-authenticate": 'Bearer realm="rtae"' } : {};
      return jsonError(d.status, d.code, d.message, { ...challenge, ...cors });
    }

    if (ingest && request.method === "POST" && limiter !== null) {
      const key = d.principal !== null ? `key:${d.principal.id}` : `ip:${clientAddress(request, server, opts)}`;
      const waitMs = limiter.take(key);
      if (waitMs > 0) {
        const secs = Math.max(1, Math.ceil(waitMs / 1000));
        return jsonError(429, "rate_limited", `too many requests; retry in ${secs} s`, {
          "retry-after": String(secs),
          "access-control-allow-origin": "*",
          "access-control-expose-headers": "retry-after",
        });
      }
    }
  });
}
