import { afterEach, describe, expect, it } from "bun:test";
import { GeneratorError } from "./errors.ts";
import { parseRetryAfter, runProducer } from "./producer.ts";
import type { WireEvent } from "./wire.ts";

interface Received {
  status: number;
  body: string;
  contentType: string | null;
  auth: string | null;
}

let server: ReturnType<typeof Bun.serve> | null = null;

/** A local ingest stub: `answer(n)` decides the response to the n-th request (0-based); 202 with counts otherwise. */
function ingest(answer: (n: number, lines: string[]) => Response | null = () => null) {
  const log: Received[] = [];
  server = Bun.serve({
    port: 0,
    async fetch(req) {
      const body = await req.text();
      const lines = body.split("\n").filter((l) => l !== "");
      const res = answer(log.length, lines) ?? Response.json({ accepted: lines.length, rejected: 0, errors: [] }, { status: 202 });
      log.push({ status: res.status, body, contentType: req.headers.get("content-type"), auth: req.headers.get("authorization") });
      return res;
    },
  });
  return { url: `http://localhost:${server.port}/api/events`, log };
}

/** A fake clock moved only by the producer's own sleeps. */
function fakeTime(start = Date.UTC(2024, 4, 1, 12)) {
  let now = start;
  const sleeps: number[] = [];
  return {
    clock: () => now,
    sleep: (ms: number) => {
      sleeps.push(ms);
      now += ms;
      return Promise.resolve();
    },
    sleeps,
  };
}

const ids = (body: string): string[] =>
  body
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => (JSON.parse(l) as WireEvent).eventId);

afterEach(() => {
  server?.stop(true);
  server = null;
});

describe("runProducer", () => {
  it("posts exactly count events as NDJSON batches at the configured pace, with the given headers", async () => {
    const { url, log } = ingest();
    const t = fakeTime();
    const totals = await runProducer({
      seed: 1,
      rate: 1_000,
      bursts: false,
      count: 2_500,
      batchSize: 400,
      target: { url, headers: { authorization: "Bearer k1" } },
      clock: t.clock,
      sleep: t.sleep,
    });
    const delivered = log.flatMap((r) => ids(r.body));
    expect(delivered.length).toBe(2_500);
    expect(new Set(delivered).size).toBe(2_500);
    expect(totals).toEqual({ sent: 2_500, accepted: 2_500, rejected: 0, failedRequests: 0, abandoned: 0 });
    expect(log.every((r) => r.contentType === "application/x-ndjson" && r.auth === "Bearer k1")).toBe(true);
    expect(log.every((r) => ids(r.body).length <= 400)).toBe(true);
    // Paced: 2 500 events at 1 000/s take about 2.5 s of the (fake) clock, and no event is stamped in its future.
    const slept = t.sleeps.reduce((s, x) => s + x, 0);
    expect(slept).toBeGreaterThan(2_000);
    expect(slept).toBeLessThan(3_000);
    const stamps = log.flatMap((r) => r.body.split("\n").filter((l) => l !== "").map((l) => (JSON.parse(l) as WireEvent).timestamp));
    expect(Math.max(...stamps)).toBeLessThanOrEqual(t.clock());
  });

  it("waits the Retry-After of a 429 and retries a 500 with the same eventIds", async () => {
    const { url, log } = ingest((n) => {
      if (n === 0) return new Response("slow down", { status: 429, headers: { "retry-after": "2" } });
      if (n === 1) return new Response("oops", { status: 500 });
      return null;
    });
    const t = fakeTime();
    const totals = await runProducer({ seed: 2, rate: 100, count: 300, batchSize: 300, unthrottled: true, target: { url }, clock: t.clock, sleep: t.sleep });
    expect(log.map((r) => r.status)).toEqual([429, 500, 202]);
    expect(t.sleeps[0]).toBe(2_000);
    expect(t.sleeps.length).toBe(2);
    expect(ids(log[1].body)).toEqual(ids(log[0].body));
    expect(ids(log[2].body)).toEqual(ids(log[0].body));
    expect(totals).toEqual({ sent: 300, accepted: 300, rejected: 0, failedRequests: 2, abandoned: 0 });
  });

  it("abandons a batch after maxRetries server errors and counts every failed attempt", async () => {
    const { log, url } = ingest(() => new Response("down", { status: 503 }));
    const t = fakeTime();
    const totals = await runProducer({ seed: 3, rate: 100, count: 50, unthrottled: true, maxRetries: 3, target: { url }, clock: t.clock, sleep: t.sleep });
    expect(log.length).toBe(4);
    expect(totals).toEqual({ sent: 50, accepted: 0, rejected: 0, failedRequests: 4, abandoned: 50 });
    // Exponential backoff: each wait longer than the one before.
    expect(t.sleeps.length).toBe(3);
    expect(t.sleeps[1]).toBeGreaterThan(t.sleeps[0]);
    expect(t.sleeps[2]).toBeGreaterThan(t.sleeps[1]);
  });

  it("splits a batch the server finds too large and takes the server's accepted and rejected counts", async () => {
    const { url, log } = ingest((_, lines) => {
      if (lines.length > 100) return new Response("too large", { status: 413 });
      return Response.json({ accepted: lines.length - 1, rejected: 1, errors: [{ index: 0, reason: "x" }] }, { status: 202 });
    });
    const t = fakeTime();
    const totals = await runProducer({ seed: 4, rate: 100, count: 400, batchSize: 400, unthrottled: true, target: { url }, clock: t.clock, sleep: t.sleep });
    const accepted = log.filter((r) => r.status === 202);
    expect(accepted.map((r) => ids(r.body).length)).toEqual([100, 100, 100, 100]);
    expect(new Set(accepted.flatMap((r) => ids(r.body))).size).toBe(400);
    expect(totals).toEqual({ sent: 400, accepted: 396, rejected: 4, failedRequests: 0, abandoned: 0 });
  });

  it("fails with a typed error when the server refuses the credentials", async () => {
    const { url } = ingest(() => Response.json({ error: { code: "unauthorized", message: "bad key" } }, { status: 401 }));
    const t = fakeTime();
    let err: unknown;
    try {
      await runProducer({ seed: 5, rate: 100, count: 10, unthrottled: true, target: { url }, clock: t.clock, sleep: t.sleep });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GeneratorError);
    expect((err as GeneratorError).status).toBe(401);
    expect((err as GeneratorError).message).toContain("bad key");
  });

  it("writes NDJSON lines to a writer and stops at durationMs", async () => {
    const chunks: string[] = [];
    const t = fakeTime();
    const totals = await runProducer({
      seed: 6,
      rate: 200,
      bursts: false,
      durationMs: 5_000,
      target: { write: (c: string) => chunks.push(c) },
      clock: t.clock,
      sleep: t.sleep,
    });
    const text = chunks.join("");
    expect(text.endsWith("\n")).toBe(true);
    const events = text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as WireEvent);
    expect(events.length).toBe(totals.sent);
    expect(totals.accepted).toBe(totals.sent);
    expect(Math.abs(events.length - 1_000)).toBeLessThan(120);
    expect(events.every((e, i) => i === 0 || e.timestamp >= events[i - 1].timestamp)).toBe(true);
  });

  it("backfills unthrottled streams so they end about now, and stops when aborted", async () => {
    const chunks: string[] = [];
    const t = fakeTime();
    const start = t.clock();
    await runProducer({ seed: 7, rate: 100, bursts: false, count: 6_000, unthrottled: true, batchSize: 1_000, target: { write: (c: string) => chunks.push(c) }, clock: t.clock });
    const events = chunks.join("").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as WireEvent);
    expect(events.length).toBe(6_000);
    expect(events[0].timestamp).toBe(start - 60_000);
    expect(Math.abs(events[events.length - 1].timestamp - start)).toBeLessThan(5_000);

    const ac = new AbortController();
    let written = 0;
    const totals = await runProducer({
      seed: 8,
      rate: 100,
      unthrottled: true,
      batchSize: 10,
      signal: ac.signal,
      target: {
        write: (c: string) => {
          written += c.split("\n").length - 1;
          if (written >= 50) ac.abort();
        },
      },
      clock: t.clock,
    });
    expect(totals.sent).toBe(50);
  });
});

describe("parseRetryAfter", () => {
  it("reads delta-seconds and HTTP dates and ignores anything else", () => {
    const now = Date.UTC(2024, 0, 1, 0, 0, 0);
    expect(parseRetryAfter("3", now)).toBe(3_000);
    expect(parseRetryAfter(new Date(now + 7_000).toUTCString(), now)).toBe(7_000);
    expect(parseRetryAfter(new Date(now - 7_000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeNull();
    expect(parseRetryAfter(null, now)).toBeNull();
  });
});
