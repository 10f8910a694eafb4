// Browser sign-in: a plain HTML form (no script, local stylesheet) that trades a read or admin token
// for an HttpOnly, SameSite=Strict session cookie holding a signed session, never the token itself.

import { Elysia } from "elysia";
import { SESSION_COOKIE, cookieValue, type Auth } from "./auth.ts";
import type { BodyResult } from "./body.ts";
import { readRequestBody } from "./front.ts";

type BodyFailure = Extract<BodyResult, { ok: false }>;

const MAX_FORM_BYTES = 8192;

const CSS = `body{font:16px system-ui,sans-serif;background:#f6f7f9;color:#1d2330;display:grid;place-items:center;min-height:100vh;margin:0}
form{background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002;display:grid;gap:.75rem;min-width:18rem}
h1{font-size:1.25rem;margin:0}input,button{font:inherit;padding:.5rem}button{cursor:pointer}.err{color:#b00020;margin:0}`;

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);

/** Only same-site absolute paths: an open redirect would turn the login page into a phishing aid. */
export function safeNext(next: string | null | undefined): string {
  if (next === null || next === undefined || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  return /^[\x21-\x7e]*$/.test(next) && next.length <= 2048 ? next : "/";
}

/** The sign-in page; `message` is fixed text of ours, never user input. */
export function loginPage(next: string, message: string | null): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rtae · sign in</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/login/style.css">
</head>
<body>
<form method="post" action="/login">
<h1>rtae · sign in</h1>
${message === null ? "" : `<p class="err" role="alert">${escapeHtml(message)}</p>`}
<label for="token">Read or admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="${escapeHtml(next)}">
<button type="submit">Sign in</button>
</form>
</body>
</html>`;
}

// same-origin, not the global no-referrer: under no-referrer a browser posts the form with `Origin: null`,
// which the guard's same-origin check cannot tell from a forged post
const html = (status: number, body: string, extra: Record<string, string> = {}): Response =>
  new Response(body, { status, headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store", "referrer-policy": "same-origin", ...extra } });

/** The posted form (urlencoded, or JSON `{token}`), or the body reader's refusal. */
async function readForm(request: Request): Promise<URLSearchParams | BodyFailure> {
  const body = await readRequestBody(request, { maxBytes: MAX_FORM_BYTES, timeoutMs: 10_000 });
  if (!body.ok) return body;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body.bytes);
  } catch {
    return new URLSearchParams();
  }
  const type = (request.headers.get("content-type") ?? "").toLowerCase();
  if (type.startsWith("application/json")) {
    try {
      const o = JSON.parse(text) as unknown;
      if (o === null || typeof o !== "object") return new URLSearchParams();
      const token = (o as Record<string, unknown>).token;
      return new URLSearchParams(typeof token === "string" ? { token } : {});
    } catch {
      return new URLSearchParams();
    }
  }
  return new URLSearchParams(text);
}

/** GET /login, POST /login, POST /logout and the page's stylesheet. */
export function loginRoutes(auth: Auth) {
  const secureOf = (request: Request) => request.url.startsWith("https:");
  return new Elysia({ name: "rtae-login" })
    .get("/login", ({ query }) => html(200, loginPage(safeNext(query.next), null)), {
      detail: {
        tags: ["auth"],
        summary: "Sign-in page",
        description: "HTML form for a read or admin token; posts to POST /login. No scripts, local stylesheet only.",
        responses: { 200: { description: "the sign-in form", content: { "text/html": { schema: { type: "string" } } } } },
      },
    })
    .get("/login/style.css", () => new Response(CSS, { headers: { "content-type": "text/css; charset=utf-8", "cache-control": "public, max-age=3600" } }), {
      detail: { hide: true },
    })
    .post(
      "/login",
      async ({ request }) => {
        const form = await readForm(request);
        if (!(form instanceof URLSearchParams))
          return new Response(JSON.stringify({ error: { code: form.code, message: form.message } }), {
            status: form.status,
            headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...form.headers },
          });
        const next = safeNext(form.get("next"));
        const token = form.get("token") ?? "";
        if (token === "") return html(400, loginPage(next, "Enter a token."));
        const p = auth.identify(token);
        if (p === null) return html(401, loginPage(next, "That token is not valid."));
        if (p.role === "ingest") return html(403, loginPage(next, "Ingest keys can only send events; use a read or admin token."));
        return new Response(null, {
          status: 303,
          headers: { location: next, "set-cookie": auth.sessionCookie(auth.createSession(p.role), secureOf(request)), "cache-control": "no-store" },
        });
      },
      {
        parse: "none",
        detail: {
          tags: ["auth"],
          summary: "Sign in",
          description:
            "Trades a read or admin token for an `rtae_session` cookie (HttpOnly, SameSite=Strict, Path=/) holding an HMAC-signed session, " +
            "then redirects (303) to `next` (a local path, default `/`). The token itself is never stored in the cookie.",
          requestBody: {
            required: true,
            content: {
              "application/x-www-form-urlencoded": {
                schema: { type: "object", required: ["token"], properties: { token: { type: "string" }, next: { type: "string" } } },
              },
              "application/json": { schema: { type: "object", required: ["token"], properties: { token: { type: "string" } } } },
            },
          },
          responses: {
            303: { description: "signed in; `Set-Cookie: rtae_session=…` and `Location: next`" },
            400: { description: "no token given (HTML form again)" },
            401: { description: "the token is not valid (HTML form again)" },
            403: { description: "an ingest key cannot sign in (HTML form again)" },
          },
        },
      },
    )
    .post(
      "/logout",
      ({ request }) => {
        const c = cookieValue(request.headers.get("cookie"), SESSION_COOKIE);
        if (c !== null) auth.revokeSession(c);
        return new Response(null, { status: 303, headers: { location: "/login", "set-cookie": auth.clearCookie(secureOf(request)), "cache-control": "no-store" } });
      },
      {
        parse: "none",
        detail: {
          tags: ["auth"],
          summary: "Sign out",
          description: "Revokes the session of the `rtae_session` cookie, clears the cookie and redirects (303) to /login.",
          responses: { 303: { description: "signed out" } },
        },
      },
    );
}
