// Public surface of the HTTP server: the app factory, auth helpers main.ts needs, and the
// building blocks other server plugins reuse (errors, security headers, route policy).

export { createApp, DEFAULT_RATE_LIMIT, type AppOptions } from "./app.ts";
export { createAuth, routePolicy, warnOpen, SESSION_COOKIE, type Auth, type AuthOptions, type Decision, type Need, type Principal, type Role } from "./auth.ts";
export { HttpError, badRequest, errorBody } from "./errors.ts";
export { guardPlugin, type GuardOptions } from "./guard.ts";
export { ErrorSchema, Schemas, errorResponses, queryParameters } from "./openapi.ts";
export { createRateLimiter, type RateLimiter, type RateLimitOptions } from "./rate-limit.ts";
export { CONTENT_SECURITY_POLICY, INGEST_CORS_HEADERS, SECURITY_HEADERS } from "./security.ts";
export { startLiveTopics, LIVE_CHANNEL, TOPICS, type LiveTopics, type LiveMessage, type LiveSnapshot } from "./live.ts";
export { streamsPlugin, streamStats, type StreamsOptions, type StreamStats } from "./streams.ts";
export { metricsPlugin, type MetricsOptions } from "./metrics.ts";
