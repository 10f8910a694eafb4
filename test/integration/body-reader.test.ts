// readBody behind a real Bun.serve: clients that hang up mid-body leave nothing reserved, refusals
// reach the client although the body is never read, and Bun hands the body over still encoded.

import { afterEach, describe, expect, it } from "bun:test";
import zlib from "node:zlib";
import { createBodyBudget, readBody, type BodyResult } from "../../src/server/body.ts";
import { rawRequest } from "../raw-http.ts";

const MiB = 1024 * 1024;

interface Harness {
  port: number;
  budget: ReturnType<typeof createBodyBudget>;
  /** resolves when the handler has called readBody (its up-front reservation is then made) */
  started: Promise<void>;
  /** what readBody returned for the first request */
  result: Promise<BodyResult>;
}

let server: ReturnType<typeof Bun.serve> | null = null;
afterEach(() => {
  server?.stop(true);
  server = null;
});

function serve(maxBytes = MiB): Harness {
  const budget = createBodyBudget(8 * MiB);
  const started = Promise.withResolvers<void>();
  const result = Promise.withResolvers<BodyResult>();
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const pending = readBody(request, { maxBytes, budget });
      started.resolve();
      const r = await pending;
      result.resolve(r);
      if (r.ok) return Response.json({ bytes: r.bytes.length, head: new TextDecoder().decode(r.bytes.subarray(0, 16)) });
      return Response.json({ error: { code: r.code, message: r.message } }, { status: r.status, headers: r.headers });
    },
  });
  return { port: server.port!, budget, started: started.promise, result: result.promise };
}

async function connect(port: number) {
  const closed = Promise.withResolvers<void>();
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: { data() {}, close: () => closed.resolve(), error: () => closed.resolve() },
  });
  return { socket, closed: closed.promise };
}

describe("readBody behind Bun.serve", () => {
  it("releases the up-front reservation when a client with Content-Length hangs up mid-body", async () => {
    const h = serve();
    const { socket } = await connect(h.port);
    socket.write(`POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: ${MiB}\r\n\r\n${"a".repeat(100_000)}`);
    await h.started;
    expect(h.budget.inFlight).toBe(MiB);
    socket.end();
    const r = await h.result;
    expect(r.ok ? 0 : r.code).toBe("body_incomplete");
    expect(h.budget.inFlight).toBe(0);
  });

  it("releases chunk reservations when a chunked client hangs up mid-body", async () => {
    const h = serve();
    const { socket } = await connect(h.port);
    socket.write(`POST /api/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n186a0\r\n${"a".repeat(100_000)}\r\n`);
    await h.started;
    socket.end();
    const r = await h.result;
    expect(r.ok ? 0 : r.code).toBe("body_incomplete");
    expect(h.budget.inFlight).toBe(0);
  });

  it("answers 413 to a too-large Content-Length without waiting for the body", async () => {
    const h = serve();
    const res = await rawRequest(h.port, `POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: ${10 * MiB}\r\n\r\n`, { timeoutMs: 3000 });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).error.code).toBe("body_too_large");
    expect(h.budget.inFlight).toBe(0);
  });

  it("receives a gzip body still encoded and decodes it once", async () => {
    const h = serve();
    const text = `{"eventId":"e1"}\n`.repeat(10_000);
    const res = await fetch(`http://127.0.0.1:${h.port}/api/events`, {
      method: "POST",
      body: zlib.gzipSync(text),
      headers: { "content-encoding": "gzip", "content-type": "application/x-ndjson" },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ bytes: text.length, head: text.slice(0, 16) });
    expect(h.budget.inFlight).toBe(0);
  });

  it("answers 415 with Accept-Encoding to an unsupported coding", async () => {
    const h = serve();
    const res = await fetch(`http://127.0.0.1:${h.port}/api/events`, { method: "POST", body: "{}", headers: { "content-encoding": "compress" } });
    expect(res.status).toBe(415);
    expect(res.headers.get("accept-encoding")).toBe("gzip, deflate, br");
    expect((await res.json()).error.code).toBe("unsupported_encoding");
  });
});
