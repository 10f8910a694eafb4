// Self-tests of the distributed-test harness: the TCP proxy (byte-exact, backpressure, block/unblock against
// local servers, the real Redis and Cassandra), the private redis-server, and rtae processes in embedded mode
// checked against the ground-truth oracle.

import { afterAll, describe, expect, it } from "bun:test";
import cassandra from "cassandra-driver";
import { createHash } from "node:crypto";
import type { Socket } from "bun";
import { answerMismatches, buildDataset, expectedOf, secondRange } from "./ground-truth.ts";
import { tcpReachable } from "./helpers.ts";
import { redisCommand, startPrivateRedis } from "./private-redis.ts";
import { getJson, postNdjson, runRtae, spawnRtae, uniqueName, waitFor, waitForDecided, type RtaeProcess } from "./rtae-process.ts";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.ts";

const cassandraUp = await tcpReachable(9042);
const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const f of cleanups.reverse()) await f();
});

const BIG = 64 * 1024 * 1024; // above what the loopback socket buffers can hold between two stalled ends
const bigPayload = () => {
  const b = new Uint8Array(BIG);
  for (let i = 0; i < BIG; i += 65536) crypto.getRandomValues(b.subarray(i, i + 65536));
  return b;
};
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Writes all of `bytes` honouring backpressure: call pump on open and on drain. */
function writer(bytes: Uint8Array) {
  let off = 0;
  return (s: Socket<any>) => {
    while (off < bytes.byteLength) {
      const want = Math.min(1 << 20, bytes.byteLength - off);
      const n = s.write(bytes, off, want);
      if (n > 0) off += n;
      if (n < want) return;
    }
  };
}

/** Hashes what a socket receives; `done` resolves with the digest once BIG bytes arrived. */
function sink() {
  const h = createHash("sha256");
  let n = 0;
  const done = Promise.withResolvers<string>();
  return { done: done.promise, data: (_s: unknown, d: Uint8Array) => { h.update(d); if ((n += d.byteLength) === BIG) done.resolve(h.digest("hex")); } };
}

/** A client through the proxy: resolves "closed" when the peer closes or resets, and collects what it receives. */
async function client(port: number) {
  const got: Uint8Array[] = [];
  const closed = Promise.withResolvers<void>();
  const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data: (_s, d) => void got.push(new Uint8Array(d)), close: () => closed.resolve(), error: () => closed.resolve() } });
  return { s, got, closed: closed.promise, text: () => Buffer.concat(got).toString() };
}

describe("tcp proxy", () => {
  const echo = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: (s, d) => void s.write(d) } });
  cleanups.push(() => echo.stop(true));
  let proxy: TcpProxy;

  it("passes 64 MB each way byte-exact, and stops reading from a sender while its receiver does not read", async () => {
    const up = bigPayload();
    const down = bigPayload();
    // both ends write everything at once and read nothing until the proxy has settled
    const serverSock = Promise.withResolvers<Socket<any>>();
    const atServer = sink();
    const serverWrite = writer(down);
    const server = Bun.listen({
      hostname: "127.0.0.1", port: 0,
      socket: { open(s) { s.pause(); serverSock.resolve(s); serverWrite(s); }, drain: serverWrite, data: atServer.data },
    });
    cleanups.push(() => server.stop(true));
    const p = await startTcpProxy({ targetPort: server.port });
    cleanups.push(() => p.stop());
    const atClient = sink();
    const clientWrite = writer(up);
    const c = await Bun.connect({
      hostname: "127.0.0.1", port: p.port,
      socket: { open(s) { s.pause(); clientWrite(s); }, drain: clientWrite, data: atClient.data },
    });
    let last = -1;
    await waitFor(() => {
      const st = p.stats();
      const moved = st.bytesUp + st.bytesDown;
      const settled = moved > 0 && moved === last;
      last = moved;
      return settled;
    }, 20_000, "the proxy to stop reading", 300);
    // without backpressure the proxy would have read (and queued) all of both payloads by now
    expect(p.stats().bytesUp).toBeLessThan(BIG / 2);
    expect(p.stats().bytesDown).toBeLessThan(BIG / 2);
    (await serverSock.promise).resume();
    c.resume();
    expect(await atServer.done).toBe(sha(up));
    expect(await atClient.done).toBe(sha(down));
    expect(p.stats()).toMatchObject({ bytesUp: BIG, bytesDown: BIG, accepted: 1 });
    c.end();
  }, 60_000);

  it("resets open and new connections while blocked and forwards again after unblock", async () => {
    proxy = await startTcpProxy({ targetPort: echo.port });
    cleanups.push(() => proxy.stop());
    const a = await client(proxy.port);
    a.s.write("hello");
    await waitFor(() => a.text() === "hello", 5000, "echo through the proxy");

    proxy.block();
    expect(proxy.blocked).toBe(true);
    await a.closed;
    const b = await client(proxy.port).catch(() => null);
    if (b) {
      b.s.write("anyone?");
      await b.closed;
      expect(b.text()).toBe("");
    }

    proxy.unblock();
    const c = await client(proxy.port);
    c.s.write("again");
    await waitFor(() => c.text() === "again", 5000, "echo after unblock");
    c.s.end();
    expect(proxy.stats().reset).toBeGreaterThanOrEqual(b ? 2 : 1);
  });

  it("in blackhole mode holds connections without answering, and resets them on unblock", async () => {
    proxy.block("blackhole");
    const a = await client(proxy.port);
    a.s.write("lost");
    const answered = await Promise.race([waitFor(() => a.got.length > 0, 300, "").then(() => true, () => false), a.closed.then(() => true)]);
    expect(answered).toBe(false);
    proxy.unblock();
    await a.closed;
    expect(a.text()).toBe("");
    const b = await client(proxy.port);
    b.s.write("back");
    await waitFor(() => b.text() === "back", 5000, "echo after blackhole");
    b.s.end();
  });

  it("fronts the real Redis: PING and a 4 MB value pass, block fails the client, unblock recovers", async () => {
    if (!(await tcpReachable(6379))) throw new Error("Redis is not running on 6379");
    const p = await startTcpProxy({ targetPort: 6379 });
    cleanups.push(() => p.stop());
    expect(await redisCommand(p.port, ["PING"])).toBe("+PONG");
    const key = uniqueName("harness");
    const value = "x".repeat(4 * 1024 * 1024);
    expect(await redisCommand(p.port, ["SET", key, value, "PX", "60000"])).toBe("+OK");
    expect(await redisCommand(p.port, ["GET", key], 10_000)).toBe(`$${value.length}\r\n${value}`);
    await redisCommand(p.port, ["DEL", key]);
    p.block();
    await expect(redisCommand(p.port, ["PING"])).rejects.toThrow();
    p.unblock();
    expect(await redisCommand(p.port, ["PING"])).toBe("+PONG");
  });

  it.skipIf(!cassandraUp)("fronts the real Cassandra: the driver's traffic goes through it and fails while blocked", async () => {
    const p = await startTcpProxy({ targetPort: 9042 });
    cleanups.push(() => p.stop());
    const c = new cassandra.Client({
      contactPoints: [`127.0.0.1:${p.port}`], localDataCenter: "datacenter1",
      socketOptions: { connectTimeout: 2000, readTimeout: 5000 },
      policies: { reconnection: new cassandra.policies.reconnection.ConstantReconnectionPolicy(200) },
    });
    cleanups.push(() => c.shutdown());
    // a large result (the schema tables, well over one TCP buffer) both ways through the proxy
    const rows = (await c.execute("SELECT * FROM system_schema.columns")).rows;
    expect(rows.length).toBeGreaterThan(100);
    const before = p.stats().bytesDown;
    await c.execute("SELECT release_version FROM system.local");
    expect(p.stats().bytesDown).toBeGreaterThan(before); // not bypassed through a discovered address
    p.block();
    await expect(c.execute("SELECT release_version FROM system.local")).rejects.toThrow();
    p.unblock();
    const v = await waitFor(() => c.execute("SELECT release_version FROM system.local"), 30_000, "Cassandra back through the proxy", 200);
    expect(v.rows.length).toBe(1);
  }, 60_000);
});

describe("private redis", () => {
  it("starts, refuses connections once stopped, and answers again on the same port after restart", async () => {
    const r = await startPrivateRedis();
    cleanups.push(() => r.stop());
    expect(r.url).toBe(`redis://127.0.0.1:${r.port}`);
    expect(r.port).not.toBe(6379);
    expect(await redisCommand(r.port, ["SET", "k", "v"])).toBe("+OK");
    await r.stop();
    expect(r.running).toBe(false);
    expect(await tcpReachable(r.port)).toBe(false);
    await expect(redisCommand(r.port, ["PING"])).rejects.toThrow();
    await r.restart();
    expect(r.running).toBe(true);
    expect(await redisCommand(r.port, ["PING"])).toBe("+PONG");
    expect(await redisCommand(r.port, ["GET", "k"])).toBe("$-1"); // no persistence
  });
});

describe("helpers", () => {
  it("makes unique names that are valid Cassandra keyspaces, Kafka topics and Redis prefixes", () => {
    const names = new Set(Array.from({ length: 1000 }, () => uniqueName("rtae-dist.test")));
    expect(names.size).toBe(1000);
    for (const n of [...names, uniqueName("9" + "a".repeat(80)), uniqueName()]) expect(n).toMatch(/^[a-z][a-z0-9_]{0,47}$/);
  });

  it("runs a one-shot rtae command to completion with its output", async () => {
    const v = await runRtae(["version"]);
    expect(v.code).toBe(0);
    expect(v.output).toContain("0.1.0");
    expect((await runRtae(["no-such-command"])).code).not.toBe(0);
  });

  it("waitFor reports what it last saw when it times out", async () => {
    await expect(waitFor(() => { throw new Error("still 3 of 5"); }, 100, "five")).rejects.toThrow(/five.*still 3 of 5/);
    expect(await waitFor(() => 42, 100)).toBe(42);
  });

  it("postNdjson retries a batch answered 503 or 429 and fails on any other error", async () => {
    let calls = 0;
    const stub = Bun.serve({
      hostname: "127.0.0.1", port: 0,
      fetch: async (req) => {
        const n = (await req.text()).trim().split("\n").length;
        calls++;
        if (calls === 1) return new Response("{}", { status: 503 });
        if (calls === 2) return new Response("{}", { status: 429, headers: { "retry-after": "0" } });
        if (n === 1) return new Response("nope", { status: 400 });
        return Response.json({ accepted: n, rejected: 0, errors: [] }, { status: 202 });
      },
    });
    cleanups.push(() => stub.stop(true));
    const ev = Array.from({ length: 5 }, (_, i) => ({ eventId: `e${i}`, type: "checkout" as const, timestamp: 0 }));
    expect(await postNdjson(`http://127.0.0.1:${stub.port}`, ev.slice(0, 4), 2)).toEqual({ accepted: 4, rejected: 0, requests: 4, retries: 2 });
    await expect(postNdjson(`http://127.0.0.1:${stub.port}`, ev.slice(0, 1), 2)).rejects.toThrow(/400 nope/);
  });
});

describe("rtae process (embedded mode)", () => {
  const ARGS = ["--partitions", "4", "--workers", "2", "--checkpoint-interval", "200ms", "--log-level", "error"];
  const start = Math.floor((Date.now() - 2 * 3_600_000) / 60_000) * 60_000 + 7_000;
  const d = buildDataset({
    n: 20_000, seed: 11, rate: 20, start, products: 300, users: 3000,
    perturb: { seed: 5, duplicateRate: 0.02, disorderMs: 2000, lateRate: 0.005, lateMs: 20_000 },
    dropEvery: 100, dropLagMs: 5 * 60_000,
  });
  const whole = secondRange(d.lo, d.hi);
  const slice = secondRange(d.lo + 123_456, d.lo + 654_321);
  let proc: RtaeProcess;

  const check = async (p: RtaeProcess) => {
    const get = (path: string) => getJson(p.url, path);
    for (const r of [whole, slice]) expect(await answerMismatches(get, expectedOf(d.arrivals, d.dropped, r.from, r.to), r.from, r.to)).toEqual([]);
  };

  it("serves ground-truth answers, survives kill -9 and stops cleanly on SIGTERM", async () => {
    expect(d.dropped.size).toBeGreaterThan(20);
    proc = spawnRtae(ARGS);
    cleanups.push(() => proc.kill9().then(() => proc.removeDataDir()));
    await proc.ready(20_000);
    // batch by batch, waiting until each is decided, so the watermark has passed a held event before it comes
    const BATCH = 1000;
    for (let i = 0; i < d.arrivals.length; i += BATCH) {
      const r = await postNdjson(proc.url, d.arrivals.slice(i, i + BATCH), BATCH);
      expect(r).toMatchObject({ accepted: Math.min(BATCH, d.arrivals.length - i), rejected: 0 });
      await waitForDecided(proc.url, whole.from, whole.to, i + r.accepted, 30_000);
    }
    await check(proc);
    // the oracle can fail: one event fewer is noticed
    const off = expectedOf(d.arrivals.slice(1), d.dropped, whole.from, whole.to);
    expect((await answerMismatches((p) => getJson(proc.url, p), off, whole.from, whole.to, ["summary"])).length).toBeGreaterThan(0);

    await proc.kill9();
    expect(await proc.exited).not.toBe(0);
    await expect(fetch(`${proc.url}/ready`)).rejects.toThrow();
    proc = proc.respawn();
    await proc.ready(20_000);
    await check(proc);

    expect(await proc.stop()).toBe(0);
    expect(await tcpReachable(proc.port)).toBe(false);
  }, 120_000);
});
