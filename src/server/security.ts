// Response hardening: security headers on every response and CORS for the tracker's ingest door.
// Headers are put on `set.headers` in onRequest, so Elysia copies them onto handler values,
// returned Responses, errors and guard short-circuits alike.

/** CSP: only this origin for scripts, styles and connections; no inline script, no framing. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** Headers every response carries. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "cross-origin-opener-policy": "same-origin",
});

/** CORS for POST /api/events: `*` is safe because ingest keys are write-only and no credentials are allowed. */
export const INGEST_CORS_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "POST, OPTIONS",
  "access-control-allow-headers": "content-type, authorization, x-rtae-key",
  "access-control-max-age": "86400",
});

/** Copies the security headers (and, for the ingest path, the CORS headers) onto Elysia's `set.headers`. */
export function applySecurityHeaders(headers: Record<string, string | number>, ingest: boolean): void {
  for (const k in SECURITY_HEADERS) headers[k] = SECURITY_HEADERS[k];
  if (ingest) for (const k in INGEST_CORS_HEADERS) headers[k] = INGEST_CORS_HEADERS[k];
}

/** The answer to OPTIONS on a declared path: its methods, and CORS where a route of the path has it. */
export function optionsResponse(allow: readonly string[], cors: boolean): Response {
  return new Response(null, { status: 204, headers: { allow: allow.join(", "), ...SECURITY_HEADERS, ...(cors ? INGEST_CORS_HEADERS : {}) } });
}

/** A JSON error answered before any handler runs (front and guard), with the security headers. */
export function jsonError(status: number, code: string, message: string, extra: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error: { code, message } }), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...SECURITY_HEADERS, ...extra },
  });
}
