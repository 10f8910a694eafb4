// SSE and WebSocket streams over a real port: snapshot, deltas after ingest, resume, heartbeats,
// slow-client resync/disconnect with bounded memory, and WebSocket subscribe changes.

import { afterEach, describe, expect, it } from "bun:test";
import { connect } from "node:net";
import type { Engine } from "../../src/engine.ts";
import { createApp } from "../../src/server/app.ts";
import { LIVE_CHANNEL, TOPICS, startLiveTopics, type LiveTopics } from "../../src/server/live.ts";
import { streamStats, streamsPlugin, type StreamsOptions } from "../../src/server/streams.ts";
import { startTestEngine } from "../helpers.ts";

type Json = Record<string, any>;
interface SseEvent {
  event: string;
  id: string | null;
  data: Json | null;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup(opts: { fastMs?: number; slowMs?: number; streams?: StreamsOptions; live?: (engine: Engine) => LiveTopics; idleTimeout?: number; engineArgs?: string[] } = {}) {
  const t = await startTestEngine(opts.engineArgs);
  cleanups.push(() => t.stop());
  const live = opts.live ? opts.live(t.engine) : startLiveTopics(t.engine, { fastMs: opts.fastMs ?? 50, slowMs: opts.slowMs ?? 200 });
  cleanups.push(() => live.stop());
  const app = createApp(t.engine, { plugins: [streamsPlugin(t.engine, live, opts.streams)] }).listen({ port: 0, hostname: "127.0.0.1", ...(opts.idleTimeout ? { idleTimeout: opts.idleTimeout } : {}) });
  cleanups.push(async () => {
    await app.stop(true);
  });
  const base = `http://127.0.0.1:${app.port}`;
  return { engine: t.engine, live, app, base };
}

/** A parsing SSE client: events are separated by blank lines; each `next` waits for the next matching event. */
async function openSse(url: string, headers: Record<string, string> = {}) {
  const ac = new AbortController();
  const res = await fetch(url, { headers, signal: ac.signal });
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  const ready: SseEvent[] = [];
  let retry: number | null = null;
  async function fill(): Promise<void> {
    const { value, done } = await reader.read();
    if (done) throw new Error("stream ended");
    buf += dec.decode(value, { stream: true });
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev: SseEvent = { event: "message", id: null, data: null };
      const data: string[] = [];
      for (const line of block.split("\n")) {
        const c = line.indexOf(":");
        const field = c < 0 ? line : line.slice(0, c);
        const val = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
        if (field === "event") ev.event = val;
        else if (field === "id") ev.id = val;
        else if (field === "data") data.push(val);
        else if (field === "retry") retry = Number(val);
      }
      if (data.length) {
        ev.data = JSON.parse(data.join("\n"));
        ready.push(ev);
      }
    }
  }
  return {
    res,
    get retry() {
      return retry;
    },
    async next(pred: (e: SseEvent) => boolean = () => true, timeoutMs = 10_000): Promise<SseEvent> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        while (ready.length) {
          const e = ready.shift()!;
          if (pred(e)) return e;
        }
        if (Date.now() > deadline) throw new Error("timed out waiting for an SSE event");
        await fill();
      }
    },
    close() {
      ac.abort();
    },
  };
}

let eventNo = 0;
function pageView(extra: Json = {}): Json {
  eventNo++;
  return { eventId: `sv-${eventNo}-${Math.random()}`, type: "page_view", timestamp: new Date().toISOString(), userId: `u${eventNo % 5}`, sessionId: `s${eventNo % 7}`, page: "/", ...extra };
}

async function ingest(base: string, events: Json[]): Promise<void> {
  const res = await fetch(`${base}/api/events`, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body: events.map((e) => JSON.stringify(e)).join("\n") });
  expect(res.status).toBe(202);
}

/** A live source the test drives itself: it publishes on the channel and sets the hot values. */
function fakeLive(state: { seq: number }) {
  return (engine: Engine): LiveTopics => ({
    stop() {},
    snapshot: (topics) => ({ seq: state.seq, topics: Object.fromEntries(topics.map((t) => [t, engine.hot.get(`topic:${t}`) ?? null])) }),
    get seq() {
      return state.seq;
    },
    ready: async () => {},
    stats: () => ({ ticks: 0, published: 0, lastFastMs: 0, lastSlowMs: 0, summaryMs: 0, failures: 0 }),
  });
}

/** A WebSocket client with an inbox: `next` waits for the next matching message. */
async function openWs(url: string) {
  const ws = new WebSocket(url);
  cleanups.push(() => ws.close());
  const inbox: Json[] = [];
  let waiter: (() => void) | null = null;
  ws.onmessage = (ev) => {
    inbox.push(JSON.parse(String(ev.data)));
    waiter?.();
  };
  const opened = Promise.withResolvers<void>();
  ws.onopen = () => opened.resolve();
  ws.onerror = () => opened.reject(new Error("ws error"));
  await opened.promise;
  return {
    ws,
    async next(pred: (m: Json) => boolean = () => true): Promise<Json> {
      const deadline = Date.now() + 10_000;
      for (;;) {
        while (inbox.length) {
          const m = inbox.shift()!;
          if (pred(m)) return m;
        }
        if (Date.now() > deadline) throw new Error("timed out waiting for a ws message");
        const { promise, resolve } = Promise.withResolvers<void>();
        const timer = setTimeout(resolve, deadline - Date.now());
        waiter = () => resolve();
        await promise;
        clearTimeout(timer);
        waiter = null;
      }
    },
  };
}

/** Waits for a condition the server reaches asynchronously (a disconnect), polling on timers with a deadline. */
async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Applies live messages to full values as a client would: snapshot replaces, delta/correction merge keys. */
function applyMessage(state: Map<string, Json>, m: Json): void {
  if (m.kind === "snapshot") state.set(m.topic, structuredClone(m.value));
  else state.set(m.topic, { ...(state.get(m.topic) ?? {}), ...structuredClone(m.value) });
}

/** Resolves with the first live message satisfying pred (subscribed before the caller acts). */
function waitLive(engine: Engine, pred: (m: Json) => boolean, timeoutMs = 10_000): Promise<Json> {
  const { promise, resolve, reject } = Promise.withResolvers<Json>();
  const timer = setTimeout(() => (unsub(), reject(new Error("timed out waiting for a live message"))), timeoutMs);
  const unsub = engine.hot.subscribe(LIVE_CHANNEL, (s) => {
    const m = JSON.parse(s) as Json;
    if (pred(m)) {
      clearTimeout(timer);
      unsub();
      resolve(m);
    }
  });
  return promise;
}

describe("GET /api/stream", () => {
  it("sends a snapshot of exactly the requested topics with the ingested totals", async () => {
    const { engine, live, base } = await setup();
    const events = [pageView(), pageView(), pageView({ type: "product_view", productId: "p1" }), pageView({ type: "product_view", productId: "p2" }), pageView({ type: "product_view", productId: "p1" })];
    const seen = [
      waitLive(engine, (m) => m.topic === "products" && m.value.views?.length === 2),
      waitLive(engine, (m) => m.topic === "overview" && m.value.summary?.events.total === events.length),
    ];
    await ingest(base, events);
    await Promise.all(seen);
    await live.ready();
    const sse = await openSse(`${base}/api/stream?topics=overview,products`);
    expect(sse.res.headers.get("content-type")).toStartWith("text/event-stream");
    const snap = await sse.next();
    expect(snap.event).toBe("snapshot");
    expect(Number(snap.id)).toBe(snap.data!.seq);
    expect(Object.keys(snap.data!.topics).sort()).toEqual(["overview", "products"]);
    expect(sse.retry).toBeGreaterThan(0);
    // independent counts
    const byType: Record<string, number> = {};
    const views = new Map<string, number>();
    for (const e of events) {
      byType[e.type] = (byType[e.type] ?? 0) + 1;
      if (e.type === "product_view") views.set(e.productId, (views.get(e.productId) ?? 0) + 1);
    }
    const expectedViews = [...views].map(([productId, value]) => ({ productId, value })).sort((a, b) => b.value - a.value || (a.productId < b.productId ? -1 : 1));
    const overview = snap.data!.topics.overview;
    expect(overview.summary.events.total).toBe(events.length);
    expect(overview.summary.events.page_view).toBe(byType.page_view);
    expect(overview.summary.events.product_view).toBe(byType.product_view);
    expect(snap.data!.topics.products.views).toEqual(expectedViews);
    expect(overview.series).toHaveLength(60);
    expect(overview.series.reduce((s: number, p: Json) => s + p.value, 0)).toBe(events.length);
    expect(overview.freshness.watermark === null || typeof overview.freshness.watermark === "string").toBe(true);
    sse.close();
  });

  it("answers an unknown topic with a 400 JSON error", async () => {
    const { base } = await setup();
    const res = await fetch(`${base}/api/stream?topics=overview,nope`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as Json;
    expect(body.error.code).toBe("invalid_parameter");
    expect(body.error.message).toContain("nope");
  });

  it("delivers a delta soon after an ingest", async () => {
    const { base, live } = await setup({ fastMs: 100, slowMs: 1000 });
    await live.ready();
    const sse = await openSse(`${base}/api/stream?topics=overview`);
    const snap = await sse.next((e) => e.event === "snapshot");
    const before = snap.data!.topics.overview.summary.events.total as number;
    const t0 = performance.now();
    await ingest(base, [pageView()]);
    const delta = await sse.next((e) => e.event === "delta" && e.data!.value.summary?.events.total === before + 1);
    const ms = performance.now() - t0;
    console.log(`POST -> SSE delta latency: ${ms.toFixed(1)} ms`, JSON.stringify(live.stats()));
    expect(delta.data!.topic).toBe("overview");
    expect(delta.data!.kind).toBe("delta");
    expect(Number(delta.id)).toBe(delta.data!.seq);
    expect(Number(delta.id)).toBeGreaterThan(Number(snap.id));
    sse.close();
  });

  it("replays exactly the missed messages after Last-Event-ID and resyncs a too-old id", async () => {
    const { base, engine, live } = await setup();
    await live.ready();
    const all: Json[] = [];
    const unsub = engine.hot.subscribe(LIVE_CHANNEL, (s) => all.push(JSON.parse(s)));
    cleanups.push(unsub);
    const sse = await openSse(`${base}/api/stream`);
    const snap = await sse.next();
    expect(snap.event).toBe("snapshot");
    let arrived = waitLive(engine, (m) => m.topic === "overview" && m.value.summary?.events.total === 2);
    await ingest(base, [pageView(), pageView()]);
    await arrived;
    const d = await sse.next((e) => e.event === "delta" && e.data!.topic === "overview" && e.data!.value.summary?.events.total === 2);
    const lastSeen = Number(d.id);
    sse.close();

    arrived = waitLive(engine, (m) => m.topic === "overview" && m.value.summary?.events.total === 5);
    await ingest(base, [pageView(), pageView(), pageView()]);
    await arrived;
    const expected = all.filter((m) => m.seq > lastSeen);
    expect(expected.length).toBeGreaterThan(0);
    const before = streamStats().replays;
    const again = await openSse(`${base}/api/stream`, { "last-event-id": String(lastSeen) });
    const got: SseEvent[] = [];
    while (got.length < expected.length) got.push(await again.next((e) => e.event !== "heartbeat"));
    expect(got.map((e) => Number(e.id))).toEqual(expected.map((m) => m.seq));
    expect(got.map((e) => e.data)).toEqual(expected);
    expect(got.every((e) => e.event === (e.data!.kind === "correction" ? "correction" : "delta"))).toBe(true);
    expect(streamStats().replays).toBe(before + 1);
    again.close();

    const old = await openSse(`${base}/api/stream?topics=funnel&lastEventId=1`);
    const resync = await old.next();
    expect(resync.event).toBe("snapshot");
    expect(Object.keys(resync.data!.topics)).toEqual(["funnel"]);
    old.close();
  });

  it("sends heartbeats every heartbeatMs", async () => {
    const { base, live } = await setup({ streams: { heartbeatMs: 30 } });
    await live.ready();
    const sse = await openSse(`${base}/api/stream?topics=campaigns`);
    const hb = await sse.next((e) => e.event === "heartbeat");
    expect(typeof hb.data!.t).toBe("string");
    expect(hb.id).toBeNull();
    const before = streamStats().sseClients;
    sse.close();
    // the abort reaches the server asynchronously; the client must then be forgotten
    await until(() => streamStats().sseClients === before - 1);
  });

  it("keeps a quiet stream open past the server's idle timeout", async () => {
    const src = { seq: 1 };
    const { base, engine } = await setup({ live: fakeLive(src), idleTimeout: 1, streams: { heartbeatMs: 60_000 } });
    const sse = await openSse(`${base}/api/stream?topics=inventory`);
    expect((await sse.next()).event).toBe("snapshot");
    // the behaviour under test is the passage of time: outlast Bun's 1 s idle timeout with a silent stream
    await new Promise((r) => setTimeout(r, 2500));
    src.seq++;
    engine.hot.publish(LIVE_CHANNEL, JSON.stringify({ topic: "inventory", seq: src.seq, kind: "delta", value: { items: [] } }));
    const d = await sse.next();
    expect(d.event).toBe("delta");
    expect(d.data!.seq).toBe(src.seq);
    sse.close();
  });

  it("resyncs then disconnects a client that never reads, with a bounded queue, while a fast client keeps up", async () => {
    const maxQueue = 8;
    const maxResyncs = 2;
    // a controllable live source: the test publishes large messages itself
    let seq = 1;
    const fake = (engine: Engine): LiveTopics => ({
      stop() {},
      snapshot: (topics) => ({ seq, topics: Object.fromEntries(topics.map((t) => [t, engine.hot.get(`topic:${t}`) ?? null])) }),
      get seq() {
        return seq;
      },
      ready: async () => {},
      stats: () => ({ ticks: 0, published: 0, lastFastMs: 0, lastSlowMs: 0, summaryMs: 0, failures: 0 }),
    });
    const { base, engine, app } = await setup({ live: fake, streams: { maxQueue, maxResyncs } });
    const s0 = streamStats();

    // the slow client: a raw socket that stops reading right after the request
    const slow = connect({ host: "127.0.0.1", port: app.port });
    cleanups.push(() => void slow.destroy());
    const slowConnected = Promise.withResolvers<void>();
    slow.once("connect", () => slowConnected.resolve());
    await slowConnected.promise;
    slow.write(`GET /api/stream?topics=overview HTTP/1.1\r\nHost: x\r\n\r\n`);
    slow.pause();

    const fast = await openSse(`${base}/api/stream?topics=overview`);
    expect((await fast.next()).event).toBe("snapshot");
    expect(streamStats().sseClients).toBe(s0.sseClients + 2);

    const pad = "x".repeat(64 * 1024);
    let sent = 0;
    let maxQueued = 0;
    while (streamStats().drops === s0.drops && sent < 2000) {
      seq++;
      const value = { pad, n: seq };
      engine.hot.set("topic:overview", value);
      engine.hot.publish(LIVE_CHANNEL, JSON.stringify({ topic: "overview", seq, kind: "delta", value }));
      sent++;
      maxQueued = Math.max(maxQueued, streamStats().queued);
      // pace by the fast client: it must receive every message in order, never a resync
      const e = await fast.next((x) => x.event !== "heartbeat");
      expect(e.event).toBe("delta");
      expect(e.data!.seq).toBe(seq);
    }
    const s1 = streamStats();
    console.log(`slow client dropped after ${sent} messages of 64 KiB; resyncs ${s1.resyncs - s0.resyncs}, max queued ${maxQueued}`);
    expect(s1.drops).toBe(s0.drops + 1);
    expect(s1.resyncs - s0.resyncs).toBe(maxResyncs + 1);
    expect(s1.sseClients).toBe(s0.sseClients + 1);
    // at most one client's full queue plus the fast client's one message
    expect(maxQueued).toBeLessThanOrEqual(maxQueue + 1);
    expect(s1.maxQueued).toBeLessThanOrEqual(maxQueue);
    fast.close();
  });
});

describe("GET /ws", () => {
  it("sends a snapshot, a delta after an ingest, and a new snapshot on subscribe", async () => {
    const { base, live, engine } = await setup();
    await live.ready();
    const { ws, next } = await openWs(`${base.replace("http", "ws")}/ws?topics=overview`);
    const snap = await next(() => true);
    expect(snap.event).toBe("snapshot");
    expect(snap.id).toBe(snap.data.seq);
    expect(Object.keys(snap.data.topics)).toEqual(["overview"]);
    const before = snap.data.topics.overview.summary.events.total as number;

    const productsSeen = waitLive(engine, (m) => m.topic === "products" && m.value.views?.length === 1);
    const t0 = performance.now();
    await ingest(base, [pageView(), pageView({ type: "product_view", productId: "p9" })]);
    const delta = await next((m) => m.event === "delta" && m.data.value.summary?.events.total === before + 2);
    console.log(`POST -> WS delta latency: ${(performance.now() - t0).toFixed(1)} ms`);
    expect(delta.data.topic).toBe("overview");
    expect(delta.id).toBe(delta.data.seq);

    // resume from the snapshot: the delta already received comes again (replayed from the ring)
    ws.send(JSON.stringify({ resume: snap.id }));
    const again = await next((m) => m.id === delta.id);
    expect(again).toEqual(delta);

    await productsSeen;
    ws.send(JSON.stringify({ subscribe: ["funnel", "products"] }));
    const snap2 = await next((m) => m.event === "snapshot");
    expect(Object.keys(snap2.data.topics).sort()).toEqual(["funnel", "products"]);
    expect(snap2.data.topics.products.views).toEqual([{ productId: "p9", value: 1 }]);

    ws.send(JSON.stringify({ subscribe: ["bogus"] }));
    const err = await next((m) => m.event === "error");
    expect(err.data.error.code).toBe("invalid_parameter");

    // an unknown topic in the URL is refused before the upgrade
    const bad = new WebSocket(`${base.replace("http", "ws")}/ws?topics=bogus`);
    const outcome = Promise.withResolvers<string>();
    bad.onopen = () => outcome.resolve("open");
    bad.onerror = () => outcome.resolve("error");
    bad.onclose = () => outcome.resolve("close");
    expect(await outcome.promise).not.toBe("open");
  });

  it("stops sending to a WebSocket client that does not read, then drops it, while a fast client keeps up", async () => {
    const maxQueue = 8;
    const maxResyncs = 2;
    const src = { seq: 1 };
    const { base, engine, app } = await setup({ live: fakeLive(src), streams: { maxQueue, maxResyncs, wsMaxBufferedBytes: 256 * 1024 } });
    const s0 = streamStats();
    const slow = connect({ host: "127.0.0.1", port: app.port });
    cleanups.push(() => void slow.destroy());
    const upgraded = Promise.withResolvers<void>();
    slow.once("data", () => upgraded.resolve()); // the 101 response
    slow.write(
      `GET /ws?topics=overview HTTP/1.1\r\nHost: 127.0.0.1:${app.port}\r\n` +
        "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    await upgraded.promise;
    slow.pause();
    const fast = await openWs(`${base.replace("http", "ws")}/ws?topics=overview`);
    expect((await fast.next()).event).toBe("snapshot");
    await until(() => streamStats().wsClients === s0.wsClients + 2);

    const pad = "x".repeat(64 * 1024);
    let sent = 0;
    while (streamStats().drops === s0.drops && sent < 3000) {
      src.seq++;
      const value = { pad, n: src.seq };
      engine.hot.set("topic:overview", value);
      engine.hot.publish(LIVE_CHANNEL, JSON.stringify({ topic: "overview", seq: src.seq, kind: "delta", value }));
      sent++;
      const m = await fast.next((x) => x.event !== "heartbeat");
      expect(m.event).toBe("delta");
      expect(m.id).toBe(src.seq);
    }
    const s1 = streamStats();
    console.log(`slow WebSocket client dropped after ${sent} messages of 64 KiB; resyncs ${s1.resyncs - s0.resyncs}`);
    expect(s1.drops).toBe(s0.drops + 1);
    expect(s1.resyncs - s0.resyncs).toBe(maxResyncs + 1);
    expect(s1.wsClients).toBe(s0.wsClients + 1);
  });
});

describe("live topics", () => {
  it("publishes deltas that rebuild the full values, equal to the REST answers", async () => {
    const { base, engine, live } = await setup();
    const state = new Map<string, Json>();
    const unsub = engine.hot.subscribe(LIVE_CHANNEL, (s) => applyMessage(state, JSON.parse(s)));
    cleanups.push(unsub);
    await live.ready();
    const snap = live.snapshot([...TOPICS]);
    for (const t of TOPICS) state.set(t, structuredClone(snap.topics[t] as Json));
    const events = [
      pageView({ utmSource: "mail" }),
      pageView({ type: "product_view", productId: "p1", price: 5 }),
      pageView({ type: "add_to_cart", productId: "p1", price: 5, quantity: 2 }),
      { eventId: `inv-${Math.random()}`, type: "inventory_update", timestamp: new Date().toISOString(), productId: "p1", stock: 3 },
    ];
    const seen = [
      waitLive(engine, (m) => m.topic === "inventory" && m.value.items?.length === 1),
      waitLive(engine, (m) => m.topic === "funnel" && m.value.sessions >= 1),
      waitLive(engine, (m) => m.topic === "campaigns" && m.value.items?.some((i: Json) => i.source === "mail")),
      waitLive(engine, (m) => m.topic === "products" && m.value.carts?.length === 1),
    ];
    await ingest(base, events);
    await Promise.all(seen);
    const seq = live.seq;
    for (const t of TOPICS) expect(state.get(t)).toEqual(engine.hot.get(`topic:${t}`) as Json);
    // same answers through REST, read while no newer message has been published
    const [funnel, campaigns, inventory, carts] = await Promise.all([
      fetch(`${base}/api/funnel`).then((r) => r.json()),
      fetch(`${base}/api/campaigns`).then((r) => r.json()),
      fetch(`${base}/api/inventory?lowStock=10`).then((r) => r.json()),
      fetch(`${base}/api/products/top?by=carts&limit=10`).then((r) => r.json()),
    ]);
    if (live.seq === seq) {
      expect(state.get("funnel")).toEqual(funnel as Json);
      expect(state.get("campaigns")).toEqual(campaigns as Json);
    }
    expect(inventory).toEqual({ items: [{ productId: "p1", stock: 3, unitsSold: 0 }] });
    expect(state.get("inventory")).toEqual(inventory as Json);
    expect((carts as Json).items).toEqual([{ productId: "p1", value: 1 }]);
    expect(state.get("products")!.carts).toEqual((carts as Json).items);
    expect(state.get("performance")!.series).toHaveLength(60);
  });

  it("publishes a correction when a late event updates a window that had already fired", async () => {
    // partitions not heard from stop holding the watermark back after the idle timeout
    const { base, engine, live } = await setup({ engineArgs: ["--idle-timeout", "200ms"] });
    await live.ready();
    const now = Date.now();
    // one session, so one partition: the watermark moves to now - 5 s (out-of-orderness)
    const on = waitLive(engine, (m) => m.topic === "overview" && m.value.summary?.events.total === 1);
    await ingest(base, [pageView({ sessionId: "late-s", timestamp: new Date(now).toISOString() })]);
    await on;
    await until(() => engine.aggregator.watermark.value >= now - 5000);
    const corr = waitLive(engine, (m) => m.kind === "correction" && m.topic === "overview");
    await ingest(base, [pageView({ sessionId: "late-s", timestamp: new Date(now - 30_000).toISOString() })]);
    const m = await corr;
    expect(m.value.summary.late.merged).toBe(1);
    expect(m.value.summary.events.total).toBe(2);
    const ov = engine.hot.get("topic:overview") as Json;
    expect(ov.freshness.processingLagMs).toBeGreaterThanOrEqual(0);
  });
});
