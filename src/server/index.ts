// Public surface of the HTTP server: the app factory, auth helpers main.ts needs, and the
// building blocks other server plugins reuse (errors, security headers, route policy).

export { createApp, DEFAULT_RATE_LIMIT, DEFAULT_LOGIN_RATE_LIMIT, type AppOptions } from "./app.ts";
export { createAuth, warnOpen, SESSION_COOKIE, type Auth, type AuthOptions, type Decision, type Need, type Principal, type Role } from "./auth.ts";
export { HttpError, badRequest, errorBody } from "./errors.ts";
export { guardPlugin, clearedOf, type GuardOptions, type Cleared } from "./guard.ts";
export { createFront, frontInfo, readRequestBody, upgradeWebSocket, INNER_ORIGIN, type HttpApp, type Listening, type ListenOptions, type SocketData } from "./front.ts";
export { ROUTES, METHODS, createRouteTable, undeclaredRoutes, type Access, type RouteSpec, type RouteTable, type RouteMatch } from "./routes.ts";
export { readBody, createBodyBudget, ALL_CODINGS, type BodyBudget, type BodyBudgetControl, type BodyResult, type ContentCoding, type ReadBodyOptions } from "./body.ts";
export { canonicalTarget, canonicalPath, rawTarget, type Target } from "./request-target.ts";
export { ErrorSchema, Schemas, errorResponses, queryParameters } from "./openapi.ts";
export { createRateLimiter, type RateLimiter, type RateLimitOptions } from "./rate-limit.ts";
export { CONTENT_SECURITY_POLICY, INGEST_CORS_HEADERS, SECURITY_HEADERS, jsonError } from "./security.ts";
export { startLiveTopics, LIVE_CHANNEL, TOPICS, type LiveTopics, type LiveMessage, type LiveSnapshot } from "./live.ts";
export { streamsPlugin, streamStats, type StreamsOptions, type StreamStats } from "./streams.ts";
export { metricsPlugin, type MetricsOptions } from "./metrics.ts";
