// SSE (`GET /api/stream`) and WebSocket (`GET /ws`) delivery of the live topics. One subscription to the
// "live" channel feeds a ring of recent messages (for resume) and bounded per-client queues: a client
// that falls behind gets its backlog replaced by a fresh snapshot (a resync), and is dropped if it keeps failing.

import { Elysia } from "elysia";
import type { ServerWebSocket, WebSocketHandler } from "bun";
import { errorBody } from "./errors.ts";
import { upgradeWebSocket, type SocketData } from "./front.ts";
import { LIVE_CHANNEL, TOPICS, type LiveTopics } from "./live.ts";
import type { Engine } from "../engine.ts";

export interface StreamsOptions {
  /** heartbeat period (default 15 000 ms) */
  heartbeatMs?: number;
  /** unsent messages a client may have before its backlog is replaced by a snapshot (default 256) */
  maxQueue?: number;
  /** resyncs in a row without the client draining before it is disconnected (default 3) */
  maxResyncs?: number;
  /** recent messages kept for Last-Event-ID resume (default 1024) */
  ringSize?: number;
  /** WebSocket bytes buffered by the server above which a client counts as stalled (default 1 MiB) */
  wsMaxBufferedBytes?: number;
  /** SSE reconnection hint sent as `retry:` (default 2000 ms) */
  retryMs?: number;
}

export interface StreamStats {
  sseClients: number;
  wsClients: number;
  /** messages received from the live channel */
  messages: number;
  /** snapshots sent instead of a backlog or of an unreplayable resume */
  resyncs: number;
  /** clients disconnected for being too slow */
  drops: number;
  /** successful Last-Event-ID / resume replays */
  replays: number;
  /** messages queued for SSE clients right now (all clients) */
  queued: number;
  /** the largest queue any SSE client has had */
  maxQueued: number;
}

const counters = { messages: 0, resyncs: 0, drops: 0, replays: 0, maxQueued: 0 };
const sseClients = new Set<SseClient>();
const wsClients = new Set<WsClient>();

/** Counters of every streams plugin in this process (clients, resyncs, drops, queued messages). */
export function streamStats(): StreamStats {
  let queued = 0;
  for (const c of sseClients) queued += c.queue.length;
  return { sseClients: sseClients.size, wsClients: wsClients.size, queued, ...counters };
}

interface Entry {
  seq: number;
  topic: string;
  kind: string;
  /** the live message as published */
  json: string;
  sse: string | null;
  ws: string | null;
}

interface SseClient {
  topics: ReadonlySet<string>;
  /** encoded SSE frames not yet handed to the response stream */
  queue: string[];
  resyncsInRow: number;
  wake: (() => void) | null;
  controller: ReadableStreamDefaultController<Uint8Array>;
  closed: boolean;
}

interface WsSocket {
  send(data: string): number;
  getBufferedAmount(): number;
  terminate(): void;
}

interface WsClient {
  socket: WsSocket;
  topics: ReadonlySet<string>;
  /** waiting for drain: messages are skipped and a snapshot follows */
  stalled: boolean;
  skipped: number;
  resyncsInRow: number;
}

const encoder = new TextEncoder();
const eventOf = (kind: string) => (kind === "correction" ? "correction" : "delta");
const sseFrame = (e: Entry) => (e.sse ??= `id: ${e.seq}\nevent: ${eventOf(e.kind)}\ndata: ${e.json}\n\n`);
const wsFrame = (e: Entry) => (e.ws ??= `{"event":"${eventOf(e.kind)}","id":${e.seq},"data":${e.json}}`);

type TopicsResult = { ok: true; topics: string[] } | { ok: false; message: string };

function parseTopics(v: unknown): TopicsResult {
  if (v === undefined || v === null || v === "") return { ok: true, topics: [...TOPICS] };
  const list = Array.isArray(v) ? v : typeof v === "string" ? v.split(",") : null;
  if (!list) return { ok: false, message: `topics must be a comma-separated list of ${TOPICS.join(", ")}` };
  const out: string[] = [];
  for (const raw of list) {
    const t = typeof raw === "string" ? raw.trim() : "";
    if (!(TOPICS as readonly string[]).includes(t))
      return { ok: false, message: `topics must name only ${TOPICS.join(", ")}, got ${JSON.stringify(String(raw)).slice(0, 80)}` };
    if (!out.includes(t)) out.push(t);
  }
  if (out.length === 0) return { ok: true, topics: [...TOPICS] };
  return { ok: true, topics: out };
}

function parseSeq(v: unknown): number | null {
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === "string" && /^\d{1,16}$/.test(v)) return Number(v);
  return null;
}

const jsonError = (status: number, code: string, message: string, extra: Record<string, string> = {}) =>
  new Response(errorBody(code, message), { status, headers: { "content-type": "application/json; charset=utf-8", ...extra } });

/**
 * Elysia plugin serving `GET /api/stream` (SSE) and `GET /ws` (WebSocket) from the live topics.
 * WebSockets need the front's server (`createApp(...).listen()`); the guard lifts the idle timeout of streams.
 */
export function streamsPlugin(engine: Engine, live: LiveTopics, opts: StreamsOptions = {}) {
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const maxQueue = opts.maxQueue ?? 256;
  const maxResyncs = opts.maxResyncs ?? 3;
  const ringSize = opts.ringSize ?? 1024;
  const wsMaxBuffered = opts.wsMaxBufferedBytes ?? 1 << 20;
  const retryMs = opts.retryMs ?? 2000;

  // fixed ring of recent messages: start/size over a preallocated array, wrap by subtraction
  const ring: Array<Entry | undefined> = new Array(ringSize);
  let ringStart = 0;
  let ringLen = 0;
  const mine = { sse: new Set<SseClient>(), ws: new Map<WsSocket, WsClient>() };

  /** Messages after `after` for these topics, or null when some of them have left the ring. */
  function replay(after: number, topics: ReadonlySet<string>): Entry[] | null {
    const latest = live.seq;
    if (after === latest) return [];
    if (after > latest || ringLen === 0) return null;
    const oldest = ring[ringStart]!;
    if (oldest.seq > after + 1) return null;
    const out: Entry[] = [];
    for (let i = 0; i < ringLen; i++) {
      let j = ringStart + i;
      if (j >= ringSize) j -= ringSize;
      const e = ring[j]!;
      if (e.seq > after && topics.has(e.topic)) out.push(e);
    }
    return out;
  }

  const snapshotJson = (topics: ReadonlySet<string>) => JSON.stringify(live.snapshot([...topics]));
  const sseSnapshot = (topics: ReadonlySet<string>) => `id: ${live.seq}\nevent: snapshot\ndata: ${snapshotJson(topics)}\n\n`;
  const wsSnapshot = (topics: ReadonlySet<string>) => `{"event":"snapshot","id":${live.seq},"data":${snapshotJson(topics)}}`;

  // ---- SSE ----
  function flush(c: SseClient): void {
    if (c.queue.length === 0 || !c.wake) return;
    const chunk = c.queue.length === 1 ? c.queue[0] : c.queue.join("");
    c.queue.length = 0;
    // the stream asked for data: the client drained what it had
    c.resyncsInRow = 0;
    c.controller.enqueue(encoder.encode(chunk));
    const w = c.wake;
    c.wake = null;
    w();
  }

  function closeSse(c: SseClient): void {
    if (c.closed) return;
    c.closed = true;
    c.queue.length = 0;
    c.wake?.();
    c.wake = null;
    sseClients.delete(c);
    mine.sse.delete(c);
    stopHeartbeatIfIdle();
  }

  function pushSse(c: SseClient, frame: string): void {
    if (c.closed) return;
    if (c.queue.length >= maxQueue) {
      counters.resyncs++;
      if (++c.resyncsInRow > maxResyncs) {
        counters.drops++;
        try {
          c.controller.error(new Error("client too slow"));
        } catch {
          // already errored or closed
        }
        closeSse(c);
        return;
      }
      // the snapshot already holds this message: the hot cache is set before each publish
      c.queue.length = 0;
      c.queue.push(sseSnapshot(c.topics));
    } else c.queue.push(frame);
    if (c.queue.length > counters.maxQueued) counters.maxQueued = c.queue.length;
    flush(c);
  }

  // ---- WebSocket ----
  function sendWs(c: WsClient, frame: string): void {
    if (c.stalled || c.socket.getBufferedAmount() > wsMaxBuffered) {
      c.stalled = true;
      // a stalled client loses messages: count a resync per maxQueue of them, drop it after maxResyncs
      if (++c.skipped >= maxQueue) {
        c.skipped = 0;
        counters.resyncs++;
        if (++c.resyncsInRow > maxResyncs) dropWs(c);
      }
      return;
    }
    const r = c.socket.send(frame);
    if (r === -1 || r === 0) c.stalled = true; // -1: queued under backpressure, 0: dropped
    else c.resyncsInRow = 0;
    if (r === 0) c.skipped++;
  }

  function resyncWs(c: WsClient): void {
    c.stalled = false;
    c.skipped = 0;
    const r = c.socket.send(wsSnapshot(c.topics));
    if (r === -1 || r === 0) c.stalled = true;
  }

  function dropWs(c: WsClient): void {
    counters.drops++;
    closeWs(c);
  }

  function closeWs(c: WsClient): void {
    wsClients.delete(c);
    mine.ws.delete(c.socket);
    try {
      c.socket.terminate();
    } catch {
      // already gone
    }
    stopHeartbeatIfIdle();
  }

  // ---- shared ----
  const unsubscribe = engine.hot.subscribe(LIVE_CHANNEL, (json) => {
    let m: { topic?: unknown; seq?: unknown; kind?: unknown };
    try {
      m = JSON.parse(json) as typeof m;
    } catch {
      return;
    }
    if (typeof m.topic !== "string" || typeof m.seq !== "number" || typeof m.kind !== "string") return;
    counters.messages++;
    const e: Entry = { seq: m.seq, topic: m.topic, kind: m.kind, json, sse: null, ws: null };
    if (ringLen < ringSize) {
      let j = ringStart + ringLen;
      if (j >= ringSize) j -= ringSize;
      ring[j] = e;
      ringLen++;
    } else {
      ring[ringStart] = e;
      ringStart = ringStart + 1 === ringSize ? 0 : ringStart + 1;
    }
    for (const c of mine.sse) if (c.topics.has(e.topic)) pushSse(c, sseFrame(e));
    for (const c of mine.ws.values()) if (c.topics.has(e.topic)) sendWs(c, wsFrame(e));
  });

  let heartbeat: ReturnType<typeof setInterval> | null = null;
  function startHeartbeat(): void {
    if (heartbeat) return;
    heartbeat = setInterval(() => {
      const t = new Date().toISOString();
      // no `id:` on SSE heartbeats so they do not move the client's Last-Event-ID
      const sse = `event: heartbeat\ndata: {"t":"${t}","seq":${live.seq}}\n\n`;
      const ws = `{"event":"heartbeat","id":${live.seq},"data":{"t":"${t}"}}`;
      for (const c of mine.sse) pushSse(c, sse);
      for (const c of mine.ws.values()) sendWs(c, ws);
    }, heartbeatMs);
  }
  function stopHeartbeatIfIdle(): void {
    if (heartbeat && mine.sse.size === 0 && mine.ws.size === 0) {
      clearInterval(heartbeat);
      heartbeat = null;
    }
  }

  // the WebSocket side, on raw Bun sockets: the front dispatches each socket to the handler it was upgraded with
  type StreamSocket = ServerWebSocket<SocketData & { topics: string[] }>;
  const wsHandler: WebSocketHandler<SocketData & { topics: string[] }> = {
    open(ws: StreamSocket) {
      const c: WsClient = { socket: ws, topics: new Set(ws.data.topics), stalled: false, skipped: 0, resyncsInRow: 0 };
      wsClients.add(c);
      mine.ws.set(c.socket, c);
      startHeartbeat();
      resyncWs(c);
    },
    message(ws: StreamSocket, raw) {
      const c = mine.ws.get(ws);
      if (!c) return;
      let msg: unknown = null;
      if (typeof raw === "string") {
        try {
          msg = JSON.parse(raw);
        } catch {
          msg = null;
        }
      }
      const m = (msg && typeof msg === "object" ? msg : {}) as { subscribe?: unknown; resume?: unknown };
      if (m.subscribe !== undefined) {
        const parsed = parseTopics(m.subscribe);
        if (!parsed.ok) {
          c.socket.send(JSON.stringify({ event: "error", id: live.seq, data: JSON.parse(errorBody("invalid_parameter", parsed.message)) }));
          return;
        }
        c.topics = new Set(parsed.topics);
        resyncWs(c);
      } else if (m.resume !== undefined) {
        const after = parseSeq(m.resume);
        const missed = after === null ? null : replay(after, c.topics);
        if (missed === null || missed.length > maxQueue) {
          counters.resyncs++;
          resyncWs(c);
          return;
        }
        counters.replays++;
        for (const e of missed) sendWs(c, wsFrame(e));
      } else {
        c.socket.send(JSON.stringify({ event: "error", id: live.seq, data: JSON.parse(errorBody("invalid_message", 'send {"subscribe": [topics]} or {"resume": seq}')) }));
      }
    },
    drain(ws: StreamSocket) {
      const c = mine.ws.get(ws);
      if (c?.stalled && c.socket.getBufferedAmount() <= wsMaxBuffered) {
        counters.resyncs++;
        resyncWs(c);
      }
    },
    close(ws: StreamSocket) {
      const c = mine.ws.get(ws);
      if (!c) return;
      wsClients.delete(c);
      mine.ws.delete(c.socket);
      stopHeartbeatIfIdle();
    },
  };

  return new Elysia({ name: "rtae-streams" })
    .onStop(() => {
      unsubscribe();
      for (const c of [...mine.sse]) {
        try {
          c.controller.close();
        } catch {
          // already closed
        }
        closeSse(c);
      }
      for (const c of [...mine.ws.values()]) closeWs(c);
      if (heartbeat) clearInterval(heartbeat);
      heartbeat = null;
    })
    .get("/api/stream", ({ request, query }) => {
      const parsed = parseTopics(query.topics);
      if (!parsed.ok) return jsonError(400, "invalid_parameter", parsed.message);
      const topics = new Set(parsed.topics);
      const resumeFrom = parseSeq(request.headers.get("last-event-id") ?? query.lastEventId);

      let client!: SseClient;
      const stream = new ReadableStream<Uint8Array>(
        {
          start(controller) {
            client = { topics, queue: [], resyncsInRow: 0, wake: null, controller, closed: false };
            let first: string[];
            const missed = resumeFrom === null ? null : replay(resumeFrom, topics);
            if (missed !== null && missed.length <= maxQueue) {
              counters.replays++;
              first = missed.map(sseFrame);
            } else {
              if (resumeFrom !== null) counters.resyncs++;
              first = [sseSnapshot(topics)];
            }
            client.queue.push(`retry: ${retryMs}\n\n`, ...first);
            sseClients.add(client);
            mine.sse.add(client);
            startHeartbeat();
          },
          pull() {
            if (client.closed) return;
            const { promise, resolve } = Promise.withResolvers<void>();
            client.wake = resolve;
            flush(client);
            return promise;
          },
          cancel() {
            closeSse(client);
          },
        },
        { highWaterMark: 0 },
      );
      request.signal.addEventListener("abort", () => closeSse(client), { once: true });
      return new Response(stream, {
        headers: {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache, no-transform",
          "x-accel-buffering": "no",
        },
      });
    })
    .get("/ws", ({ request, query }) => {
      const parsed = parseTopics(query.topics);
      if (!parsed.ok) return jsonError(400, "invalid_parameter", parsed.message);
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket")
        return jsonError(426, "upgrade_required", "GET /ws is a WebSocket; connect with a WebSocket client", { upgrade: "websocket" });
      if (!upgradeWebSocket(request, { handler: wsHandler as WebSocketHandler<SocketData>, topics: parsed.topics }))
        return jsonError(400, "upgrade_failed", "the WebSocket handshake is not valid");
      return new Response(null); // Bun ignores the answer of an upgraded request
    });
}
