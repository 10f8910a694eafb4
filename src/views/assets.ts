// Static assets served by the binary itself (no CDN): htmx, its SSE extension and the stylesheet,
// embedded at build time through text imports so `bun build --compile` carries them.

import htmxJs from "htmx.org/dist/htmx.min.js" with { type: "text" };
import sseJs from "htmx-ext-sse/dist/sse.js" with { type: "text" };
import appCss from "./app.css" with { type: "text" };

export interface Asset {
  body: string;
  type: string;
  etag: string;
}

const etag = (s: string) => `"${Bun.hash(s).toString(36)}"`;
const asset = (body: string, type: string): Asset => ({ body, type, etag: etag(body) });

/** The asset table, keyed by file name under /assets/. */
export const ASSETS: Readonly<Record<string, Asset>> = {
  "htmx.min.js": asset(htmxJs, "text/javascript; charset=utf-8"),
  "sse.js": asset(sseJs, "text/javascript; charset=utf-8"),
  "app.css": asset(appCss, "text/css; charset=utf-8"),
};

/**
 * Serves one asset, or null when unknown. Names are not versioned, so caches revalidate after an
 * hour by ETag instead of being immutable.
 */
export function assetResponse(name: string, ifNoneMatch: string | null): Response | null {
  const a = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
  if (!a) return null;
  const headers = { "content-type": a.type, "cache-control": "public, max-age=3600", etag: a.etag, "x-content-type-options": "nosniff" };
  if (ifNoneMatch !== null && ifNoneMatch.split(",").some((t) => t.trim().replace(/^W\//, "") === a.etag || t.trim() === "*"))
    return new Response(null, { status: 304, headers });
  return new Response(a.body, { status: 200, headers });
}
