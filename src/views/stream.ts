// SSE for the htmx dashboard: one connection per open live view. It listens on the hot channel
// "live", re-renders the view from its topic at most once per throttle period, and pushes the
// freshness badge out of band whenever the overview topic moves.

import { h } from "preact";
import { renderToString } from "preact-render-to-string";
import type { Engine } from "../engine.ts";
import { liveFreshness, loadFromQueries, modelFromTopic } from "./data.ts";
import { FreshnessBadge, ViewBody } from "./partials.tsx";
import { PRESETS, type ViewName, type ViewRange } from "./range.ts";

export interface StreamOptions {
  /** minimum time between two renders of the view (default 250 ms) */
  throttleMs?: number;
  /** comment line interval that keeps proxies from closing an idle stream (default 15 s) */
  heartbeatMs?: number;
}

const LIVE_CHANNEL = "live";
const enc = new TextEncoder();

/** Live range as of now: the last hour. */
export const liveRange = (now = Date.now()): ViewRange => ({ kind: "live", from: now - PRESETS["1h"], to: now, live: true });

/** Renders a view's body for live mode: from its topic, or from queries while no topic exists. */
export async function renderLiveBody(engine: Engine, view: ViewName): Promise<string> {
  const range = liveRange();
  const model = modelFromTopic(engine, view) ?? (await loadFromQueries(engine, view, range));
  return renderToString(h(ViewBody, { view, model, ctx: { currency: engine.config.currency, range } }));
}

/** One SSE frame; multi-line data is split into several `data:` lines as the format requires. */
export function sseFrame(event: string, data: string): string {
  return `event: ${event}\n${data
    .split("\n")
    .map((l) => `data: ${l}`)
    .join("\n")}\n\n`;
}

/** The SSE response for one live view; it ends when the client goes away (`signal` aborts). */
export function viewStream(engine: Engine, view: ViewName, signal: AbortSignal, opts: StreamOptions = {}): Response {
  const throttleMs = opts.throttleMs ?? 250;
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  let closed = false;
  let cleanup = () => {};

  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      const write = (s: string) => {
        if (closed) return;
        try {
          controller.enqueue(enc.encode(s));
        } catch {
          stop();
        }
      };
      let viewDirty = true; // the first render happens right away, so a reconnect is never stale
      let freshDirty = false;
      let lastRender = -Infinity;
      let timer: ReturnType<typeof setTimeout> | null = null;
      let busy = false;

      const flush = async () => {
        timer = null;
        if (closed || busy) return;
        const wait = lastRender + throttleMs - Date.now();
        if (wait > 0) {
          timer = setTimeout(flush, wait);
          return;
        }
        busy = true;
        lastRender = Date.now();
        try {
          if (viewDirty) {
            viewDirty = false;
            write(sseFrame(view, await renderLiveBody(engine, view)));
          }
          if (freshDirty) {
            freshDirty = false;
            write(sseFrame("freshness", renderToString(h(FreshnessBadge, { f: liveFreshness(engine), oob: true }))));
          }
        } catch (err) {
          write(`: render failed: ${String((err as Error).message ?? err).replace(/\n/g, " ")}\n\n`);
        } finally {
          busy = false;
        }
        if ((viewDirty || freshDirty) && !closed && !timer) timer = setTimeout(flush, throttleMs);
      };
      const schedule = () => {
        if (!timer && !busy && !closed) timer = setTimeout(flush, Math.max(0, lastRender + throttleMs - Date.now()));
      };

      const unsubscribe = engine.hot.subscribe(LIVE_CHANNEL, (message) => {
        let topic: unknown;
        try {
          topic = (JSON.parse(message) as { topic?: unknown }).topic;
        } catch {
          return;
        }
        if (topic === view) viewDirty = true;
        if (topic === "overview") freshDirty = true;
        if (viewDirty || freshDirty) schedule();
      });
      const heartbeat = setInterval(() => write(": heartbeat\n\n"), heartbeatMs);

      function stop() {
        if (closed) return;
        closed = true;
        unsubscribe();
        clearInterval(heartbeat);
        if (timer) clearTimeout(timer);
        signal.removeEventListener("abort", stop);
        try {
          controller.close();
        } catch {
          // already closed by the runtime
        }
      }
      cleanup = stop;
      if (signal.aborted) return stop();
      signal.addEventListener("abort", stop);
      write("retry: 3000\n\n");
      void flush();
    },
    cancel() {
      cleanup();
    },
  });

  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    },
  });
}
