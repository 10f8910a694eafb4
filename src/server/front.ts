// The HTTP front: owns Bun.serve, normalises the request target once and hands Elysia a request whose
// URL is that canonical path under a fixed origin, so the guard, the rate limiters and Elysia's router
// all see one path, whatever the Host header says (Elysia finds the path at the first "/" after
// index 11 of the URL, which a short or missing Host throws off). The original request and server stay
// reachable for what needs them: WebSocket upgrades, per-request idle timeouts, the client address.

import type { AnyElysia } from "elysia";
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import { readBody, type BodyBudgetControl, type BodyResult, type ReadBodyOptions } from "./body.ts";
import { canonicalTarget } from "./request-target.ts";
import { METHODS } from "./routes.ts";
import { jsonError } from "./security.ts";

/** Fixed origin of the requests Elysia sees; long enough for its path scan (the first "/" after index 11). */
export const INNER_ORIGIN = "http://rtae.internal";

/** What the front knows of a request that Elysia's copy of it does not carry. */
export interface FrontInfo {
  /** the request as Bun received it (upgrades and timeouts need this object) */
  original: Request;
  server: Server<unknown> | null;
  /** canonical path and query */
  path: string;
  search: string;
  /** the bytes every body being received may hold together */
  budget: BodyBudgetControl;
}

const infos = new WeakMap<Request, FrontInfo>();

/** The front's record of a request Elysia handles, or undefined when it did not come through the front. */
export const frontInfo = (request: Request): FrontInfo | undefined => infos.get(request);

const implemented = new Set<string>(METHODS);

/** Data of an upgraded socket: the handler of the route that upgraded it, and that route's own state. */
export interface SocketData {
  handler: WebSocketHandler<SocketData>;
  [key: string]: unknown;
}

// one Bun websocket config for every route: each socket is served by the handler its route gave it
const dispatch: WebSocketHandler<SocketData> = {
  open: (ws) => ws.data.handler.open?.(ws),
  message: (ws, m) => ws.data.handler.message?.(ws, m),
  drain: (ws) => ws.data.handler.drain?.(ws),
  close: (ws, code, reason) => ws.data.handler.close?.(ws, code, reason),
};

/**
 * Upgrades the connection of a request Elysia is handling (Bun upgrades only the request it received).
 * False when the request did not come through a listening front or the upgrade failed.
 */
export function upgradeWebSocket(request: Request, data: SocketData): boolean {
  const info = infos.get(request);
  if (info?.server == null) return false;
  return info.server.upgrade(info.original, { data });
}

export type Socket = ServerWebSocket<SocketData>;

/**
 * Reads the body of a request Elysia is handling through readBody, charged to the front's in-flight
 * budget (a request that did not come through the front is bounded by `maxBytes` alone).
 */
export function readRequestBody(request: Request, opts: Omit<ReadBodyOptions, "budget">): Promise<BodyResult> {
  return readBody(request, { ...opts, budget: infos.get(request)?.budget });
}

export interface ListenOptions {
  port: number;
  hostname: string;
  /** Bun's own cap on request bodies, a backstop far behind the routes' limits, which answer first (default the app's). */
  maxRequestBodySize?: number;
  /** seconds; streams lift it per request */
  idleTimeout?: number;
}

export interface Listening {
  readonly port: number;
  readonly server: Server<unknown>;
  /** Stops listening and runs the app's stop hooks (streams close their clients). */
  stop(closeActiveConnections?: boolean): Promise<void>;
}

/** The HTTP application: `handle` for in-process requests, `listen` for a port. */
export interface HttpApp {
  handle(request: Request, server?: Server<unknown> | null): Promise<Response>;
  listen(opts: ListenOptions): Listening;
  /** the Elysia app behind the front (its routes are checked against the table) */
  readonly elysia: AnyElysia;
}

/** Wraps an Elysia app, its guard installed, in the front. */
export function createFront(elysia: AnyElysia, defaults: { maxRequestBodySize: number; budget: BodyBudgetControl }): HttpApp {
  async function handle(request: Request, server: Server<unknown> | null = null): Promise<Response> {
    // Bun forwards any method it knows; the fetch Request constructor refuses CONNECT and TRACE
    if (!implemented.has(request.method)) return jsonError(501, "not_implemented", `method ${request.method} is not implemented; rtae serves ${METHODS.join(", ")}`);
    const t = canonicalTarget(request.url);
    if (!t.ok) return jsonError(400, t.code, t.message);
    const inner = new Request(INNER_ORIGIN + t.path + t.search, request);
    infos.set(inner, { original: request, server, path: t.path, search: t.search, budget: defaults.budget });
    return elysia.handle(inner);
  }
  return {
    elysia,
    handle,
    listen(opts) {
      const server = Bun.serve<SocketData>({
        port: opts.port,
        hostname: opts.hostname,
        // one process per port: a second rtae on a port in use must fail, not share it silently
        reusePort: false,
        development: false,
        maxRequestBodySize: opts.maxRequestBodySize ?? defaults.maxRequestBodySize,
        idleTimeout: opts.idleTimeout ?? 30,
        fetch: (request, srv) => handle(request, srv),
        websocket: dispatch,
        error: () => jsonError(500, "internal", "internal error"),
      });
      // Elysia's stop hooks (streams closing their clients, metrics unsubscribing) run from app.stop,
      // which acts on the server it is given here
      (elysia as { server: Server<unknown> | null }).server = server;
      return {
        port: server.port ?? opts.port,
        server,
        async stop(close = true) {
          if ((elysia as { server: Server<unknown> | null }).server !== null) await elysia.stop(close);
          else await server.stop(close);
        },
      };
    },
  };
}
