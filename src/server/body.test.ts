// readBody against in-process Requests: length and coding checks before reading, caps on wire and
// decoded bytes while streaming (bombs included), refusals for damaged encodings, and the shared
// budget: never above capacity, and back to zero after every path. Payloads come from node:zlib.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import zlib from "node:zlib";
import { createBodyBudget, readBody, type BodyResult } from "./body.ts";

const URL_ = "http://rtae.test/api/events";
const KiB = 1024;
const MiB = 1024 * KiB;

// zlib hands out Buffer<ArrayBufferLike>, which the DOM's BodyInit does not name; every one here is a plain ArrayBuffer
const post = (body: BodyInit | Uint8Array | null, headers: Record<string, string> = {}) =>
  new Request(URL_, { method: "POST", body: body as BodyInit | null, headers });

/** Deterministic, compressible but not trivial text: NDJSON-like lines from a small LCG. */
function payload(bytes: number, seed = 7): Uint8Array {
  const out = new Uint8Array(bytes);
  let s = seed;
  for (let i = 0; i < bytes; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = i % 97 === 96 ? 10 : 97 + ((s >>> 24) % 20);
  }
  return out;
}

interface Source {
  stream: ReadableStream<Uint8Array>;
  /** wire bytes handed to the reader so far */
  readonly pulled: number;
  readonly cancelled: boolean;
}

/** A pull-based body (highWaterMark 0: nothing is produced until the reader asks): `next(at)` gives each chunk, null to end, an Error to break off. */
function pulled(next: (at: number) => Promise<Uint8Array | Error | null> | Uint8Array | Error | null): Source {
  let at = 0;
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        const r = await next(at);
        if (r === null) return c.close();
        if (r instanceof Error) return c.error(r);
        c.enqueue(r);
        at += r.byteLength;
      },
      cancel() {
        cancelled = true;
      },
    },
    { highWaterMark: 0 },
  );
  return {
    stream,
    get pulled() {
      return at;
    },
    get cancelled() {
      return cancelled;
    },
  };
}

/** `bytes` in `chunk`-sized pieces, calling `onPull` before each, breaking off with an error after `failAfter` bytes. */
function source(bytes: Uint8Array, o: { chunk?: number; failAfter?: number; onPull?: () => void | Promise<void> } = {}): Source {
  const chunk = o.chunk ?? 64 * KiB;
  return pulled(async (at) => {
    await o.onPull?.();
    if (o.failAfter !== undefined && at >= o.failAfter) return new Error("connection reset by peer");
    if (at >= bytes.byteLength) return null;
    return bytes.slice(at, Math.min(at + chunk, bytes.byteLength));
  });
}

/** An endless body: fresh chunks for as long as anyone reads. */
function endless(chunk: number): Source {
  const piece = payload(chunk);
  return pulled(() => piece.slice());
}

const failure = (r: BodyResult) => {
  if (r.ok) throw new Error("expected a refusal, got a body");
  return r;
};
const bytesOf = (r: BodyResult) => {
  if (!r.ok) throw new Error(`expected a body, got ${r.status} ${r.code}: ${r.message}`);
  return r.bytes;
};

const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);
beforeAll(() => {
  process.on("unhandledRejection", onUnhandled);
  process.on("uncaughtException", onUnhandled);
});
afterAll(() => {
  process.off("unhandledRejection", onUnhandled);
  process.off("uncaughtException", onUnhandled);
  expect(unhandled).toEqual([]);
});

describe("readBody: lengths", () => {
  it("returns an unencoded body byte for byte, with and without Content-Length", async () => {
    const data = payload(300 * KiB);
    expect(bytesOf(await readBody(post(data, { "content-length": String(data.length) }), { maxBytes: MiB }))).toEqual(data);
    const s = source(data, { chunk: 7000 });
    expect(bytesOf(await readBody(post(s.stream), { maxBytes: MiB }))).toEqual(data);
  });

  it("returns an empty body for no body and for Content-Length 0", async () => {
    expect(bytesOf(await readBody(post(null), { maxBytes: 10 })).length).toBe(0);
    expect(bytesOf(await readBody(post("", { "content-length": "0" }), { maxBytes: 10 })).length).toBe(0);
  });

  it("refuses a Content-Length above maxBytes with 413 without reading or reserving anything", async () => {
    const budget = createBodyBudget(MiB);
    const s = source(payload(2000), { onPull: () => expect(budget.inFlight).toBe(0) });
    const r = failure(await readBody(post(s.stream, { "content-length": "2000" }), { maxBytes: 1999, budget }));
    expect([r.status, r.code]).toEqual([413, "body_too_large"]);
    expect(r.message).toContain("1999");
    expect(s.pulled).toBe(0);
    expect(s.cancelled).toBe(true);
    expect(budget.inFlight).toBe(0);
  });

  it("refuses a Content-Length too long for a number as too large, not as invalid", async () => {
    const r = failure(await readBody(post("x", { "content-length": "99999999999999999999999" }), { maxBytes: 10 }));
    expect(r.status).toBe(413);
  });

  for (const bad of ["abc", "-1", "+5", "1.5", "0x10", "", "5, 6", "5,", "1e3"]) {
    it(`refuses Content-Length ${JSON.stringify(bad)} with 400`, async () => {
      const r = failure(await readBody(post("12345", { "content-length": bad }), { maxBytes: 100 }));
      expect([r.status, r.code]).toEqual([400, "invalid_content_length"]);
    });
  }

  it("takes a repeated identical Content-Length as one", async () => {
    expect(bytesOf(await readBody(post("12345", { "content-length": "5, 5" }), { maxBytes: 100 }))).toEqual(new TextEncoder().encode("12345"));
  });

  it("refuses a body longer or shorter than its Content-Length", async () => {
    const longer = failure(await readBody(post("123456", { "content-length": "5" }), { maxBytes: 100 }));
    expect([longer.status, longer.code]).toEqual([400, "invalid_content_length"]);
    const shorter = failure(await readBody(post("1234", { "content-length": "5" }), { maxBytes: 100 }));
    expect([shorter.status, shorter.code]).toEqual([400, "body_incomplete"]);
  });

  it("caps an endless chunked body while streaming and cancels it", async () => {
    const s = endless(16 * KiB);
    const r = failure(await readBody(post(s.stream), { maxBytes: 100 * KiB }));
    expect([r.status, r.code]).toEqual([413, "body_too_large"]);
    // 100 KiB is crossed by the 7th chunk; nothing is read after it
    expect(s.pulled).toBe(7 * 16 * KiB);
    expect(s.cancelled).toBe(true);
  });
});

describe("readBody: content codings", () => {
  const data = payload(200 * KiB);
  const encoded: Record<string, Uint8Array> = {
    gzip: zlib.gzipSync(data),
    deflate: zlib.deflateSync(data),
    "deflate (raw)": zlib.deflateRawSync(data),
    br: zlib.brotliCompressSync(data),
  };
  const header = (name: string) => name.split(" ")[0];

  for (const [name, body] of Object.entries(encoded)) {
    it(`decodes ${name}, whole and in 1-byte-first pieces`, async () => {
      expect(bytesOf(await readBody(post(body, { "content-encoding": header(name) }), { maxBytes: MiB }))).toEqual(data);
      const pieces = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(body.slice(0, 1));
          for (let i = 1; i < body.length; i += 999) c.enqueue(body.slice(i, i + 999));
          c.close();
        },
      });
      expect(bytesOf(await readBody(post(pieces, { "content-encoding": header(name) }), { maxBytes: MiB }))).toEqual(data);
    });
  }

  it("reads x-gzip as gzip, ignores case and identity entries, and accepts multi-member gzip", async () => {
    const gz = encoded.gzip;
    for (const ce of ["x-gzip", "GZIP", "identity, gzip", " gzip , identity"])
      expect(bytesOf(await readBody(post(gz, { "content-encoding": ce }), { maxBytes: MiB }))).toEqual(data);
    const twice = new Uint8Array([...gz, ...gz]);
    expect(bytesOf(await readBody(post(twice, { "content-encoding": "gzip" }), { maxBytes: MiB }))).toEqual(new Uint8Array([...data, ...data]));
  });

  it("passes identity through as is", async () => {
    expect(bytesOf(await readBody(post(encoded.gzip, { "content-encoding": "identity" }), { maxBytes: MiB }))).toEqual(encoded.gzip);
  });

  for (const ce of ["gzip, br", "br, gzip", "deflate, deflate"]) {
    it(`refuses stacked codings ${JSON.stringify(ce)} with 415 and Accept-Encoding`, async () => {
      const r = failure(await readBody(post(encoded.gzip, { "content-encoding": ce }), { maxBytes: MiB }));
      expect([r.status, r.code]).toEqual([415, "unsupported_encoding"]);
      expect(r.message).toContain("gzip, deflate, br");
      expect(r.headers).toEqual({ connection: "close", "accept-encoding": "gzip, deflate, br" });
    });
  }

  for (const ce of ["compress", "x-compress", "zstd", "snappy", "gzip;q=1", "???"]) {
    it(`refuses Content-Encoding ${JSON.stringify(ce)} with 415 naming the supported codings`, async () => {
      const r = failure(await readBody(post("{}", { "content-encoding": ce }), { maxBytes: MiB }));
      expect([r.status, r.code]).toEqual([415, "unsupported_encoding"]);
      expect(r.message).toContain("gzip, deflate, br");
      expect(r.headers?.["accept-encoding"]).toBe("gzip, deflate, br");
    });
  }

  it("accepts only the codings a door allows, and says so in Accept-Encoding", async () => {
    const plainOnly = failure(await readBody(post(encoded.gzip, { "content-encoding": "gzip" }), { maxBytes: MiB, encodings: ["identity"] }));
    expect([plainOnly.status, plainOnly.headers?.["accept-encoding"]]).toEqual([415, "identity"]);
    const gzipOnly = failure(await readBody(post("{}"), { maxBytes: MiB, encodings: ["gzip"] }));
    expect([gzipOnly.status, gzipOnly.headers?.["accept-encoding"]]).toEqual([415, "gzip, identity;q=0"]);
    expect(bytesOf(await readBody(post(encoded.gzip, { "content-encoding": "gzip" }), { maxBytes: MiB, encodings: ["gzip"] }))).toEqual(data);
  });

  const damaged: Array<[string, string, Uint8Array]> = [];
  for (const [name, body] of Object.entries(encoded)) {
    const ce = header(name);
    damaged.push([`${name}: plain text`, ce, data.slice(0, 5000)]);
    damaged.push([`${name}: truncated`, ce, body.slice(0, body.length >> 1)]);
    damaged.push([`${name}: trailing garbage`, ce, new Uint8Array([...body, ...new TextEncoder().encode("garbage")])]);
    damaged.push([`${name}: empty`, ce, new Uint8Array(0)]);
  }
  // only gzip (CRC-32) and zlib deflate (Adler-32) carry checksums that catch a flipped byte anywhere
  for (const name of ["gzip", "deflate"]) {
    const flipped = new Uint8Array(encoded[name]); // a copy: Buffer#slice would be a view
    flipped[flipped.length >> 1] ^= 0x5a;
    damaged.push([`${name}: flipped byte`, name, flipped]);
  }
  for (const [label, ce, body] of damaged) {
    it(`refuses ${label} with 400 invalid_encoding and releases the budget`, async () => {
      const budget = createBodyBudget(4 * MiB);
      const r = failure(await readBody(post(body, { "content-encoding": ce }), { maxBytes: MiB, budget }));
      expect([r.status, r.code]).toEqual([400, "invalid_encoding"]);
      expect(r.message).toContain(`labelled ${ce}`);
      expect(budget.inFlight).toBe(0);
    });
  }

  it("caps the decoded size: a small gzip body inflating past maxBytes is 413", async () => {
    const big = zlib.gzipSync(payload(3 * MiB));
    expect(big.length).toBeLessThan(MiB);
    const r = failure(await readBody(post(big, { "content-encoding": "gzip" }), { maxBytes: MiB }));
    expect([r.status, r.code]).toEqual([413, "body_too_large"]);
    expect(r.message).toContain("gzip-decoded");
  });
});

describe("readBody: bombs", () => {
  // deflate tops out near 1032:1, so a gzip bomb is many members of 16 MiB of zeros (16 KiB each)
  const member = zlib.gzipSync(new Uint8Array(16 * MiB), { level: 9 });
  const gzipBomb = (members: number) => {
    const out = new Uint8Array(member.length * members);
    for (let i = 0; i < members; i++) out.set(member, i * member.length);
    return out;
  };

  it("stops a 4 MiB gzip bomb of 4 GiB in one chunk at the cap, fast, within the budget", async () => {
    const bomb = gzipBomb(256);
    const budget = createBodyBudget(64 * MiB);
    const t0 = performance.now();
    const r = failure(await readBody(post(bomb, { "content-encoding": "gzip" }), { maxBytes: 8 * MiB, budget }));
    const ms = performance.now() - t0;
    expect([r.status, r.code]).toEqual([413, "body_too_large"]);
    // inflating all 4 GiB takes seconds here; stopping at 8 MiB takes milliseconds
    expect(ms).toBeLessThan(1000);
    expect(budget.inFlight).toBe(0);
  });

  it("stops pulling a chunked gzip bomb soon after the decoded cap, with bounded reservations", async () => {
    const bomb = gzipBomb(64); // 1 MiB on the wire, 1 GiB inflated
    const budget = createBodyBudget(64 * MiB);
    let peak = 0;
    const s = source(bomb, { chunk: 4 * KiB, onPull: () => void (peak = Math.max(peak, budget.inFlight)) });
    const r = failure(await readBody(post(s.stream, { "content-encoding": "gzip" }), { maxBytes: 4 * MiB, budget }));
    expect([r.status, r.code]).toEqual([413, "body_too_large"]);
    // each 4 KiB of this bomb inflates to ~4 MiB: decoding stops within a few wire chunks
    expect(s.pulled).toBeLessThanOrEqual(16 * KiB);
    expect(peak).toBeLessThanOrEqual(4 * MiB + 256 * KiB);
    expect(s.cancelled).toBe(true);
    expect(budget.inFlight).toBe(0);
  });

  it("answers a bomb at once even when the client then stalls before its next chunk", async () => {
    const bomb = gzipBomb(4);
    const stalled = Promise.withResolvers<void>(); // never resolved
    let pulls = 0;
    const s = source(bomb, { chunk: 32 * KiB, onPull: () => (++pulls > 1 ? stalled.promise : undefined) });
    const budget = createBodyBudget(64 * MiB);
    const r = failure(await readBody(post(s.stream, { "content-encoding": "gzip" }), { maxBytes: 4 * MiB, budget }));
    expect([r.status, r.code]).toEqual([413, "body_too_large"]);
    expect(s.cancelled).toBe(true);
    expect(budget.inFlight).toBe(0);
  });

  it("stops a brotli bomb (tens of KiB inflating to 256 MiB) at the cap", async () => {
    const bomb = zlib.brotliCompressSync(new Uint8Array(256 * MiB), { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } });
    expect(bomb.length).toBeLessThan(64 * KiB);
    const budget = createBodyBudget(64 * MiB);
    const s = source(bomb, { chunk: 1 * KiB });
    const r = failure(await readBody(post(s.stream, { "content-encoding": "br" }), { maxBytes: MiB, budget }));
    expect([r.status, r.code]).toEqual([413, "body_too_large"]);
    expect(s.pulled).toBeLessThan(bomb.length);
    expect(budget.inFlight).toBe(0);
  });
});

describe("readBody: the budget", () => {
  it("keeps the body's reservation with keep until release(), once, so a door's parse is inside the budget", async () => {
    const budget = createBodyBudget(MiB);
    const r = await readBody(post(payload(300 * KiB), { "content-length": String(300 * KiB) }), { maxBytes: MiB, budget, keep: true });
    expect(r.ok).toBe(true);
    expect(budget.inFlight).toBe(300 * KiB);
    // a second body that would not fit next to the kept one is refused
    const second = await readBody(post(payload(800 * KiB), { "content-length": String(800 * KiB) }), { maxBytes: MiB, budget });
    expect(second.ok ? 0 : second.status).toBe(503);
    if (r.ok) {
      r.release();
      r.release();
    }
    expect(budget.inFlight).toBe(0);
    const plain = await readBody(post(payload(300 * KiB), { "content-length": String(300 * KiB) }), { maxBytes: MiB, budget });
    expect(budget.inFlight).toBe(0); // without keep nothing stays reserved
    if (plain.ok) plain.release(); // a no-op
    expect(budget.inFlight).toBe(0);
  });

  it("reserves a known length up front and releases it at the end", async () => {
    const budget = createBodyBudget(MiB);
    const data = payload(200 * KiB);
    const seen: number[] = [];
    const s = source(data, { chunk: 50 * KiB, onPull: () => void seen.push(budget.inFlight) });
    expect(bytesOf(await readBody(post(s.stream, { "content-length": String(data.length) }), { maxBytes: MiB, budget }))).toEqual(data);
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.every((v) => v === data.length)).toBe(true);
    expect(budget.inFlight).toBe(0);
  });

  it("reserves an unknown length chunk by chunk", async () => {
    const budget = createBodyBudget(MiB);
    const seen: number[] = [];
    const s = source(payload(200 * KiB), { chunk: 50 * KiB, onPull: () => void seen.push(budget.inFlight) });
    bytesOf(await readBody(post(s.stream), { maxBytes: MiB, budget }));
    expect(seen).toEqual([0, 50 * KiB, 100 * KiB, 150 * KiB, 200 * KiB]);
    expect(budget.inFlight).toBe(0);
  });

  it("answers 503 server_busy with Retry-After when the budget is full, up front or mid-body", async () => {
    const budget = createBodyBudget(MiB);
    expect(budget.tryReserve(MiB - 100 * KiB)).toBe(true); // other requests hold most of it
    const upFront = source(payload(200 * KiB));
    const a = failure(await readBody(post(upFront.stream, { "content-length": String(200 * KiB) }), { maxBytes: MiB, budget }));
    expect([a.status, a.code, a.headers]).toEqual([503, "server_busy", { connection: "close", "retry-after": "1" }]);
    expect(a.message).toContain("busy receiving other request bodies");
    expect(upFront.pulled).toBe(0);
    const midBody = source(payload(200 * KiB), { chunk: 64 * KiB });
    const b = failure(await readBody(post(midBody.stream), { maxBytes: MiB, budget }));
    expect([b.status, b.code]).toEqual([503, "server_busy"]);
    expect(midBody.pulled).toBe(128 * KiB);
    expect(midBody.cancelled).toBe(true);
    const gz = failure(await readBody(post(zlib.gzipSync(payload(400 * KiB)), { "content-encoding": "gzip" }), { maxBytes: MiB, budget }));
    expect([gz.status, gz.code]).toEqual([503, "server_busy"]);
    expect(budget.inFlight).toBe(MiB - 100 * KiB);
    budget.release(MiB - 100 * KiB);
    expect(budget.inFlight).toBe(0);
  });

  it("releases everything when the client breaks off mid-body, plain or encoded", async () => {
    const budget = createBodyBudget(4 * MiB);
    const data = payload(512 * KiB);
    let peak = 0;
    const sample = () => void (peak = Math.max(peak, budget.inFlight));
    const cases: Array<[Source, Record<string, string>]> = [
      [source(data, { failAfter: 256 * KiB, onPull: sample }), { "content-length": String(data.length) }],
      [source(data, { failAfter: 256 * KiB, onPull: sample }), {}],
      [source(zlib.gzipSync(data), { chunk: 4 * KiB, failAfter: 8 * KiB, onPull: sample }), { "content-encoding": "gzip" }],
    ];
    for (const [s, headers] of cases) {
      peak = 0;
      const r = failure(await readBody(post(s.stream, headers), { maxBytes: MiB, budget }));
      expect([r.status, r.code]).toEqual([400, "body_incomplete"]);
      expect(peak).toBeGreaterThan(0);
      expect(budget.inFlight).toBe(0);
    }
  });

  it("returns to zero after every other path", async () => {
    const budget = createBodyBudget(4 * MiB);
    const o = { maxBytes: MiB, budget };
    const gz = zlib.gzipSync(payload(100 * KiB));
    const paths: Array<() => Promise<unknown>> = [
      () => readBody(post(payload(1000)), o),
      () => readBody(post(gz, { "content-encoding": "gzip" }), o),
      () => readBody(post(gz.slice(0, 100), { "content-encoding": "gzip" }), o),
      () => readBody(post(endless(64 * KiB).stream), o),
      () => readBody(post(endless(64 * KiB).stream, { "content-encoding": "br" }), o),
      () => readBody(post("x", { "content-encoding": "zstd" }), o),
      () => readBody(post("x", { "content-length": "nope" }), o),
      () => readBody(post(zlib.gzipSync(payload(3 * MiB)), { "content-encoding": "gzip" }), o),
    ];
    for (const path of paths) {
      await path();
      expect(budget.inFlight).toBe(0);
    }
  });

  it("never holds more than its capacity across 100 concurrent 1 MiB bodies, and releases all", async () => {
    const budget = createBodyBudget(8 * MiB);
    const data = payload(MiB);
    const gz = zlib.gzipSync(data);
    let peak = 0;
    const sample = async () => {
      peak = Math.max(peak, budget.inFlight);
      await null; // let the other readers interleave
    };
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => {
        const kind = i % 3;
        const s = source(kind === 2 ? gz : data, { chunk: 64 * KiB, onPull: sample });
        const headers: Record<string, string> =
          kind === 0 ? { "content-length": String(MiB) } : kind === 2 ? { "content-encoding": "gzip" } : {};
        return readBody(post(s.stream, headers), { maxBytes: 2 * MiB, budget });
      }),
    );
    const ok = results.filter((r) => r.ok);
    const busy = results.filter((r) => !r.ok && r.status === 503);
    expect(ok.length).toBeGreaterThan(0);
    expect(busy.length).toBeGreaterThan(0);
    expect(ok.length + busy.length).toBe(100);
    for (const r of ok) expect(bytesOf(r)).toEqual(data);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(budget.capacity);
    expect(budget.inFlight).toBe(0);
  });

  it("gives up on a body that stalls past timeoutMs with 408 and releases its up-front reservation", async () => {
    const budget = createBodyBudget(MiB);
    const stalled = Promise.withResolvers<void>(); // never resolved: the client stops sending
    let pulls = 0;
    const s = source(payload(100 * KiB), { chunk: 10 * KiB, onPull: () => (++pulls > 2 ? stalled.promise : undefined) });
    const r = failure(await readBody(post(s.stream, { "content-length": String(100 * KiB) }), { maxBytes: MiB, budget, timeoutMs: 50 }));
    expect([r.status, r.code, r.headers]).toEqual([408, "body_timeout", { connection: "close" }]);
    expect(s.cancelled).toBe(true);
    expect(budget.inFlight).toBe(0);
    const gz = source(zlib.gzipSync(payload(100 * KiB)), { chunk: 1024, onPull: () => (pulls++ > 4 ? stalled.promise : undefined) });
    const g = failure(await readBody(post(gz.stream, { "content-encoding": "gzip" }), { maxBytes: MiB, budget, timeoutMs: 50 }));
    expect([g.status, g.code]).toEqual([408, "body_timeout"]);
    expect(budget.inFlight).toBe(0);
  });

  it("charges a decoder its state, and brotli its ring buffer up to the window the stream announces", async () => {
    const data = payload(MiB);
    const peakOf = async (body: Uint8Array, ce: string) => {
      const inner = createBodyBudget(16 * MiB);
      let peak = 0;
      const budget = {
        get inFlight() {
          return inner.inFlight;
        },
        capacity: inner.capacity,
        tryReserve: (n: number) => {
          const ok = inner.tryReserve(n);
          peak = Math.max(peak, inner.inFlight);
          return ok;
        },
        release: (n: number) => inner.release(n),
      };
      expect(bytesOf(await readBody(post(body, { "content-encoding": ce }), { maxBytes: 4 * MiB, budget }))).toEqual(data);
      expect(inner.inFlight).toBe(0);
      return peak;
    };
    const brotli = (lgwin: number) =>
      zlib.brotliCompressSync(data, { params: { [zlib.constants.BROTLI_PARAM_LGWIN]: lgwin, [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } });
    const state = 128 * KiB;
    expect(await peakOf(zlib.gzipSync(data), "gzip")).toBe(MiB + state);
    expect(await peakOf(brotli(22), "br")).toBe(2 * MiB + state); // 4 MiB window: the ring grows with all of the output
    expect(await peakOf(brotli(16), "br")).toBe(MiB + 64 * KiB + state);
    expect(await peakOf(brotli(10), "br")).toBe(MiB + KiB + state);
  });

  it("refuses bad capacities and releases beyond what is reserved", () => {
    expect(() => createBodyBudget(0)).toThrow(RangeError);
    expect(() => createBodyBudget(1.5)).toThrow(RangeError);
    const b = createBodyBudget(10);
    expect(b.tryReserve(11)).toBe(false);
    expect(b.tryReserve(10)).toBe(true);
    expect(() => b.release(11)).toThrow();
  });
});

describe("readBody: programming errors", () => {
  it("throws on a body already read or locked", async () => {
    const read = post("abc");
    await read.text();
    await expect(readBody(read, { maxBytes: 10 })).rejects.toThrow(/already read or is locked/);
    const locked = post("abc");
    locked.body!.getReader();
    await expect(readBody(locked, { maxBytes: 10 })).rejects.toThrow(/already read or is locked/);
  });

  it("throws when maxBytes could never fit in the budget", async () => {
    await expect(readBody(post("abc"), { maxBytes: 2 * MiB, budget: createBodyBudget(MiB) })).rejects.toThrow(RangeError);
  });
});
