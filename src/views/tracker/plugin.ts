// GET /t.js: the browser tracker, embedded as text so `bun build --compile` carries it.
// Shrunk once at module load by a line-level pass only (indentation and whole-line comments), which cannot change meaning.

import { Elysia } from "elysia";
import type { Engine } from "../../engine.ts";
import source from "./tracker.js" with { type: "text" };

/**
 * The tracker as served: leading indentation, blank lines and whole-line `//` comments removed.
 * Safe because the source has no template literals or multi-line strings (a test checks), so no
 * line of it is inside a string; trailing comments stay, since finding them needs a tokenizer.
 */
export function shrinkTracker(src: string): string {
  let out = "";
  for (const line of src.split("\n")) {
    const l = line.trim();
    if (l !== "" && !l.startsWith("//")) out += l + "\n";
  }
  return out;
}

/** The tracker source as written (comments and indentation included). */
export const TRACKER_SOURCE: string = source;
const body = shrinkTracker(source);
const etag = `"${Bun.hash(body).toString(36)}"`;
// An hour of freshness, then a cheap revalidation by ETag: a new build reaches every shop within the hour.
const headers = {
  "content-type": "application/javascript; charset=utf-8",
  "cache-control": "public, max-age=3600",
  etag,
  "x-content-type-options": "nosniff",
  // lets shops load it with `crossorigin` (e.g. for Subresource Integrity); the file is public
  "access-control-allow-origin": "*",
};

/** The served tracker script (for size checks and tests). */
export function trackerScript(): string {
  return body;
}

/**
 * Elysia plugin serving the tracker at `GET /t.js` with cache headers and ETag revalidation.
 * `engine` is taken for symmetry with the other view plugins; the script does not depend on it.
 */
export function trackerPlugin(_engine: Engine) {
  return new Elysia({ name: "rtae-tracker" }).get("/t.js", ({ request }) => {
    const match = request.headers.get("if-none-match");
    if (match !== null && match.split(",").some((t) => t.trim().replace(/^W\//, "") === etag))
      return new Response(null, { status: 304, headers: { etag, "cache-control": headers["cache-control"] } });
    return new Response(body, { headers });
  });
}
