// Test helper for the window layer: builds ring records exactly as ingest workers lay them out, replays the
// engine's checkpoint into an in-memory history store, and computes expected metrics with plain loops.

import type { Aggregator, CheckpointCapture, LateEvent, Res } from "./aggregator.ts";
import { HLL_SEED_HI, HLL_SEED_LO } from "./hyperloglog.ts";
import {
  C_DUPLICATES,
  C_LATE_DROPPED,
  C_LATE_MERGED,
  C_ORDERS,
  C_REVENUE,
  C_TOTAL,
  C_UNITS,
  DIRECT,
  DIRECT_KEY,
  FAMILIES,
  G_STRIDE,
  N_CORE,
  N_FUNNEL,
  P_STRIDE,
  createPane,
  encodePane,
  mergeEncoded,
  mergePane,
  type Family,
  type Pane,
} from "./pane.ts";
import type { WindowReader } from "./query.ts";
import { TYPES } from "./record.ts";
import {
  FLAG_END,
  K_DUPLICATE,
  K_ITEM,
  K_SKIP,
  RECORD_WORDS,
  W_CATEGORY,
  W_KIND,
  W_LOAD_US,
  W_OFFSET,
  W_PARTITION,
  W_PRICE,
  W_PRODUCT,
  W_QTY,
  W_SESSION_HI,
  W_SESSION_LO,
  W_SOURCE,
  W_TIME,
  W_USER_HI,
  W_USER_LO,
} from "./record.ts";

export type EventTypeName = (typeof TYPES)[number];
/** Event types plus the two marker records a worker emits for duplicates and dead-lettered lines. */
export type TestKind = EventTypeName | "duplicate" | "skip";

export interface TestItem {
  productId: string;
  priceCents: number;
  quantity: number;
  category?: string;
}

export interface TestEvent {
  type: TestKind;
  partition: number;
  offset: number;
  /** event time, epoch ms */
  time: number;
  userId?: string;
  sessionId?: string;
  productId?: string;
  category?: string;
  utmSource?: string;
  priceCents?: number;
  quantity?: number;
  stock?: number;
  loadTimeMs?: number;
  items?: TestItem[];
}

/** A processing-time clock the test moves by hand. */
export function fakeClock(start = 1_000_000) {
  const c = {
    now: start,
    fn: () => c.now,
    tick(ms: number) {
      c.now += ms;
    },
  };
  return c;
}

/** Records of one event in a plain Int32Array/Float64Array pair over one buffer (f64 index = word >> 1). */
export function encodeEvent(ev: TestEvent, id: (s: string | undefined) => number): { i32: Int32Array; f64: Float64Array; count: number } {
  const items = ev.type === "purchase" ? (ev.items ?? []) : [];
  const count = 1 + items.length;
  const buf = new ArrayBuffer(count * RECORD_WORDS * 4);
  const i32 = new Int32Array(buf);
  const f64 = new Float64Array(buf);
  const header = (base: number, kind: number) => {
    i32[base + W_KIND] = kind;
    i32[base + W_PARTITION] = ev.partition;
    f64[(base + W_OFFSET) >> 1] = ev.offset;
    f64[(base + W_TIME) >> 1] = ev.time;
  };
  if (ev.type === "duplicate" || ev.type === "skip") {
    header(0, (ev.type === "duplicate" ? K_DUPLICATE : K_SKIP) | FLAG_END);
    if (ev.type === "skip") f64[W_TIME >> 1] = 0; // the worker knows no event time for a dead letter
    return { i32, f64, count: 1 };
  }
  const kind = TYPES.indexOf(ev.type);
  header(0, items.length > 0 ? kind : kind | FLAG_END);
  const u = ev.userId ?? "";
  const s = ev.sessionId ?? "";
  i32[W_USER_LO] = Bun.hash.murmur32v3(u, HLL_SEED_LO);
  i32[W_USER_HI] = Bun.hash.murmur32v3(u, HLL_SEED_HI);
  i32[W_SESSION_LO] = Bun.hash.murmur32v3(s, HLL_SEED_LO);
  i32[W_SESSION_HI] = Bun.hash.murmur32v3(s, HLL_SEED_HI);
  i32[W_PRODUCT] = id(ev.productId);
  i32[W_CATEGORY] = id(ev.category);
  i32[W_SOURCE] = id(ev.utmSource);
  i32[W_PRICE] = ev.priceCents ?? 0;
  i32[W_QTY] = ev.type === "inventory_update" ? (ev.stock ?? 0) : (ev.quantity ?? 1);
  i32[W_LOAD_US] = ev.loadTimeMs === undefined ? -1 : Math.round(ev.loadTimeMs * 1000);
  items.forEach((it, k) => {
    const b = (k + 1) * RECORD_WORDS;
    header(b, k === items.length - 1 ? K_ITEM | FLAG_END : K_ITEM);
    i32[b + W_PRODUCT] = id(it.productId);
    i32[b + W_CATEGORY] = id(it.category);
    i32[b + W_PRICE] = it.priceCents;
    i32[b + W_QTY] = it.quantity;
  });
  return { i32, f64, count };
}

export interface Feeder {
  /** identity map: record string ids are already the aggregator's dictionary ids */
  readonly xlate: Int32Array;
  /** apply every record of one event, without advancing */
  event(ev: TestEvent): void;
  /** apply a batch, then advance the watermark once, as the drain loop does */
  batch(evs: readonly TestEvent[]): void;
}

export function createFeeder(agg: Aggregator): Feeder {
  let xlate = new Int32Array(0);
  const id = (s: string | undefined): number => {
    if (s === undefined) return -1;
    const g = agg.dict.intern(s);
    if (g >= xlate.length) xlate = Int32Array.from({ length: Math.max(64, (g + 1) * 2) }, (_, i) => i);
    return g;
  };
  const feeder: Feeder = {
    get xlate() {
      return xlate;
    },
    event(ev) {
      const r = encodeEvent(ev, id);
      for (let k = 0; k < r.count; k++) agg.apply(r.i32, r.f64, k * RECORD_WORDS, xlate);
    },
    batch(evs) {
      for (const ev of evs) feeder.event(ev);
      agg.advance();
    },
  };
  return feeder;
}

// ---- in-memory history store and the engine's checkpoint, replicated ----

export interface StoredWindow {
  family: string;
  res: Res;
  start: number;
  partition: number;
  value: Uint8Array;
}
type RestoreInput = Parameters<Aggregator["restore"]>[0];

/** The rows a sqlite history would hold, with the same upsert/delete order per commit. */
export interface MemoryHistory extends WindowReader {
  windows: Map<string, StoredWindow>;
  open: Map<string, { res: Res; start: number; partition: number; value: Uint8Array }>;
  sessions: Map<string, RestoreInput["sessions"][number]>;
  inventory: Map<string, RestoreInput["inventory"][number]>;
  late: Map<string, LateEvent>;
  offsets: Map<number, number>;
  meta: string | null;
  commits: number;
  loadCheckpoint(): RestoreInput;
}

export function createMemoryHistory(): MemoryHistory {
  const h: MemoryHistory = {
    windows: new Map(),
    open: new Map(),
    sessions: new Map(),
    inventory: new Map(),
    late: new Map(),
    offsets: new Map(),
    meta: null,
    commits: 0,
    async readWindows(families, res, from, to) {
      const out: StoredWindow[] = [];
      for (const w of h.windows.values())
        if (w.res === res && w.start >= from && w.start < to && families.includes(w.family)) out.push(w);
      return out;
    },
    loadCheckpoint() {
      return {
        offsets: new Map(h.offsets),
        openWindows: [...h.open.values()],
        sessions: [...h.sessions.values()].map((s) => ({ ...s })),
        inventory: [...h.inventory.values()].map((i) => ({ ...i })),
        meta: h.meta,
      };
    },
  };
  return h;
}

/**
 * One checkpoint as engine.ts runCheckpoint does it: flushed windows encoded, corrections merged into
 * the stored rows (read-modify-write), everything committed in one step, then `agg.committed`.
 * `beforeCommit` runs after the capture and before the commit (a checkpoint in flight).
 */
export async function checkpoint(
  agg: Aggregator,
  store: MemoryHistory,
  hooks: { beforeCommit?: () => Promise<void> | void } = {},
): Promise<CheckpointCapture> {
  const c = agg.capture();
  const windows: StoredWindow[] = [];
  for (const w of c.flushed)
    for (const f of encodePane(w.pane, agg.dict))
      windows.push({ family: f.family, res: w.res, start: w.start, partition: w.partition, value: f.value });
  for (const corr of c.corrections) {
    const existing = (await store.readWindows(FAMILIES, corr.res, corr.start, corr.start + 1)).filter(
      (r) => r.partition === corr.partition,
    );
    const pane = createPane();
    for (const r of existing) mergeEncoded(pane, r.family as Family, r.value, agg.dict);
    mergePane(pane, corr.pane);
    const encoded = encodePane(pane, agg.dict);
    for (const r of existing)
      if (!encoded.some((e) => e.family === r.family))
        encoded.push({ family: r.family as Family, value: new Uint8Array(r.value.length) });
    for (const f of encoded)
      windows.push({ family: f.family, res: corr.res, start: corr.start, partition: corr.partition, value: f.value });
  }
  await hooks.beforeCommit?.();
  // same statement order as the sqlite transaction
  for (const w of windows) store.windows.set(`${w.res}:${w.family}:${w.start}:${w.partition}`, w);
  for (const o of c.open) {
    const k = `${o.res}:${o.start}:${o.partition}`;
    if (o.value) store.open.set(k, { res: o.res, start: o.start, partition: o.partition, value: o.value });
    else store.open.delete(k);
  }
  if (c.sessionsFull) store.sessions.clear();
  for (const s of c.sessions) store.sessions.set(`${s.partition}:${s.key}`, { ...s });
  for (const s of c.deletedSessions) store.sessions.delete(`${s.partition}:${s.key}`);
  for (const i of c.inventory) store.inventory.set(`${i.partition}:${i.productId}`, { ...i });
  for (const l of c.late) store.late.set(`${l.partition}:${l.offset}`, l);
  for (const [p, next] of c.offsets) store.offsets.set(p, next);
  store.meta = c.meta;
  store.commits++;
  agg.committed(c);
  return c;
}

// ---- expected values by plain loops ----

/** Status the contract gives an event: on time, behind the watermark but merged, or dropped. */
export type Status = "on-time" | "merged" | "dropped";
export interface Applied {
  ev: TestEvent;
  status: Status;
}

/**
 * Watermark by its definition (min over the partitions of max event time - out-of-orderness, never
 * backwards; a partition that sent nothing holds it back; no partition idles, so tests keep the
 * processing clock still) and the lateness status of each event against the 1 s window rule.
 */
export function createLatenessOracle(o: { partitions: number; outOfOrdernessMs: number; allowedLatenessMs: number }) {
  const maxT = new Array<number>(o.partitions).fill(-Infinity);
  let wm = -Infinity;
  return {
    get watermark() {
      return wm;
    },
    /** status of ev against the watermark of the last advance (call in arrival order) */
    status(ev: TestEvent): Status {
      if (ev.type === "skip" || ev.type === "duplicate") return "on-time"; // markers never move or miss windows
      maxT[ev.partition] = Math.max(maxT[ev.partition], ev.time);
      if (Math.floor(ev.time / 1000) * 1000 + 1000 + o.allowedLatenessMs <= wm) return "dropped";
      return ev.time < wm ? "merged" : "on-time";
    },
    advance() {
      const c = Math.min(...maxT) - o.outOfOrdernessMs;
      if (c > wm) wm = c;
    },
  };
}

export interface RefSession {
  sessionId: string;
  start: number;
  bits: { view: boolean; cart: boolean; checkout: boolean; purchase: boolean };
  source: string;
  events: TestEvent[];
}

/** Sessions of the accepted events: per sessionId in time order, split when the gap exceeds gapMs. */
export function referenceSessions(applied: readonly Applied[], gapMs: number): RefSession[] {
  const by = new Map<string, TestEvent[]>();
  for (const a of applied) {
    const e = a.ev;
    if (a.status === "dropped" || e.type === "duplicate" || e.type === "skip" || e.type === "inventory_update") continue;
    const k = e.sessionId ?? "";
    let l = by.get(k);
    if (!l) by.set(k, (l = []));
    l.push(e);
  }
  const out: RefSession[] = [];
  for (const [sessionId, evs] of by) {
    evs.sort((a, b) => a.time - b.time);
    let cur: RefSession | null = null;
    for (const e of evs) {
      if (!cur || e.time > cur.events[cur.events.length - 1].time + gapMs) {
        cur = { sessionId, start: e.time, bits: { view: false, cart: false, checkout: false, purchase: false }, source: DIRECT_KEY, events: [] };
        out.push(cur);
      }
      if (cur.source === DIRECT_KEY && e.utmSource !== undefined) cur.source = e.utmSource;
      if (e.type === "product_view") cur.bits.view = true;
      if (e.type === "add_to_cart") cur.bits.cart = true;
      if (e.type === "checkout") cur.bits.checkout = true;
      if (e.type === "purchase") cur.bits.purchase = true;
      cur.events.push(e);
    }
  }
  return out;
}

/** Families of a pane in plain form, so expected and actual compare with toEqual. */
export interface Plain {
  core: number[];
  funnel: number[];
  products: Record<string, number[]>;
  campaigns: Record<string, number[]>;
}

function nonZeroRows(rows: Map<string, number[]>): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const k of [...rows.keys()].sort()) if (rows.get(k)!.some((v) => v !== 0)) out[k] = rows.get(k)!;
  return out;
}

export function plainOf(p: Pane, dict: Aggregator["dict"]): Plain {
  const rows = (t: Pane["products"], stride: number, key: (id: number) => string) => {
    const m = new Map<string, number[]>();
    if (t) for (const [id, r] of t.index) m.set(key(id), Array.from(t.data.subarray(r, r + stride)));
    return nonZeroRows(m);
  };
  return {
    core: Array.from(p.core),
    funnel: Array.from(p.funnel),
    products: rows(p.products, P_STRIDE, (id) => dict.str(id)),
    campaigns: rows(p.campaigns, G_STRIDE, (id) => (id === DIRECT ? DIRECT_KEY : dict.str(id))),
  };
}

/** Latest stock per product by event time (ties: the later arrival wins), by plain loop over what was applied. */
export function expectedStock(applied: readonly Applied[]): Record<string, number> {
  const stock = new Map<string, { time: number; stock: number }>();
  for (const { ev } of applied) {
    if (ev.type !== "inventory_update") continue;
    const cur = stock.get(ev.productId!);
    if (!cur || ev.time >= cur.time) stock.set(ev.productId!, { time: ev.time, stock: ev.stock! });
  }
  return Object.fromEntries([...stock].map(([k, v]) => [k, v.stock]));
}

/** Expected families over event times in [floor(from, 1 s), ceil(to, 1 s)), by plain loops. */
export function expectedPlain(applied: readonly Applied[], from: number, to: number, gapMs: number): Plain {
  const f = Math.floor(from / 1000) * 1000;
  const t = Math.ceil(to / 1000) * 1000;
  const inRange = (x: number) => x >= f && x < t;
  const core = new Array<number>(N_CORE).fill(0);
  const products = new Map<string, number[]>();
  const prod = (id: string) => {
    let r = products.get(id);
    if (!r) products.set(id, (r = new Array<number>(P_STRIDE).fill(0)));
    return r;
  };
  for (const { ev, status } of applied) {
    if (!inRange(ev.time) || ev.type === "skip") continue;
    if (ev.type === "duplicate") core[C_DUPLICATES]++;
    else if (status === "dropped") core[C_LATE_DROPPED]++;
    else {
      core[TYPES.indexOf(ev.type)]++;
      core[C_TOTAL]++;
      if (status === "merged") core[C_LATE_MERGED]++;
      if (ev.type === "product_view") prod(ev.productId!)[0]++;
      if (ev.type === "add_to_cart") prod(ev.productId!)[1]++;
      if (ev.type === "purchase") {
        core[C_ORDERS]++;
        for (const it of ev.items ?? []) {
          core[C_REVENUE] += it.priceCents * it.quantity;
          core[C_UNITS] += it.quantity;
          prod(it.productId)[2] += it.quantity;
          prod(it.productId)[3] += it.priceCents * it.quantity;
        }
      }
    }
  }
  const funnel = new Array<number>(N_FUNNEL).fill(0);
  const campaigns = new Map<string, number[]>();
  const camp = (s: string) => {
    let r = campaigns.get(s);
    if (!r) campaigns.set(s, (r = new Array<number>(G_STRIDE).fill(0)));
    return r;
  };
  for (const s of referenceSessions(applied, gapMs)) {
    if (inRange(s.start)) {
      funnel[0]++;
      if (s.bits.view) funnel[1]++;
      if (s.bits.cart) funnel[2]++;
      if (s.bits.checkout) funnel[3]++;
      if (s.bits.purchase) funnel[4]++;
      if (s.bits.cart && !s.bits.purchase) funnel[5]++;
      camp(s.source)[0]++;
    }
    // an order is credited to the session's first touch at or before the purchase: a utm that shows up
    // only after it did not bring the order (the session's own source still moves to it)
    let touch = DIRECT_KEY;
    for (const e of s.events) {
      if (touch === DIRECT_KEY && e.utmSource !== undefined) touch = e.utmSource;
      if (e.type !== "purchase" || !inRange(e.time)) continue;
      camp(touch)[1]++;
      for (const it of e.items ?? []) camp(touch)[2] += it.priceCents * it.quantity;
    }
  }
  return { core, funnel, products: nonZeroRows(products), campaigns: nonZeroRows(campaigns) };
}

/** Deterministic PRNG (mulberry32) so generated streams are the same on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SOURCES = ["google", "facebook", "newsletter", "tiktok"];
const STEP_TYPES: EventTypeName[] = [
  "product_view", "product_view", "product_view", "product_view", "page_view", "page_view", "page_view",
  "add_to_cart", "add_to_cart", "add_to_cart", "remove_from_cart", "checkout", "purchase", "purchase",
];

/**
 * A shop stream in arrival order with per-partition offsets: sessions of 3-9 events 5-180 s apart (some
 * resume after a 35-50 min gap), utm sources, load times, purchases, inventory updates, duplicates and
 * dead letters. Arrival disorder stays below `maxDisorderMs`, so nothing is late unless the test adds it.
 */
export function generateStream(o: {
  seed: number;
  start: number;
  durationMs: number;
  sessions: number;
  partitions: number;
  products?: number;
  maxDisorderMs?: number;
}): TestEvent[] {
  const rnd = prng(o.seed);
  const pick = <T>(a: readonly T[]) => a[Math.floor(rnd() * a.length)];
  const nProducts = o.products ?? 25;
  const productIds = Array.from({ length: nProducts }, (_, i) => `p-${String(i).padStart(3, "0")}`);
  const price = (pid: string) => 199 + (Number(pid.slice(2)) * 731) % 9000;
  const evs: Array<TestEvent & { arrival: number }> = [];
  const disorder = o.maxDisorderMs ?? 3000;
  const push = (e: Omit<TestEvent, "offset">) => evs.push({ ...e, offset: -1, arrival: e.time + rnd() * disorder });
  for (let i = 0; i < o.sessions; i++) {
    const sessionId = `s-${i}`;
    const userId = `u-${Math.floor(i * 0.7)}`;
    const partition = Bun.hash.murmur32v3(sessionId, 1) % o.partitions;
    let t = o.start + Math.floor(rnd() * (o.durationMs - 30 * 60_000));
    const bursts = rnd() < 0.15 ? 2 : 1;
    for (let b = 0; b < bursts; b++) {
      if (b > 0) t += 35 * 60_000 + Math.floor(rnd() * 15 * 60_000);
      const n = b === 0 ? 3 + Math.floor(rnd() * 7) : 2 + Math.floor(rnd() * 3);
      for (let k = 0; k < n; k++) {
        const type: EventTypeName = b === 0 && k === 0 ? "page_view" : pick(STEP_TYPES);
        const e: Omit<TestEvent, "offset"> = { type, partition, time: t, userId, sessionId };
        if ((k === 0 && rnd() < 0.4) || rnd() < 0.08) e.utmSource = pick(SOURCES);
        if (type === "page_view" && rnd() < 0.8) e.loadTimeMs = Math.round(50 + rnd() * rnd() * 4000) / 4;
        if (type === "product_view" || type === "add_to_cart" || type === "remove_from_cart") {
          e.productId = pick(productIds);
          e.priceCents = price(e.productId);
          if (type !== "product_view") e.quantity = 1 + Math.floor(rnd() * 3);
        }
        if (type === "purchase")
          e.items = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => {
            const pid = pick(productIds);
            return { productId: pid, priceCents: price(pid), quantity: 1 + Math.floor(rnd() * 4) };
          });
        push(e);
        t += 5000 + Math.floor(rnd() * 175_000);
      }
    }
  }
  for (let t = o.start; t < o.start + o.durationMs; t += 20_000 + Math.floor(rnd() * 40_000)) {
    const pi = Math.floor(rnd() * nProducts);
    push({ type: "inventory_update", partition: pi % o.partitions, time: t, productId: productIds[pi], stock: Math.floor(rnd() * 60) });
  }
  const base = evs.length;
  for (let i = 0; i < base; i++) {
    const r = rnd();
    const e = evs[i];
    if (r < 0.03) evs.push({ type: "duplicate", partition: e.partition, time: e.time, offset: -1, arrival: e.arrival + 1 });
    else if (r < 0.04) evs.push({ type: "skip", partition: e.partition, time: 0, offset: -1, arrival: e.arrival + 2 });
  }
  evs.sort((a, b) => a.arrival - b.arrival);
  const next = new Array<number>(o.partitions).fill(0);
  return evs.map(({ arrival: _, ...e }) => ({ ...e, offset: next[e.partition]++ }));
}
