// The one request-body reader for every door that takes a body: Content-Length and Content-Encoding
// are judged before a byte is read, the wire and the decoded size are both capped while streaming, and
// every byte held while receiving is reserved from one budget shared by all requests.
// Key decisions: decoding uses the web DecompressionStream, which in Bun 1.4.5 is pull-based (a bomb
// stops one 64 KiB chunk past the cap) and refuses trailing junk; one content coding per body, a
// stacked list is refused with 415; a full budget answers 503 at once instead of queueing the upload.

/** The content codings readBody can decode; `identity` means "sent as is". */
export type ContentCoding = "gzip" | "deflate" | "br" | "identity";

/** Every coding readBody decodes, the default of `encodings`. */
export const ALL_CODINGS: readonly ContentCoding[] = ["gzip", "deflate", "br", "identity"];

export interface BodyBudget {
  /** bytes currently reserved */
  readonly inFlight: number;
  readonly capacity: number;
}

/** A budget that readBody can reserve from; create one per process and pass it to every door. */
export interface BodyBudgetControl extends BodyBudget {
  /** Reserves `bytes` if they fit under the capacity; on false nothing was reserved. */
  tryReserve(bytes: number): boolean;
  /** Returns bytes reserved earlier; returning more than is reserved is a programming error. */
  release(bytes: number): void;
}

export type BodyResult =
  | { ok: true; bytes: Uint8Array; /** with `keep`: returns the body's reservation (idempotent); else a no-op */ release: () => void }
  | { ok: false; status: 400 | 408 | 413 | 415 | 503; code: string; message: string; headers?: Record<string, string> };

type BodyFailure = Extract<BodyResult, { ok: false }>;

export interface ReadBodyOptions {
  /** the most bytes accepted, on the wire and again after decoding */
  maxBytes: number;
  /** shared across requests; without one only maxBytes bounds this request */
  budget?: BodyBudgetControl;
  /** the codings this door accepts (default: all of ALL_CODINGS) */
  encodings?: readonly ContentCoding[];
  /**
   * Time allowed for the whole body, then 408 (default: none). A Content-Length is reserved up front,
   * so without a deadline a client that trickles a byte now and then holds its reservation for as long
   * as it keeps the connection from going idle.
   */
  timeoutMs?: number;
  /**
   * Keep the body's reservation after reading, until the result's `release()` (default false): a door
   * that parses the bytes holds the budget while it works on them, so what it builds from concurrent
   * bodies is bounded by the budget too, not only what is being received.
   */
  keep?: boolean;
}

/** A budget of `capacityBytes` for the bytes all requests together may hold while being received. */
export function createBodyBudget(capacityBytes: number): BodyBudgetControl {
  if (!Number.isSafeInteger(capacityBytes) || capacityBytes <= 0)
    throw new RangeError(`a body budget needs a positive whole number of bytes, not ${capacityBytes}`);
  let inFlight = 0;
  return {
    get inFlight() {
      return inFlight;
    },
    capacity: capacityBytes,
    tryReserve(bytes) {
      if (inFlight + bytes > capacityBytes) return false;
      inFlight += bytes;
      return true;
    },
    release(bytes) {
      if (bytes > inFlight) throw new Error(`body budget: releasing ${bytes} bytes but only ${inFlight} are reserved`);
      inFlight -= bytes;
    },
  };
}

// What a decoder holds besides its output: the 32 KiB inflate window or the brotli state, and the
// 64 KiB output chunk it fills. Brotli's ring buffer grows with the output and is charged apart.
const DECODER_STATE_BYTES = 128 * 1024;
// Compressed input goes to the decoder in slices of this size, so one huge chunk cannot make it
// produce one huge output chunk before the cap is checked.
const SLICE_BYTES = 64 * 1024;
const MAX_BROTLI_WINDOW = 1 << 24;

/** Thrown inside readBody to stop at a refusal; never escapes it. */
class Refusal {
  constructor(readonly failure: BodyFailure) {}
}

// A refused body is left unread: `connection: close` makes Bun hang up after the answer instead of
// draining whatever the client still sends (a Content-Length of a terabyte would otherwise be read to the end).
const refuse = (status: BodyFailure["status"], code: string, message: string, headers?: Record<string, string>): Refusal =>
  new Refusal({ ok: false, status, code, message, headers: { connection: "close", ...headers } });

const noop = () => {};

const busy = () =>
  refuse(503, "server_busy", "the server is busy receiving other request bodies; retry in a second", { "retry-after": "1" });

/**
 * Reads the whole body of `request`, decoding its Content-Encoding, or says why not. Refusals are
 * results, never throws; the only throws are programming errors (a body already read or locked,
 * `maxBytes` above the budget's capacity). What is reserved: an unencoded body's Content-Length up
 * front, else each chunk as it is kept; for an encoded body the decoder's state and each decoded
 * chunk as it is produced (compressed bytes are not kept). All of it is released before this returns,
 * on every path: the caller then owns the bytes outside the budget.
 */
export async function readBody(request: Request, opts: ReadBodyOptions): Promise<BodyResult> {
  const { maxBytes, budget } = opts;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError(`maxBytes must be a whole number of bytes, not ${maxBytes}`);
  if (budget !== undefined && maxBytes > budget.capacity)
    throw new RangeError(`maxBytes (${maxBytes}) exceeds the body budget (${budget.capacity}): such a body could never be admitted`);
  if (request.bodyUsed || request.body?.locked === true)
    throw new Error("readBody: the request body was already read or is locked; a door reads its body once, through readBody");

  let held = 0;
  const take = (bytes: number): boolean => {
    if (budget === undefined) return true;
    if (!budget.tryReserve(bytes)) return false;
    held += bytes;
    return true;
  };
  const wire = wireReader(request.body, maxBytes);
  const timer =
    opts.timeoutMs === undefined
      ? undefined
      : setTimeout(
          () => wire.abort(refuse(408, "body_timeout", `the body did not arrive within ${opts.timeoutMs} ms`, { connection: "close" })),
          opts.timeoutMs,
        );
  try {
    const length = parseContentLength(request.headers.get("content-length"));
    const coding = parseContentEncoding(request.headers.get("content-encoding"), opts.encodings ?? ALL_CODINGS);
    if (length !== null && length > maxBytes)
      throw refuse(413, "body_too_large", `the body is ${length} bytes; the limit is ${maxBytes}`);
    wire.expect(length);
    const bytes = coding === "identity" ? await readPlain(wire, length, take) : await readDecoded(wire, coding, maxBytes, take);
    if (opts.keep !== true || budget === undefined || held === 0) return { ok: true, bytes, release: noop };
    const kept = held;
    held = 0; // handed to the caller
    let returned = false;
    return {
      ok: true,
      bytes,
      release() {
        if (returned) return;
        returned = true;
        budget.release(kept);
      },
    };
  } catch (err) {
    if (err instanceof Refusal) return err.failure;
    throw err;
  } finally {
    clearTimeout(timer);
    wire.close();
    if (held > 0) budget?.release(held);
  }
}

/** Content-Length as a number, null when absent; repeated identical values count as one (RFC 9110 §8.6). */
function parseContentLength(raw: string | null): number | null {
  if (raw === null) return null;
  let value: number | null = null;
  for (const part of raw.split(",")) {
    const digits = part.trim();
    if (!/^[0-9]+$/.test(digits))
      throw refuse(400, "invalid_content_length", `Content-Length must be one decimal number of bytes, not ${JSON.stringify(raw.slice(0, 40))}`);
    const n = Number(digits);
    if (value !== null && n !== value)
      throw refuse(400, "invalid_content_length", `Content-Length has conflicting values ${JSON.stringify(raw.slice(0, 40))}`);
    value = n;
  }
  return value;
}

/** The one coding of the body; identity entries drop out, `x-gzip` is gzip (RFC 9110 §8.4.1.3). */
function parseContentEncoding(raw: string | null, accepted: readonly ContentCoding[]): ContentCoding {
  const listed = (raw ?? "")
    .split(",")
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== "" && c !== "identity")
    .map((c) => (c === "x-gzip" ? "gzip" : c));
  const coded = accepted.filter((c) => c !== "identity");
  const advertised = [...coded, ...(accepted.includes("identity") ? [] : ["identity;q=0"])].join(", ") || "identity";
  const offer = coded.length === 0 ? "send the body without Content-Encoding" : `send it as one of ${coded.join(", ")}`;
  const unsupported = (why: string) => refuse(415, "unsupported_encoding", `${why}; ${offer}`, { "accept-encoding": advertised });
  if (listed.length > 1) throw unsupported(`Content-Encoding ${JSON.stringify(raw)} stacks ${listed.length} codings, which is not accepted`);
  const coding = (listed[0] ?? "identity") as ContentCoding;
  if (!accepted.includes(coding))
    throw unsupported(coding === "identity" ? "this endpoint takes only encoded bodies" : `Content-Encoding ${JSON.stringify(listed[0].slice(0, 40))} is not supported`);
  return coding;
}

interface WireReader {
  /** Sets the announced length the body must match, once headers are judged. */
  expect(length: number | null): void;
  /** The next wire chunk, or null at the end; refuses past maxBytes, a length mismatch, or a broken stream. */
  next(): Promise<Uint8Array | null>;
  /** Cancels the stream unless it was read to its end. */
  close(): void;
  /** Cancels the stream; the pending and every later next() throw `why`. */
  abort(why: Refusal): void;
}

function wireReader(body: ReadableStream<Uint8Array> | null, maxBytes: number): WireReader {
  const reader = body?.getReader() ?? null;
  let length: number | null = null;
  let seen = 0;
  let ended = reader === null;
  let aborted: Refusal | null = null;
  const close = () => {
    if (ended || reader === null) return;
    ended = true;
    reader.cancel().catch(() => {});
  };
  return {
    expect(l) {
      length = l;
    },
    async next() {
      if (aborted !== null) throw aborted;
      if (ended) return null;
      let r: Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]>>;
      try {
        r = await reader!.read();
      } catch {
        ended = true; // an errored stream needs no cancel
        if (aborted !== null) throw aborted;
        throw refuse(400, "body_incomplete", `the body broke off after ${seen} bytes (the client closed or reset the connection)`);
      }
      if (aborted !== null) throw aborted; // cancelled under a pending read, which then ends empty
      if (r.done) {
        ended = true;
        if (length !== null && seen < length)
          throw refuse(400, "body_incomplete", `the body ended after ${seen} of the ${length} bytes its Content-Length announced`);
        return null;
      }
      seen += r.value.byteLength;
      if (seen > maxBytes) throw refuse(413, "body_too_large", `the body exceeds the limit of ${maxBytes} bytes`);
      if (length !== null && seen > length)
        throw refuse(400, "invalid_content_length", `the body is longer than the ${length} bytes its Content-Length announced`);
      return r.value;
    },
    close,
    abort(why) {
      aborted ??= why;
      close();
    },
  };
}

/** An unencoded body: one allocation when the length is known, else chunks joined once at the end. */
async function readPlain(wire: WireReader, length: number | null, take: (bytes: number) => boolean): Promise<Uint8Array> {
  if (length !== null) {
    if (!take(length)) throw busy();
    const out = new Uint8Array(length);
    let at = 0;
    for (let c = await wire.next(); c !== null; c = await wire.next()) {
      out.set(c, at);
      at += c.byteLength;
    }
    return out;
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (let c = await wire.next(); c !== null; c = await wire.next()) {
    if (!take(c.byteLength)) throw busy();
    chunks.push(c);
    total += c.byteLength;
  }
  return join(chunks, total);
}

/**
 * A gzip, deflate or br body, decoded while it arrives. Two loops share one DecompressionStream: the
 * pump feeds wire slices in (awaiting each, so at most one is queued), the drain collects output,
 * charging it and capping it at maxBytes. The first refusal wins and tears down the other side.
 */
async function readDecoded(wire: WireReader, coding: Exclude<ContentCoding, "identity">, maxBytes: number, take: (bytes: number) => boolean): Promise<Uint8Array> {
  let first = await wire.next();
  // zlib-wrapped or raw deflate is told apart by the two-byte zlib header, as browsers do
  while (coding === "deflate" && first !== null && first.byteLength < 2) {
    const more = await wire.next();
    if (more === null) break;
    first = join([first, more], first.byteLength + more.byteLength);
  }
  const format: Bun.CompressionFormat =
    coding === "gzip" ? "gzip" : coding === "br" ? "brotli" : first !== null && isZlibHeader(first) ? "deflate" : "deflate-raw";
  const window = coding === "br" && first !== null ? brotliWindow(first[0]) : 0;
  if (!take(DECODER_STATE_BYTES)) throw busy();

  const decoder = new DecompressionStream(format as CompressionFormat); // the DOM lib's type lacks Bun's "brotli"
  const writer = decoder.writable.getWriter();
  const output = decoder.readable.getReader();
  let failure: Refusal | null = null;
  const invalid = (err: unknown) =>
    refuse(400, "invalid_encoding", `the body is labelled ${coding} but is not valid ${coding} data (${String((err as Error)?.message ?? err).slice(0, 100)})`);
  const fail = (r: Refusal) => {
    if (failure === null) failure = r;
    wire.close(); // a pump waiting on a slow client must not wait for its next chunk
    writer.abort(r).catch(() => {});
    output.cancel(r).catch(() => {});
  };
  const chunks: Uint8Array[] = [];
  let total = 0;

  const pump = async () => {
    try {
      for (let c = first; c !== null; c = await wire.next())
        for (let at = 0; at < c.byteLength; at += SLICE_BYTES) await writer.write(c.subarray(at, at + SLICE_BYTES) as Uint8Array<ArrayBuffer>);
      await writer.close();
    } catch (err) {
      fail(err instanceof Refusal ? err : invalid(err));
    }
  };
  const drain = async () => {
    try {
      for (let r = await output.read(); !r.done; r = await output.read()) {
        const n = r.value.byteLength;
        if (total + n > maxBytes) throw refuse(413, "body_too_large", `the ${coding}-decoded body exceeds the limit of ${maxBytes} bytes`);
        // brotli's ring buffer grows with the output up to the stream's window: charge it as it grows
        const ring = Math.min(window, total + n) - Math.min(window, total);
        if (!take(n + ring)) throw busy();
        chunks.push(r.value);
        total += n;
      }
    } catch (err) {
      fail(err instanceof Refusal ? err : invalid(err));
    }
  };
  await Promise.all([pump(), drain()]);
  if (failure !== null) throw failure;
  return join(chunks, total);
}

/** RFC 1950: CM = 8, CINFO ≤ 7 and the 16-bit header a multiple of 31. */
const isZlibHeader = (b: Uint8Array) => (b[0] & 0x0f) === 8 && b[0] >> 4 <= 7 && ((b[0] << 8) | b[1]) % 31 === 0;

/** The window size a brotli stream announces in its first bits (RFC 7932 §9.1), the most its ring buffer grows to. */
function brotliWindow(byte: number): number {
  if ((byte & 1) === 0) return 1 << 16;
  const n = (byte >> 1) & 7;
  if (n !== 0) return 1 << (17 + n);
  const m = (byte >> 4) & 7;
  if (m === 0) return 1 << 17;
  return m === 1 ? MAX_BROTLI_WINDOW : 1 << (8 + m); // m = 1 is the large-window escape, which the decoder refuses
}

/** One copy at the end; not charged, since it is synchronous: one join at a time in the process. */
function join(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
