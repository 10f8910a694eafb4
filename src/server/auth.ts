// Who may do what: write-only ingest keys, read tokens, one admin token, and HMAC-signed session
// cookies for browsers. Secrets are compared as SHA-256 digests in constant time and never logged.

import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Config } from "../config.ts";
import type { Access } from "./routes.ts";

/** The kind of a credential; admin is accepted everywhere. */
export type Role = "ingest" | "read" | "admin";
/** What a route requires (the route table's `access`). */
export type Need = Access;

export type AuthConfig = Pick<Config, "ingestKeys" | "readTokens" | "adminToken">;

export interface AuthOptions {
  /** Key for signing session cookies; default random per process (sessions end with the process). */
  sessionSecret?: string | Uint8Array;
  /** Session lifetime, default 12 h. */
  sessionTtlMs?: number;
  /** Milliseconds clock; injectable for tests. */
  now?: () => number;
}

/** A recognised credential: its role and a stable, non-secret identity (for rate-limit buckets). */
export interface Principal {
  role: Role;
  id: string;
}

export type Decision =
  | { ok: true; principal: Principal | null }
  | { ok: false; status: 401 | 403; code: "unauthorized" | "forbidden"; message: string };

export interface Auth {
  /** True when ingest needs no credential (no ingest key and no admin token configured). */
  readonly ingestOpen: boolean;
  /** True when reads need no credential (no read token and no admin token configured). */
  readonly readOpen: boolean;
  /** Checks a request against what its route needs. */
  check(request: Request, url: URL, need: Need): Decision;
  /** The role of a presented secret, in constant time over all configured secrets. */
  identify(secret: string): Principal | null;
  /** A signed session cookie value for a read or admin principal. */
  createSession(role: "read" | "admin"): string;
  /** The role a session cookie value grants, or null when forged, expired or revoked. */
  verifySession(value: string): "read" | "admin" | null;
  /** Revokes a session value until it would have expired anyway. */
  revokeSession(value: string): void;
  /** Set-Cookie header value carrying a session. */
  sessionCookie(value: string, secure: boolean): string;
  /** Set-Cookie header value clearing the session. */
  clearCookie(secure: boolean): string;
}

export const SESSION_COOKIE = "rtae_session";
const DEFAULT_TTL_MS = 12 * 3_600_000;
const MAX_REVOKED = 100_000;

const sha256 = (s: string | Uint8Array): Buffer => createHash("sha256").update(s).digest();
const b64url = (b: Buffer | string): string => Buffer.from(b).toString("base64url");

/** The credential presented by a request: Bearer header, X-Rtae-Key, or (ingest only) `?key=`. */
function presented(request: Request, url: URL, allowQuery: boolean): string | null {
  const h = request.headers.get("authorization");
  if (h !== null) {
    const m = /^Bearer\s+(.+)$/i.exec(h.trim());
    if (m !== null) return m[1].trim();
  }
  const k = request.headers.get("x-rtae-key");
  if (k !== null && k.trim() !== "") return k.trim();
  if (allowQuery) {
    const q = url.searchParams.get("key");
    if (q !== null && q !== "") return q;
  }
  return null;
}

/** The value of one cookie from a Cookie header, without parsing the others. */
export function cookieValue(header: string | null, name: string): string | null {
  if (header === null) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** Authentication over the configured secrets. */
export function createAuth(config: AuthConfig, opts: AuthOptions = {}): Auth {
  const now = opts.now ?? Date.now;
  const ttl = opts.sessionTtlMs ?? DEFAULT_TTL_MS;
  const key = opts.sessionSecret === undefined ? randomBytes(32) : Buffer.from(opts.sessionSecret);
  const known: Array<{ digest: Buffer; principal: Principal }> = [
    ...config.ingestKeys.map((s, i) => ({ digest: sha256(s), principal: { role: "ingest" as const, id: `ingest#${i}` } })),
    ...config.readTokens.map((s, i) => ({ digest: sha256(s), principal: { role: "read" as const, id: `read#${i}` } })),
    ...(config.adminToken === null ? [] : [{ digest: sha256(config.adminToken), principal: { role: "admin" as const, id: "admin" } }]),
  ];
  const ingestOpen = config.ingestKeys.length === 0 && config.adminToken === null;
  const readOpen = config.readTokens.length === 0 && config.adminToken === null;
  const revoked = new Map<string, number>(); // signature -> expiry

  const identify = (secret: string): Principal | null => {
    const d = sha256(secret);
    let found: Principal | null = null;
    // no early exit: the time taken does not reveal which secret, if any, matched
    for (const k of known) if (timingSafeEqual(k.digest, d) && found === null) found = k.principal;
    return found;
  };

  const sign = (payload: string): Buffer => createHmac("sha256", key).update(payload).digest();

  const verifySession = (value: string): "read" | "admin" | null => {
    const dot = value.lastIndexOf(".");
    if (dot <= 0) return null;
    const payloadB64 = value.slice(0, dot);
    const sig = value.slice(dot + 1);
    const given = Buffer.from(sig, "base64url");
    // canonical encoding only: base64 has spare bits, and a variant spelling must not dodge revocation
    if (given.toString("base64url") !== sig) return null;
    const want = sign(payloadB64);
    if (given.length !== want.length || !timingSafeEqual(given, want)) return null;
    const [role, exp] = Buffer.from(payloadB64, "base64url").toString("utf8").split(".");
    if ((role !== "read" && role !== "admin") || !(Number(exp) > now())) return null;
    if (revoked.has(sig)) return null;
    return role;
  };

  const deny = (status: 401 | 403, message: string): Decision =>
    status === 401 ? { ok: false, status, code: "unauthorized", message } : { ok: false, status, code: "forbidden", message };

  return {
    ingestOpen,
    readOpen,
    identify,
    verifySession,
    check(request, url, need) {
      if (need === "open") return { ok: true, principal: null };
      if (need === "admin") {
        // writes take the bearer admin token only: a cookie never authorises them, so there is no CSRF surface
        if (config.adminToken === null) return deny(403, "this needs the admin token, and none is configured (start rtae with --admin-token)");
        const secret = presented(request, url, false);
        if (secret === null) return deny(401, "the admin token is required (Authorization: Bearer <token>)");
        const p = identify(secret);
        if (p === null) return deny(401, "the credential is not valid");
        return p.role === "admin" ? { ok: true, principal: p } : deny(403, "this needs the admin token");
      }
      if (need === "ingest" ? ingestOpen : readOpen) return { ok: true, principal: null };
      const secret = presented(request, url, need === "ingest");
      if (secret !== null) {
        const p = identify(secret);
        if (p === null) return deny(401, "the credential is not valid");
        if (p.role === "admin" || p.role === need) return { ok: true, principal: p };
        return deny(403, need === "ingest" ? "a read token cannot send events; use an ingest key" : "an ingest key cannot read; use a read token");
      }
      if (need === "read") {
        const c = cookieValue(request.headers.get("cookie"), SESSION_COOKIE);
        if (c !== null) {
          const role = verifySession(c);
          if (role === null) return deny(401, "the session is not valid or has expired; sign in again at /login");
          return { ok: true, principal: { role, id: `session:${role}` } };
        }
        return deny(401, "a read token is required (Authorization: Bearer <token>, or sign in at /login)");
      }
      return deny(401, "an ingest key is required (Authorization: Bearer <key>, X-Rtae-Key, or ?key=)");
    },
    createSession(role) {
      const payload = b64url(`${role}.${now() + ttl}.${randomBytes(9).toString("base64url")}`);
      return `${payload}.${b64url(sign(payload))}`;
    },
    revokeSession(value) {
      if (verifySession(value) === null) return;
      const t = now();
      if (revoked.size >= MAX_REVOKED) for (const [k, exp] of revoked) if (exp <= t) revoked.delete(k);
      if (revoked.size >= MAX_REVOKED) revoked.delete(revoked.keys().next().value as string);
      revoked.set(value.slice(value.lastIndexOf(".") + 1), t + ttl);
    },
    sessionCookie(value, secure) {
      return `${SESSION_COOKIE}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${Math.floor(ttl / 1000)}${secure ? "; Secure" : ""}`;
    },
    clearCookie(secure) {
      return `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0${secure ? "; Secure" : ""}`;
    },
  };
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost", "[::1]"]);

/**
 * The start-up warning for parts of the API left without credentials, or null when everything is
 * protected or the listener is loopback-only.
 */
export function warnOpen(config: AuthConfig & Pick<Config, "host">): string | null {
  if (LOOPBACK.has(config.host.toLowerCase())) return null;
  const ingestOpen = config.ingestKeys.length === 0 && config.adminToken === null;
  const readOpen = config.readTokens.length === 0 && config.adminToken === null;
  if (!ingestOpen && !readOpen) return null;
  const what =
    ingestOpen && readOpen
      ? "authentication is off (no --ingest-keys, --read-tokens or --admin-token): anyone who can reach this host can send events and read every metric"
      : ingestOpen
        ? "ingest is open (no --ingest-keys or --admin-token): anyone who can reach this host can send events"
        : "reads are open (no --read-tokens or --admin-token): anyone who can reach this host can read every metric and the dashboard";
  return `${what}; listening on ${config.host}, set the keys or bind --host 127.0.0.1`;
}
