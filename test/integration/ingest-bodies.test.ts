// Request bodies at the real doors, over a real port: encoded event bodies are inflated and counted,
// mislabelled and unsupported ones refused with the right status, a bomb stops at the limit, and the
// bodies received at once share one budget (503 with Retry-After past it, nothing held afterwards).

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { gzipSync, brotliCompressSync, deflateSync } from "node:zlib";
import { createHttpApp } from "../../src/http-app.ts";
import { startAlerting } from "../../src/alerts/index.ts";
import { startLiveTopics } from "../../src/server/live.ts";
import type { Listening } from "../../src/server/index.ts";
import { startTestEngine } from "../helpers.ts";
import { rawRequest, requestHead } from "../raw-http.ts";

const ADMIN = "admin-token-0123456789abcdef";
let t: Awaited<ReturnType<typeof startTestEngine>>;
let live: ReturnType<typeof startLiveTopics>;
let alerts: ReturnType<typeof startAlerting>;
let http: Listening;
let base = "";

beforeAll(async () => {
  // 1 MiB bodies, 4 MiB for all of them at once
  t = await startTestEngine(["--admin-token", ADMIN, "--max-body-bytes", "1MiB", "--max-inflight-body-bytes", "4MiB"]);
  live = startLiveTopics(t.engine);
  alerts = startAlerting(t.engine, []);
  http = createHttpApp(t.engine, live, alerts, { rateLimit: false }).listen({ port: 0, hostname: "127.0.0.1" });
  base = `http://127.0.0.1:${http.port}`;
});
afterAll(async () => {
  live?.stop();
  await http?.stop(true);
  await alerts?.stop();
  await t?.stop();
});

const auth = { authorization: `Bearer ${ADMIN}` };
const ndjson = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => JSON.stringify({ eventId: `${prefix}-${i}`, type: "page_view", timestamp: Date.now() - 60_000, userId: "u", sessionId: `s${i % 7}`, page: "/" })).join("\n");
const post = (body: BodyInit, headers: Record<string, string>) =>
  fetch(`${base}/api/events`, { method: "POST", body, headers: { ...auth, "content-type": "application/x-ndjson", ...headers } });

describe("encoded event bodies", () => {
  it("inflates gzip, deflate (zlib and raw) and br bodies and counts every event once", async () => {
    const { deflateRawSync } = await import("node:zlib");
    const cases: Array<[string, (b: Buffer) => Buffer]> = [
      ["gzip", gzipSync],
      ["x-gzip", gzipSync],
      ["deflate", deflateSync],
      ["deflate", deflateRawSync],
      ["br", brotliCompressSync],
    ];
    let n = 0;
    for (const [coding, enc] of cases) {
      const body = enc(Buffer.from(ndjson(`enc-${coding}-${n++}`, 100)));
      const r = await post(new Uint8Array(body), { "content-encoding": coding });
      expect([coding, r.status]).toEqual([coding, 202]);
      expect(((await r.json()) as { accepted: number }).accepted).toBe(100);
    }
  });

  it("refuses a plain body labelled gzip (400), an unknown coding (415 with Accept-Encoding) and a bomb (413)", async () => {
    const plain = await post(ndjson("plain", 3), { "content-encoding": "gzip" });
    expect(plain.status).toBe(400);
    expect(((await plain.json()) as { error: { code: string } }).error.code).toBe("invalid_encoding");
    const zstd = await post(ndjson("z", 3), { "content-encoding": "zstd" });
    expect(zstd.status).toBe(415);
    expect(zstd.headers.get("accept-encoding")).toBe("gzip, deflate, br");
    // 64 MiB of newlines inflates far past the 1 MiB limit from a body of about 64 KiB
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 10));
    expect(bomb.length).toBeLessThan(1024 * 1024);
    const r = await post(new Uint8Array(bomb), { "content-encoding": "gzip" });
    expect(r.status).toBe(413);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe("body_too_large");
  });

  it("answers a Content-Length over the limit with the JSON 413 before reading the body (after Bun's own 100 Continue)", async () => {
    const r = await rawRequest(http.port, requestHead("POST", "/api/events", "localhost", { ...auth, "content-type": "application/x-ndjson", "content-length": String(2 * 1024 * 1024), expect: "100-continue" }));
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body).error.code).toBe("body_too_large");
    // and hangs up rather than draining what the client still sends; a terabyte declared is refused the same way
    expect(r.headers.connection).toBe("close");
    const huge = await rawRequest(http.port, requestHead("POST", "/api/events", "localhost", { ...auth, "content-type": "application/x-ndjson", "content-length": String(2 ** 40 - 1) }));
    expect([huge.status, JSON.parse(huge.body).error.code]).toEqual([413, "body_too_large"]);
  });
});

describe("in-flight body budget", () => {
  it("answers 503 with Retry-After once the bodies being received fill the budget, and holds nothing afterwards", async () => {
    // eight uploads that declare 900 KiB each and trickle: at most four fit the 4 MiB budget
    const declared = 900 * 1024;
    const sockets = await Promise.all(
      Array.from({ length: 8 }, async () => {
        let answer = "";
        const s = await Bun.connect({ hostname: "127.0.0.1", port: http.port, socket: { data(_s, d) { answer += new TextDecoder().decode(d); } } });
        s.write(requestHead("POST", "/api/events", "localhost", { ...auth, "content-type": "application/x-ndjson", "content-length": String(declared) }) + "{");
        return { s, answer: () => answer };
      }),
    );
    const deadline = Date.now() + 5000;
    while (sockets.filter((x) => x.answer().startsWith("HTTP/1.1 503")).length < 4 && Date.now() < deadline) await Bun.sleep(20);
    const busy = sockets.filter((x) => x.answer().startsWith("HTTP/1.1 503"));
    expect(busy.length).toBe(4);
    expect(busy[0].answer().toLowerCase()).toContain("retry-after: 1");
    expect(busy[0].answer()).toContain("server_busy");
    // the four that fit are still receiving; hanging up releases their reservations
    for (const x of sockets) x.s.end();
    const r = await waitForAccepted();
    expect(r).toBe(202);
  });
});

/** A small post succeeds once the abandoned uploads have released the budget. */
async function waitForAccepted(): Promise<number> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await post(ndjson(`after-${Date.now()}`, 1), {});
    if (r.status !== 503 || Date.now() > deadline) return r.status;
    await Bun.sleep(20);
  }
}
