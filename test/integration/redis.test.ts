// Redis HotCache against a real Redis (scripts/services.sh up redis): values across instances, pub/sub, outage.
// Outages go through a TCP proxy started here, so the shared server is never stopped; every wait is bounded.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import Redis from "ioredis";
import type { Socket, TCPSocketListener } from "bun";
import { createCircuitBreaker, type BreakerState } from "../../src/store/circuit-breaker.ts";
import { createRedisHotCache, type RedisHotCache, type RedisHotCacheOptions } from "../../src/store/redis-hot-cache.ts";
import { tcpReachable } from "../helpers.ts";

const REDIS_PORT = 6379;
const URL = `redis://127.0.0.1:${REDIS_PORT}`;
const PREFIX = `rtae-test:${crypto.randomUUID().slice(0, 8)}:`;
const WAIT_MS = 10_000;
const TEST_MS = 20_000;

const reachable = () => tcpReachable(REDIS_PORT);
const skip = !(await reachable()) && !process.env.CI;

// ---------------------------------------------------------------- helpers

/** Resolves when `cond` holds (checked every 10 ms); rejects after the deadline. */
async function until(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(10); // polling interval of a bounded wait, not a synchronisation sleep
  }
}

/** A promise for the breaker's next transition to `to`, rejected after the deadline. */
function nextState(breaker: ReturnType<typeof createCircuitBreaker>, to: BreakerState, ms = WAIT_MS): Promise<void> {
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  const timer = setTimeout(() => {
    off();
    reject(new Error(`breaker did not become ${to} within ${ms} ms`));
  }, ms);
  const off = breaker.onStateChange((state) => {
    if (state !== to) return;
    clearTimeout(timer);
    off();
    resolve();
  });
  return promise;
}

const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);

const caches: RedisHotCache[] = [];
function cache(extra: Partial<RedisHotCacheOptions> = {}): RedisHotCache {
  const c = createRedisHotCache({ url: URL, prefix: PREFIX, refreshIntervalMs: 250, maxBackoffMs: 200, ...extra });
  caches.push(c);
  return c;
}

/** TCP proxy to Redis that can be closed (dropping every connection) and reopened on the same port. */
function createProxy(target: number) {
  // `early` holds what the client sent before the upstream connection was open
  type Pipe = { peer: Socket<Pipe> | null; pending: Uint8Array[]; early: Uint8Array[] };
  let listener: TCPSocketListener<Pipe> | null = null;
  let port = 0;
  const sockets = new Set<Socket<Pipe>>();

  function forward(to: Socket<Pipe>, data: Uint8Array): void {
    if (to.data.pending.length > 0) {
      to.data.pending.push(data);
      return;
    }
    const n = to.write(data);
    if (n < data.length) to.data.pending.push(data.subarray(Math.max(n, 0)));
  }
  function drain(s: Socket<Pipe>): void {
    while (s.data.pending.length > 0) {
      const chunk = s.data.pending[0]!;
      const n = s.write(chunk);
      if (n < chunk.length) {
        s.data.pending[0] = chunk.subarray(Math.max(n, 0));
        return;
      }
      s.data.pending.shift();
    }
  }
  function hangUp(s: Socket<Pipe>): void {
    sockets.delete(s);
    const peer = s.data.peer;
    s.data.peer = null;
    if (peer && sockets.has(peer)) {
      sockets.delete(peer);
      peer.end();
    }
  }

  function open(): void {
    listener = Bun.listen<Pipe>({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(client) {
          client.data = { peer: null, pending: [], early: [] };
          sockets.add(client);
          Bun.connect<Pipe>({
            hostname: "127.0.0.1",
            port: target,
            socket: {
              open(up) {
                up.data = { peer: client, pending: [], early: [] };
                sockets.add(up);
                client.data.peer = up;
                for (const d of client.data.early) forward(up, d);
                client.data.early = [];
              },
              data(up, d) {
                if (up.data.peer) forward(up.data.peer, new Uint8Array(d));
              },
              drain,
              close: hangUp,
              error: hangUp,
            },
          }).catch(() => client.end());
        },
        data(client, d) {
          const copy = new Uint8Array(d);
          if (client.data.peer) forward(client.data.peer, copy);
          else client.data.early.push(copy);
        },
        drain,
        close: hangUp,
        error: hangUp,
      },
    });
    port = listener.port;
  }

  return {
    open,
    get port() {
      return port;
    },
    get connections() {
      return sockets.size;
    },
    close(): void {
      listener?.stop(true);
      listener = null;
      for (const s of [...sockets]) s.terminate();
      sockets.clear();
    },
  };
}

const admin = skip ? null : new Redis(URL, { lazyConnect: true, maxRetriesPerRequest: 1 });

async function keysOfRun(): Promise<string[]> {
  const out: string[] = [];
  let cursor = "0";
  do {
    const [next, keys] = await admin!.scan(cursor, "MATCH", `${PREFIX}*`, "COUNT", 500);
    cursor = next;
    out.push(...keys);
  } while (cursor !== "0");
  return out;
}

/** Connections the server knows under a name starting with `name`. */
async function clientsNamed(name: string): Promise<number> {
  const list = (await admin!.client("LIST")) as string;
  return list.split("\n").filter((line) => line.includes(` name=${name}`)).length;
}

beforeAll(async () => {
  if (skip) return;
  process.on("unhandledRejection", onUnhandled);
  process.on("uncaughtException", onUnhandled);
  await admin!.connect();
});

afterAll(async () => {
  if (skip) return;
  await Promise.all(caches.map((c) => c.close()));
  const keys = await keysOfRun();
  if (keys.length > 0) await admin!.del(...keys);
  expect(await keysOfRun()).toEqual([]);
  await admin!.quit();
  process.off("unhandledRejection", onUnhandled);
  process.off("uncaughtException", onUnhandled);
  expect(unhandled).toEqual([]);
});

// ---------------------------------------------------------------- tests

describe.skipIf(skip)("redis hot cache", () => {
  it("shares values between instances and stores them as JSON with a TTL", async () => {
    const a = cache({ instanceId: "a1" });
    const b = cache({ instanceId: "b1" });
    await Promise.all([a.ready(), b.ready()]);

    const overview = { events: { total: 42 }, revenue: 19.99, topics: ["x", "y"] };
    a.set("overview", overview);
    expect(a.get("overview")).toBe(overview); // synchronous, from the local copy
    await until(() => JSON.stringify(b.get("overview")) === JSON.stringify(overview), "b to see a's overview");

    b.set("products", [{ productId: "p7", value: 3 }]);
    await until(() => JSON.stringify(a.get("products")) === '[{"productId":"p7","value":3}]', "a to see b's products");

    // the later writer wins on both sides
    a.set("overview", { events: { total: 43 } });
    await until(() => (b.get("overview") as { events: { total: number } }).events.total === 43, "b to see the update");

    expect(JSON.parse((await admin!.get(`${PREFIX}topic:overview`))!)).toEqual({ events: { total: 43 } });
    const ttl = await admin!.pttl(`${PREFIX}topic:overview`);
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(ttl).toBeLessThanOrEqual(3_600_000);

    // a new instance loads the current values before ready() resolves
    const c = cache({ instanceId: "c1" });
    await c.ready();
    expect(c.get("overview")).toEqual({ events: { total: 43 } });
    expect(c.get("products")).toEqual([{ productId: "p7", value: 3 }]);
    expect(c.get("missing")).toBeUndefined();
    expect(c.stats().ownTopics).toBe(0);
    expect(a.stats().echoesSkipped).toBeGreaterThan(0);
  }, TEST_MS);

  it("writes its own value again when Redis lost it (restart without persistence, expired TTL)", async () => {
    const a = cache({ instanceId: "a5" });
    await a.ready();
    a.set("inventory", { low: ["p1", "p2"] });
    const key = `${PREFIX}topic:inventory`;
    await until(() => a.stats().writes >= 1, "the first write");
    expect(await admin!.del(key)).toBe(1);
    const deadline = Date.now() + WAIT_MS;
    while ((await admin!.get(key)) === null) {
      if (Date.now() > deadline) throw new Error("the lost value was not written again");
      await Bun.sleep(10);
    }
    expect(JSON.parse((await admin!.get(key))!)).toEqual({ low: ["p1", "p2"] });
    expect(a.stats().writes).toBeGreaterThanOrEqual(2);
  }, TEST_MS);

  it("delivers a publish once to subscribers on the publishing instance and once on the other", async () => {
    const a = cache({ instanceId: "a2" });
    const b = cache({ instanceId: "b2" });
    await Promise.all([a.ready(), b.ready()]);
    const onA: string[] = [];
    const onB: string[] = [];
    a.subscribe("deltas", (m) => onA.push(m));
    b.subscribe("deltas", (m) => onB.push(m));
    // the subscriber connection confirms asynchronously: wait until b hears a probe from a
    await until(() => {
      if (onB.length > 0) return true;
      a.publish("deltas", "probe");
      return false;
    }, "b's subscription");
    onA.length = 0;
    onB.length = 0;

    const sent = Array.from({ length: 50 }, (_, i) => `m${i}:${"x".repeat(i)}\nline2`);
    for (const m of sent) a.publish("deltas", m);
    expect(onA).toEqual(sent); // delivered locally, synchronously
    await until(() => onB.length >= sent.length, "b to receive 50 messages");
    // fence: b publishes after it saw everything; once a hears the fence, any echo of a's own messages would have arrived
    b.publish("deltas", "fence");
    await until(() => onA.includes("fence"), "a to receive the fence");
    expect(onA).toEqual([...sent, "fence"]);
    expect(onB).toEqual([...sent, "fence"]);
  }, TEST_MS);

  it("stops delivery to an unsubscribed callback and keeps the others", async () => {
    const a = cache({ instanceId: "a3" });
    const b = cache({ instanceId: "b3" });
    await Promise.all([a.ready(), b.ready()]);
    const kept: string[] = [];
    const dropped: string[] = [];
    const gone: string[] = [];
    const fence: string[] = [];
    b.subscribe("ch1", (m) => kept.push(m));
    const off1 = b.subscribe("ch1", (m) => dropped.push(m));
    const off2 = b.subscribe("ch2", (m) => gone.push(m));
    b.subscribe("fence", (m) => fence.push(m));
    await until(() => {
      if (fence.length > 0 && kept.length > 0 && gone.length > 0) return true;
      a.publish("fence", "probe");
      a.publish("ch1", "probe");
      a.publish("ch2", "probe");
      return false;
    }, "b's subscriptions");
    kept.length = dropped.length = gone.length = fence.length = 0;

    off1();
    off1(); // idempotent
    off2();
    a.publish("ch1", "after-1");
    a.publish("ch2", "after-2");
    b.publish("ch1", "local-after");
    a.publish("fence", "done"); // one subscriber connection delivers in publish order
    await until(() => fence.includes("done"), "the fence");
    expect(kept).toEqual(["local-after", "after-1"]);
    expect(dropped).toEqual([]);
    expect(gone).toEqual([]);
  }, TEST_MS);

  it("keeps working in memory through a Redis outage and catches up when it ends", async () => {
    const proxy = createProxy(REDIS_PORT);
    proxy.open();
    const breaker = createCircuitBreaker({ failureThreshold: 2, resetTimeoutMs: 300 });
    const a = cache({ url: `redis://127.0.0.1:${proxy.port}`, instanceId: "a4", breaker, commandTimeoutMs: 1000 });
    const b = cache({ instanceId: "b4" });
    await Promise.all([a.ready(), b.ready()]);
    const onA: string[] = [];
    const onB: string[] = [];
    a.subscribe("deltas", (m) => onA.push(m));
    b.subscribe("deltas", (m) => onB.push(m));
    await until(() => {
      if (onA.length > 0 && onB.length > 0) return true;
      a.publish("deltas", "probe");
      b.publish("deltas", "probe");
      return false;
    }, "both subscriptions");
    a.set("stock", { v: 1 });
    await until(() => JSON.stringify(b.get("stock")) === '{"v":1}', "b to see stock v1");

    // outage: every connection of a drops and reconnects are refused
    const opened = nextState(breaker, "open");
    proxy.close();
    a.set("stock", { v: 2 });
    await opened;
    const t0 = Date.now();

    // local operation continues while the breaker is open
    onA.length = 0;
    a.set("stock", { v: 3 });
    a.set("only-a", "set during the outage");
    a.publish("deltas", "local-during-outage");
    expect(a.get("stock")).toEqual({ v: 3 });
    expect(onA).toEqual(["local-during-outage"]);
    expect(a.stats().breaker).toBe("open");
    expect(a.stats().publishDropped).toBeGreaterThan(0);
    b.set("only-b", "set during the outage");
    // the outage is real only once a reconnect attempt has been refused (reported as an error event, not thrown)
    await until(() => a.stats().errors >= 3, "three refused reconnects");
    expect(a.stats().lastError).toContain("ECONNREFUSED");
    expect(JSON.parse((await admin!.get(`${PREFIX}topic:stock`))!)).toEqual({ v: 1 });

    // recovery: the breaker closes, a's latest values are re-written, b's are fetched, delivery resumes
    const closed = nextState(breaker, "closed");
    proxy.open();
    await closed;
    const recoveredMs = Date.now() - t0;
    await until(() => JSON.stringify(b.get("stock")) === '{"v":3}', "b to see stock v3 after the catch-up");
    expect(b.get("only-a")).toBe("set during the outage");
    expect(JSON.parse((await admin!.get(`${PREFIX}topic:stock`))!)).toEqual({ v: 3 });
    await until(() => a.get("only-b") === "set during the outage", "a to see b's value after the catch-up");

    onA.length = 0;
    onB.length = 0;
    await until(() => {
      if (onA.includes("from-b") && onB.includes("from-a")) return true;
      a.publish("deltas", "from-a");
      b.publish("deltas", "from-b");
      return false;
    }, "cross-instance delivery to resume");
    // nothing published during the outage is replayed: deltas are not buffered, values are
    expect(onB).not.toContain("local-during-outage");
    const st = a.stats();
    expect(st.breaker).toBe("closed");
    expect(st.catchUps).toBeGreaterThanOrEqual(1);
    expect(st.reconnects).toBeGreaterThanOrEqual(1);
    expect(st.pendingWrites).toBe(0);
    expect(st.command).toBe("ready");
    expect(st.subscriber).toBe("ready");
    console.log(`outage: breaker closed ${recoveredMs} ms after it opened; a stats ${JSON.stringify(st)}`);

    expect(await clientsNamed(`${PREFIX}a4:`)).toBe(2);
    await a.close();
    expect(a.stats().command).toBe("end");
    expect(a.stats().subscriber).toBe("end");
    const deadline = Date.now() + WAIT_MS;
    while ((await clientsNamed(`${PREFIX}a4:`)) > 0) {
      if (Date.now() > deadline) throw new Error("a's connections are still in CLIENT LIST after close()");
      await Bun.sleep(10);
    }
    proxy.close();
  }, TEST_MS);

  it("reports ready() failure within its bound when Redis cannot be reached, without unhandled errors", async () => {
    const proxy = createProxy(REDIS_PORT);
    proxy.open();
    const port = proxy.port;
    proxy.close(); // nothing listens there now
    const c = cache({ url: `redis://127.0.0.1:${port}`, readyTimeoutMs: 400 });
    const t0 = Date.now();
    await expect(c.ready()).rejects.toThrow(/not ready after 400 ms/);
    expect(Date.now() - t0).toBeLessThan(2000);
    c.set("x", 1);
    expect(c.get("x")).toBe(1);
    const got: string[] = [];
    c.subscribe("d", (m) => got.push(m));
    c.publish("d", "local");
    expect(got).toEqual(["local"]);
    expect(c.stats().errors).toBeGreaterThan(0);
    expect(c.stats().lastError).toContain("ECONNREFUSED");
    await c.close();
    expect(c.stats().command).toBe("end");
  }, TEST_MS);

  it("refuses the channel reserved for value notifications", () => {
    const c = cache();
    expect(() => c.subscribe("values", () => {})).toThrow(RangeError);
    expect(() => c.publish("values", "x")).toThrow(RangeError);
  });
});
