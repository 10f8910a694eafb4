// The route table: every route rtae serves and who may call it, in one place. The guard decides from
// it and nothing else, the app refuses to start with an Elysia route missing here, and a path not in
// it answers 404 before any handler runs, so a new route cannot be open by accident.

/** Who may call a route: nobody needs a credential, an ingest key, a read token (or session), the admin token. */
export type Access = "open" | "ingest" | "read" | "admin";

/** Methods rtae implements somewhere; any other method Bun forwards gets 501. */
export const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"] as const;
export type Method = (typeof METHODS)[number];

export interface RouteSpec {
  /** OPTIONS is answered for every declared path by the guard (Allow, and CORS where a route has it). */
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Elysia's pattern: static segments and `:param` segments. */
  path: string;
  access: Access;
  /** Token bucket applied after auth: per ingest key or client address, or per client address for sign-in. */
  limit?: "ingest" | "login";
  /** Answers CORS for any origin (the tracker posts from shop pages); credentials are never allowed. */
  cors?: boolean;
  /** A browser form post that acts on the session: refused when Origin or Sec-Fetch-Site says cross-site. */
  sameOrigin?: boolean;
  /** A long-lived response (SSE): the idle timeout is lifted, and HEAD is not offered. */
  stream?: boolean;
  /** A WebSocket upgrade. */
  upgrade?: boolean;
}

export const ROUTES: readonly RouteSpec[] = [
  // ingest
  { method: "POST", path: "/api/events", access: "ingest", limit: "ingest", cors: true },
  // read API
  { method: "GET", path: "/api/metrics/summary", access: "read" },
  { method: "GET", path: "/api/metrics/timeseries", access: "read" },
  { method: "GET", path: "/api/products/top", access: "read" },
  { method: "GET", path: "/api/funnel", access: "read" },
  { method: "GET", path: "/api/performance", access: "read" },
  { method: "GET", path: "/api/campaigns", access: "read" },
  { method: "GET", path: "/api/inventory", access: "read" },
  { method: "GET", path: "/api/stream", access: "read", stream: true },
  { method: "GET", path: "/ws", access: "read", upgrade: true },
  // alerting
  { method: "GET", path: "/api/alerts", access: "read" },
  { method: "GET", path: "/api/alerts/history", access: "read" },
  { method: "GET", path: "/api/alerts/rules", access: "read" },
  { method: "POST", path: "/api/alerts/rules", access: "admin" },
  { method: "GET", path: "/api/alerts/rules/:id", access: "read" },
  { method: "PUT", path: "/api/alerts/rules/:id", access: "admin" },
  { method: "DELETE", path: "/api/alerts/rules/:id", access: "admin" },
  // dashboard
  { method: "GET", path: "/", access: "read" },
  { method: "GET", path: "/ui/stream", access: "read", stream: true },
  { method: "GET", path: "/ui/:view", access: "read" },
  { method: "GET", path: "/alerts", access: "read" },
  { method: "GET", path: "/ui/alerts", access: "read" },
  { method: "GET", path: "/ui/alerts/body", access: "read" },
  { method: "GET", path: "/assets/:name", access: "open" },
  { method: "GET", path: "/favicon.ico", access: "open" },
  { method: "GET", path: "/t.js", access: "open" },
  // sign-in
  { method: "GET", path: "/login", access: "open" },
  { method: "GET", path: "/login/style.css", access: "open" },
  { method: "POST", path: "/login", access: "open", limit: "login", sameOrigin: true },
  { method: "POST", path: "/logout", access: "open", sameOrigin: true },
  // operations and docs
  { method: "GET", path: "/health", access: "open" },
  { method: "GET", path: "/ready", access: "open" },
  { method: "GET", path: "/metrics", access: "read" },
  { method: "GET", path: "/swagger", access: "open" },
  { method: "GET", path: "/swagger/json", access: "open" },
  { method: "GET", path: "/swagger/assets/:file", access: "open" },
];

export type RouteMatch =
  | { kind: "route"; route: RouteSpec; params: Record<string, string> }
  | { kind: "method"; allow: string[]; cors: boolean }
  | { kind: "none" };

interface Compiled {
  spec: RouteSpec;
  segments: string[];
  /** number of static segments: more static wins, as in Elysia's router (`/ui/alerts` before `/ui/:view`) */
  weight: number;
}

const splitPath = (p: string): string[] => (p === "/" ? [""] : p.slice(1).split("/"));

/** A matcher over a route table; `ROUTES` unless given (tests build small tables). */
export function createRouteTable(routes: readonly RouteSpec[] = ROUTES) {
  const byLength = new Map<number, Compiled[]>();
  const seen = new Set<string>();
  for (const spec of routes) {
    const key = `${spec.method} ${spec.path}`;
    if (seen.has(key)) throw new Error(`route table: ${key} is declared twice`);
    seen.add(key);
    const segments = splitPath(spec.path);
    const c: Compiled = { spec, segments, weight: segments.filter((s) => !s.startsWith(":")).length };
    const list = byLength.get(segments.length) ?? [];
    list.push(c);
    byLength.set(segments.length, list);
  }
  for (const list of byLength.values()) list.sort((a, b) => b.weight - a.weight);

  const paramsOf = (c: Compiled, parts: string[]): Record<string, string> | null => {
    const params: Record<string, string> = {};
    for (let i = 0; i < parts.length; i++) {
      const s = c.segments[i];
      if (s.startsWith(":")) {
        if (parts[i] === "") return null; // a parameter is never empty
        params[s.slice(1)] = parts[i];
      } else if (s !== parts[i]) return null;
    }
    return params;
  };

  return {
    routes,
    /** The route for a method and canonical path; HEAD is served by GET routes that are not streams. */
    match(method: string, path: string): RouteMatch {
      const parts = splitPath(path);
      const candidates = byLength.get(parts.length) ?? [];
      // the most specific pattern matching the path decides, whatever the method, so a static route
      // never falls through to a parameter route for another method
      let best: Compiled[] | null = null;
      let bestParams: Record<string, string>[] = [];
      for (const c of candidates) {
        if (best !== null && c.weight < best[0].weight) break;
        const p = paramsOf(c, parts);
        if (p === null) continue;
        if (best === null) best = [];
        best.push(c);
        bestParams.push(p);
      }
      if (best === null) return { kind: "none" };
      const want = method === "HEAD" ? "GET" : method;
      for (let i = 0; i < best.length; i++) {
        const c = best[i];
        if (c.spec.method !== want) continue;
        if (method === "HEAD" && (c.spec.stream || c.spec.upgrade)) continue;
        return { kind: "route", route: c.spec, params: bestParams[i] };
      }
      const allow = new Set<string>();
      for (const c of best) {
        allow.add(c.spec.method);
        if (c.spec.method === "GET" && !c.spec.stream && !c.spec.upgrade) allow.add("HEAD");
      }
      allow.add("OPTIONS");
      return { kind: "method", allow: [...allow].sort(), cors: best.some((c) => c.spec.cors === true) };
    },
  };
}

export type RouteTable = ReturnType<typeof createRouteTable>;

/**
 * Routes an Elysia app registers that the table does not declare (with their method), and declared
 * routes the app does not serve: both must be empty, or the app refuses to start.
 */
export function undeclaredRoutes(table: RouteTable, served: ReadonlyArray<{ method: string; path: string }>): { undeclared: string[]; unserved: string[] } {
  const declared = new Set(table.routes.map((r) => `${r.method} ${r.path}`));
  const have = new Set(served.map((r) => `${r.method} ${r.path}`));
  const undeclared = [...have].filter((k) => !declared.has(k));
  const unserved = [...declared].filter((k) => !have.has(k));
  return { undeclared, unserved };
}
