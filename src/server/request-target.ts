// The request target, normalised once: every later decision (route table, guard, rate limiter, the
// Elysia router) sees this one path. The Host header never takes part: Bun builds `request.url` from
// it (relative when it is missing or malformed), so only the path and query after it are used.

/** A target in canonical form: `path` starts with "/", `search` is "" or starts with "?". */
export type Target = { ok: true; path: string; search: string } | { ok: false; code: "malformed_target"; message: string };

/** Longest path accepted (after normalisation the router never sees more). */
export const MAX_PATH_CHARS = 2048;

const HEX = "0123456789ABCDEF";
const UNRESERVED = /[A-Za-z0-9\-._~]/;

const bad = (message: string): Target => ({ ok: false, code: "malformed_target", message });

/** The path and query of `request.url`, whether Bun made it absolute (`http://host/p?q`) or relative (`/p?q`). */
export function rawTarget(url: string): string {
  if (url.charCodeAt(0) === 47 /* / */) return url;
  const scheme = url.indexOf("://");
  if (scheme < 0) return url;
  // Bun refuses (makes relative) hosts holding "/", "?" or "#", so the authority ends at the next "/" or "?"
  let i = scheme + 3;
  while (i < url.length && url.charCodeAt(i) !== 47 && url.charCodeAt(i) !== 63) i++;
  const rest = url.slice(i);
  return rest === "" || rest.charCodeAt(0) === 63 ? "/" + rest : rest;
}

/**
 * Canonical form of a path (RFC 3986 §6.2.2): percent-encodings of unreserved characters decoded and
 * the rest upper-cased, then dot segments removed (§5.2.4) and repeated slashes merged. A trailing
 * slash is kept, so `/a/` stays distinct from `/a` (the route table decides whether it exists).
 * Null when the path holds an invalid percent-encoding or a raw character that must be encoded.
 */
export function canonicalPath(path: string): string | null {
  let decoded = "";
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 37 /* % */) {
      const h = path.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(h)) return null;
      const ch = String.fromCharCode(parseInt(h, 16));
      decoded += UNRESERVED.test(ch) ? ch : "%" + h.toUpperCase();
      i += 2;
    } else if (c <= 32 || c >= 127 || c === 35 /* # */) {
      return null; // Bun percent-encodes what it forwards; anything raw here is not a valid target
    } else decoded += path[i];
  }
  // remove_dot_segments of RFC 3986 §5.2.4 (empty segments count, as in the WHATWG URL parser), then merge slashes
  const out: string[] = [];
  const segments = decoded.split("/");
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i];
    const last = i === segments.length - 1;
    if (s === ".." || s === ".") {
      if (s === "..") out.pop();
      if (last) out.push("");
    } else out.push(s);
  }
  return ("/" + out.join("/")).replace(/\/{2,}/g, "/");
}

/** Parses and normalises the target of `request.url`. */
export function canonicalTarget(url: string): Target {
  const raw = rawTarget(url);
  if (raw.charCodeAt(0) !== 47) return bad("the request target must be an absolute path");
  const q = raw.indexOf("?");
  const rawPath = q < 0 ? raw : raw.slice(0, q);
  const search = q < 0 ? "" : raw.slice(q);
  if (rawPath.length > MAX_PATH_CHARS) return bad(`the path is longer than ${MAX_PATH_CHARS} characters`);
  const path = canonicalPath(rawPath);
  if (path === null) return bad("the path holds an invalid percent-encoding or a character that must be encoded");
  return { ok: true, path, search: search === "?" ? "" : search };
}

/** Percent-encodes one byte the way canonicalPath spells it (for tests and generators). */
export const pctByte = (b: number): string => "%" + HEX[b >> 4] + HEX[b & 15];
