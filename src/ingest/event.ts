// The event contract at the door (DESIGN §2): split a body into candidate events, validate each, and give the wire form.
// Validation reads known fields only into a fresh object (hostile keys never travel) and builds reason strings only on failure.

import { bodyError, type BodyError } from "./errors.ts";
import { EVENT_TYPES, LIMITS, type EventType, type PurchaseItem, type ShopEvent } from "./event-types.ts";
import { describe, parseTimestamp } from "./timestamp.ts";

export interface ValidateContext {
  /** epoch ms */
  now: number;
  /** longest retention: events older than now - maxAgeMs are refused */
  maxAgeMs: number;
  /** reporting currency, e.g. "USD" */
  currency: string;
}

export type Validation = { ok: true; event: ShopEvent } | { ok: false; reason: string };

export interface BodyItem {
  index: number;
  value?: unknown;
  error?: string;
  /** the NDJSON line the value came from (lets the door log it without re-serialising) */
  raw?: string;
}

export type ParsedBody = { ok: true; items: BodyItem[] } | BodyError;

/** Defaults of parseBody's limits. */
export const BODY_LIMITS = Object.freeze({ maxEvents: 10_000, maxLineBytes: 1024 * 1024 });

const STOCK_MAX = 2 ** 31 - 1;
const TYPE_LIST = EVENT_TYPES.join(", ");

// ---------------------------------------------------------------------------------------------
// validateEvent

type Raw = Record<string, unknown>;

/** Set by the checkers below when they fail; read at once by the caller (single-threaded). */
let reason = "";

/** Validate one decoded JSON value against the contract; never throws. */
export function validateEvent(raw: unknown, ctx: ValidateContext): Validation {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return { ok: false, reason: `event must be a JSON object, got ${describe(raw)}` };
  }
  try {
    const event = readEvent(raw as Raw, ctx);
    return event === null ? { ok: false, reason } : { ok: true, event };
  } catch (err) {
    // Only reachable for non-JSON input (throwing getters, proxies); JSON.parse output cannot throw here.
    return { ok: false, reason: `event could not be read: ${clip(errorMessage(err))}` };
  }
}

function readEvent(o: Raw, ctx: ValidateContext): ShopEvent | null {
  const eventId = str(o.eventId, "eventId", -1, 1, LIMITS.idMax, true);
  if (eventId === null) return null;
  if (eventId === undefined) return missing("eventId");

  const typeRaw = o.type;
  if (typeRaw === undefined || typeRaw === null) return missing("type");
  if (typeof typeRaw !== "string" || !isEventType(typeRaw)) {
    return bad(`type must be one of ${TYPE_LIST}, got ${describe(typeRaw)}`);
  }
  const type: EventType = typeRaw;

  const time = readTimestamp(o.timestamp, ctx);
  if (time !== time) return null; // NaN: reason set

  const inventory = type === "inventory_update";
  const userId = str(o.userId, "userId", -1, 1, LIMITS.idMax, true);
  if (userId === null) return null;
  if (userId === undefined && !inventory) return missing("userId");
  const sessionId = str(o.sessionId, "sessionId", -1, 1, LIMITS.idMax, true);
  if (sessionId === null) return null;
  if (sessionId === undefined && !inventory) return missing("sessionId");

  const ev: ShopEvent = { eventId, type, time };
  if (userId !== undefined) ev.userId = userId;
  if (sessionId !== undefined) ev.sessionId = sessionId;

  // Every known field is checked wherever it appears: a malformed known field is a client bug worth reporting.
  const page = str(o.page, "page", -1, 0, LIMITS.urlMax, false);
  if (page === null) return null;
  if (page !== undefined) ev.page = page;
  const referrer = str(o.referrer, "referrer", -1, 0, LIMITS.urlMax, false);
  if (referrer === null) return null;
  if (referrer !== undefined) ev.referrer = referrer;
  const utmSource = str(o.utmSource, "utmSource", -1, 0, LIMITS.utmMax, false);
  if (utmSource === null) return null;
  if (utmSource !== undefined) ev.utmSource = utmSource;
  const utmMedium = str(o.utmMedium, "utmMedium", -1, 0, LIMITS.utmMax, false);
  if (utmMedium === null) return null;
  if (utmMedium !== undefined) ev.utmMedium = utmMedium;
  const utmCampaign = str(o.utmCampaign, "utmCampaign", -1, 0, LIMITS.utmMax, false);
  if (utmCampaign === null) return null;
  if (utmCampaign !== undefined) ev.utmCampaign = utmCampaign;

  const loadTimeMs = num(o.loadTimeMs, "loadTimeMs", -1, 0, LIMITS.loadTimeMaxMs, false);
  if (loadTimeMs !== loadTimeMs) return null;
  if (loadTimeMs !== undefined) ev.loadTimeMs = loadTimeMs;

  const productId = str(o.productId, "productId", -1, 1, LIMITS.productMax, true);
  if (productId === null) return null;
  if (productId !== undefined) ev.productId = productId;
  else if (type === "product_view" || type === "add_to_cart" || type === "remove_from_cart" || inventory) {
    return missing("productId", type);
  }
  const category = str(o.category, "category", -1, 0, LIMITS.productMax, true);
  if (category === null) return null;
  if (category !== undefined) ev.category = category;

  const priceCents = cents(o.price, "price", -1);
  if (priceCents !== priceCents) return null;
  if (priceCents !== undefined) ev.priceCents = priceCents;

  const quantity = num(o.quantity, "quantity", -1, 1, LIMITS.quantityMax, true);
  if (quantity !== quantity) return null;
  if (quantity !== undefined) ev.quantity = quantity;
  else if (type === "add_to_cart" || type === "remove_from_cart") ev.quantity = 1;

  const orderId = str(o.orderId, "orderId", -1, 0, LIMITS.idMax, true);
  if (orderId === null) return null;
  if (orderId !== undefined) ev.orderId = orderId;

  const currency = readCurrency(o.currency, ctx.currency);
  if (currency === null) return null;
  if (currency !== undefined) ev.currency = currency;
  else if (type === "purchase") ev.currency = upper(ctx.currency);

  const itemsRaw = o.items;
  if (itemsRaw !== undefined && itemsRaw !== null) {
    const items = readItems(itemsRaw);
    if (items === null) return null;
    ev.items = items;
  } else if (type === "purchase") return missing("items", type);

  const stock = num(o.stock, "stock", -1, 0, STOCK_MAX, true);
  if (stock !== stock) return null;
  if (stock !== undefined) ev.stock = stock;
  else if (inventory) return missing("stock", type);

  return ev;
}

function readItems(v: unknown): PurchaseItem[] | null {
  if (!Array.isArray(v)) return bad(`items must be an array of 1 to ${LIMITS.itemsMax} items, got ${describe(v)}`);
  const n = v.length;
  if (n < 1 || n > LIMITS.itemsMax) return bad(`items must have 1 to ${LIMITS.itemsMax} entries, got ${n}`);
  const out = new Array<PurchaseItem>(n);
  for (let i = 0; i < n; i++) {
    const it: unknown = v[i];
    if (typeof it !== "object" || it === null || Array.isArray(it)) {
      return bad(`items[${i}] must be an object, got ${describe(it)}`);
    }
    const r = it as Raw;
    const productId = str(r.productId, "productId", i, 1, LIMITS.productMax, true);
    if (productId === null) return null;
    if (productId === undefined) return bad(`items[${i}].productId is required`);
    const priceCents = cents(r.price, "price", i);
    if (priceCents !== priceCents) return null;
    if (priceCents === undefined) return bad(`items[${i}].price is required`);
    const quantity = num(r.quantity, "quantity", i, 1, LIMITS.quantityMax, true);
    if (quantity !== quantity) return null;
    if (quantity === undefined) return bad(`items[${i}].quantity is required`);
    const category = str(r.category, "category", i, 0, LIMITS.productMax, true);
    if (category === null) return null;
    const item: PurchaseItem = { productId, priceCents, quantity };
    if (category !== undefined) item.category = category;
    out[i] = item;
  }
  return out;
}

function bad(msg: string): null {
  reason = msg;
  return null;
}

function missing(field: string, type?: EventType): null {
  reason = type === undefined ? `${field} is required` : `${field} is required on ${type}`;
  return null;
}

function fieldName(field: string, item: number): string {
  return item < 0 ? field : `items[${item}].${field}`;
}

function isEventType(s: string): s is EventType {
  // A switch, not TYPE_CODE[s]: "__proto__" and "constructor" must not find anything inherited.
  switch (s) {
    case "page_view":
    case "product_view":
    case "add_to_cart":
    case "remove_from_cart":
    case "checkout":
    case "purchase":
    case "inventory_update":
      return true;
    default:
      return false;
  }
}

/**
 * A string field: undefined when absent (or null), null when invalid (reason set), else the string.
 * Ids reject control characters other than tab; every string rejects lone surrogates.
 */
function str(v: unknown, field: string, item: number, min: number, max: number, id: boolean): string | undefined | null {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") {
    return bad(`${fieldName(field, item)} must be a string of ${min} to ${max} characters, got ${describe(v)}`);
  }
  const n = v.length;
  // Length first, so a multi-megabyte string is refused before anything walks or copies it.
  if (n > max) return bad(`${fieldName(field, item)} must be at most ${max} characters, got ${n}`);
  if (n < min) return bad(`${fieldName(field, item)} must not be empty`);
  if (id) {
    for (let i = 0; i < n; i++) {
      const c = v.charCodeAt(i);
      if (c < 0x20) {
        if (c !== 0x09) return bad(`${fieldName(field, item)} must not contain control characters, got ${describe(v)}`);
      } else if (c >= 0x7f && c <= 0x9f) {
        return bad(`${fieldName(field, item)} must not contain control characters, got ${describe(v)}`);
      } else if (c >= 0xd800 && c <= 0xdfff) {
        const next = i + 1 < n ? v.charCodeAt(i + 1) : 0;
        if (c > 0xdbff || next < 0xdc00 || next > 0xdfff) {
          return bad(`${fieldName(field, item)} must not contain a lone surrogate (invalid UTF-16)`);
        }
        i++;
      }
    }
  } else if (!v.isWellFormed()) {
    return bad(`${fieldName(field, item)} must not contain a lone surrogate (invalid UTF-16)`);
  }
  return v;
}

/** A numeric field in [min, max]: undefined when absent (or null), NaN when invalid (reason set). */
function num(v: unknown, field: string, item: number, min: number, max: number, integer: boolean): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number" && v >= min && v <= max && (integer ? Number.isInteger(v) : Number.isFinite(v))) {
    return v + 0; // -0 becomes 0, so the wire form and equality stay simple
  }
  reason = `${fieldName(field, item)} must be ${integer ? "an integer" : "a number"} from ${min} to ${max}, got ${describe(v)}`;
  return NaN;
}

/**
 * A price in currency units to integer cents. Accepts values within 1e-9 of a 2-decimal amount, plus a
 * relative 1e-15 (a few ulps) so binary noise on large amounts (9999999.99, 0.1 + 0.2) is not mistaken for a third decimal.
 */
function cents(v: unknown, field: string, item: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !(v >= 0 && v <= LIMITS.priceMax)) {
    reason = `${fieldName(field, item)} must be a number from 0 to ${LIMITS.priceMax}, got ${describe(v)}`;
    return NaN;
  }
  const scaled = v * 100;
  const c = Math.round(scaled);
  if (Math.abs(scaled - c) > 1e-7 + scaled * 1e-15) {
    reason = `${fieldName(field, item)} must have at most 2 decimals, got ${describe(v)}`;
    return NaN;
  }
  return c + 0;
}

function readCurrency(v: unknown, reporting: string): string | undefined | null {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") return bad(`currency must be a string, got ${describe(v)}`);
  if (v === reporting) return upper(reporting);
  const want = upper(reporting);
  if (v.length === want.length && v.toUpperCase() === want) return want;
  return bad(`currency ${describe(v)} is not the reporting currency ${want}`);
}

function upper(s: string): string {
  // Reporting currencies are configured uppercase; avoid toUpperCase's copy on the common path.
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x61 && c <= 0x7a) return s.toUpperCase();
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// timestamp

/** Event time in epoch ms, or NaN with `reason` set. The shape is the shared parser's; the window is the door's. */
function readTimestamp(v: unknown, ctx: ValidateContext): number {
  const parsed = parseTimestamp(v, TIMESTAMP_OPTIONS);
  if (!parsed.ok) {
    reason = parsed.message;
    return NaN;
  }
  const t = parsed.ms;
  if (t > ctx.now + LIMITS.futureSkewMs) {
    reason = `timestamp ${isoOf(t)} is more than ${LIMITS.futureSkewMs / 60_000} minutes in the future (now ${isoOf(ctx.now)})`;
    return NaN;
  }
  const horizon = ctx.now - ctx.maxAgeMs;
  if (t < horizon) {
    const seconds = typeof v === "number" && t * 1000 >= horizon && t * 1000 <= ctx.now + LIMITS.futureSkewMs;
    reason =
      `timestamp ${isoOf(t)} is older than the retention horizon ${isoOf(horizon)}` +
      (seconds ? " (it looks like epoch seconds; send milliseconds)" : "");
    return NaN;
  }
  return t;
}

/** JSON carries numbers: epoch ms in a string is refused, and every time names its zone. */
const TIMESTAMP_OPTIONS = Object.freeze({ name: "timestamp", epochDigits: false, zonelessUtc: false });

function isoOf(t: number): string {
  // the parser bounds t; now and the horizon come from the caller
  return Math.abs(t) <= 8.64e15 ? new Date(t).toISOString() : String(t);
}

// ---------------------------------------------------------------------------------------------
// reasons

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function clip(s: string): string {
  return s.length > 120 ? `${s.slice(0, 120)}…` : s;
}

// ---------------------------------------------------------------------------------------------
// toWire

/**
 * Canonical wire form: contract field names, `timestamp` as epoch ms, `price` in currency units with
 * at most 2 decimals, unknown fields dropped; validateEvent(JSON.parse(toWire(e))) gives back an equal event.
 */
export function toWire(e: ShopEvent): string {
  const w: Record<string, unknown> = { eventId: e.eventId, type: e.type, timestamp: e.time };
  if (e.userId !== undefined) w.userId = e.userId;
  if (e.sessionId !== undefined) w.sessionId = e.sessionId;
  if (e.page !== undefined) w.page = e.page;
  if (e.referrer !== undefined) w.referrer = e.referrer;
  if (e.utmSource !== undefined) w.utmSource = e.utmSource;
  if (e.utmMedium !== undefined) w.utmMedium = e.utmMedium;
  if (e.utmCampaign !== undefined) w.utmCampaign = e.utmCampaign;
  if (e.loadTimeMs !== undefined) w.loadTimeMs = e.loadTimeMs;
  if (e.productId !== undefined) w.productId = e.productId;
  if (e.category !== undefined) w.category = e.category;
  // cents / 100 is the double nearest the 2-decimal amount, which JSON prints in its shortest form.
  if (e.priceCents !== undefined) w.price = e.priceCents / 100;
  if (e.quantity !== undefined) w.quantity = e.quantity;
  if (e.orderId !== undefined) w.orderId = e.orderId;
  if (e.currency !== undefined) w.currency = e.currency;
  if (e.items !== undefined) {
    w.items = e.items.map((it) =>
      it.category === undefined
        ? { productId: it.productId, price: it.priceCents / 100, quantity: it.quantity }
        : { productId: it.productId, price: it.priceCents / 100, quantity: it.quantity, category: it.category },
    );
  }
  if (e.stock !== undefined) w.stock = e.stock;
  return JSON.stringify(w);
}

// ---------------------------------------------------------------------------------------------
// parseBody

// fatal: invalid bytes are reported, never replaced by U+FFFD. ignoreBOM: a BOM is stripped by hand, only at the start.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Split an HTTP body into candidate events. `application/json` (an object or an array), `application/x-ndjson`
 * (one value per non-blank line; bad lines become item errors) and `text/plain` (JSON if the whole body parses,
 * else NDJSON). Item `index` is the position of the event in the batch.
 */
export function parseBody(
  bytes: Uint8Array,
  contentType: string | null,
  limits?: { maxEvents?: number; maxLineBytes?: number },
): ParsedBody {
  const maxEvents = limits?.maxEvents ?? BODY_LIMITS.maxEvents;
  const maxLineBytes = limits?.maxLineBytes ?? BODY_LIMITS.maxLineBytes;
  const media = mediaType(contentType);
  const isJson = media === "application/json";
  const isNdjson = media === "application/x-ndjson";
  if (!isJson && !isNdjson && media !== "text/plain") {
    return bodyError(
      "unsupported_media_type",
      contentType === null
        ? "Content-Type is required: application/json, application/x-ndjson or text/plain"
        : `Content-Type ${describe(contentType)} is not supported; use application/json, application/x-ndjson or text/plain`,
    );
  }
  const start = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  let text: string | undefined;
  try {
    text = utf8.decode(start === 0 ? bytes : bytes.subarray(start));
  } catch {
    if (isJson) return bodyError("invalid_utf8", "body is not valid UTF-8");
    // NDJSON keeps the good lines: decode line by line so only the broken ones fail.
    return ndjsonFromBytes(bytes, start, maxEvents, maxLineBytes);
  }
  if (isNdjson) return ndjsonFromText(text, bytes, start, maxEvents, maxLineBytes);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    if (isJson) return bodyError("malformed_json", `body is not valid JSON: ${clip(errorMessage(err))}`);
    return ndjsonFromText(text, bytes, start, maxEvents, maxLineBytes);
  }
  if (!Array.isArray(value)) return { ok: true, items: [{ index: 0, value }] };
  const n = value.length;
  if (n > maxEvents) return tooMany(maxEvents);
  const items = new Array<BodyItem>(n);
  for (let i = 0; i < n; i++) items[i] = { index: i, value: value[i] };
  return { ok: true, items };
}

function mediaType(ct: string | null): string {
  if (ct === null) return "";
  const semi = ct.indexOf(";");
  return (semi < 0 ? ct : ct.slice(0, semi)).trim().toLowerCase();
}

function tooMany(maxEvents: number): BodyError {
  return bodyError("too_many_events", `a batch may carry at most ${maxEvents} events`);
}

function parseLine(line: string, index: number): BodyItem {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return { index, error: `malformed JSON: ${clip(errorMessage(err))}` };
  }
  if (Array.isArray(value)) return { index, error: "line is a JSON array; NDJSON carries one event per line" };
  return { index, value, raw: line };
}

function lineTooLong(index: number, maxLineBytes: number): BodyItem {
  return { index, error: `line is longer than ${maxLineBytes} bytes` };
}

/** NDJSON over an already decoded body: one decode for the whole body, lines are substrings. */
function ndjsonFromText(text: string, bytes: Uint8Array, start: number, maxEvents: number, maxLineBytes: number): ParsedBody {
  const items: BodyItem[] = [];
  const n = text.length;
  // Equal lengths mean every byte was ASCII, so string offsets are byte offsets; otherwise walk the
  // bytes in step (0x0A only ever encodes "\n" in valid UTF-8) to measure lines in bytes.
  const ascii = n === bytes.length - start;
  let pos = 0;
  let bpos = start;
  let index = 0;
  for (;;) {
    let end = text.indexOf("\n", pos);
    if (end < 0) end = n;
    let bend = end;
    if (!ascii) {
      bend = bytes.indexOf(0x0a, bpos);
      if (bend < 0) bend = bytes.length;
    }
    if (!blankText(text, pos, end)) {
      if (index >= maxEvents) return tooMany(maxEvents);
      const byteLen = ascii ? end - pos : bend - bpos;
      items.push(byteLen > maxLineBytes ? lineTooLong(index, maxLineBytes) : parseLine(text.slice(pos, end), index));
      index++;
    }
    if (end >= n) break;
    pos = end + 1;
    bpos = bend + 1;
  }
  return { ok: true, items };
}

/** NDJSON over bytes that are not all valid UTF-8: each line is decoded on its own. */
function ndjsonFromBytes(bytes: Uint8Array, start: number, maxEvents: number, maxLineBytes: number): ParsedBody {
  const items: BodyItem[] = [];
  const n = bytes.length;
  let pos = start;
  let index = 0;
  for (;;) {
    let end = bytes.indexOf(0x0a, pos);
    if (end < 0) end = n;
    if (!blankBytes(bytes, pos, end)) {
      if (index >= maxEvents) return tooMany(maxEvents);
      if (end - pos > maxLineBytes) items.push(lineTooLong(index, maxLineBytes));
      else {
        let line: string | undefined;
        try {
          line = utf8.decode(bytes.subarray(pos, end));
        } catch {
          line = undefined;
        }
        items.push(line === undefined ? { index, error: "line is not valid UTF-8" } : parseLine(line, index));
      }
      index++;
    }
    if (end >= n) break;
    pos = end + 1;
  }
  return { ok: true, items };
}

function blankText(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 13) return false;
  }
  return true;
}

function blankBytes(b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = b[i];
    if (c !== 32 && c !== 9 && c !== 13) return false;
  }
  return true;
}
