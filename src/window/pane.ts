// Mergeable metric state of one window (a 1 s pane, a 1 m or 1 h rollup, a correction, or a query
// result): every family merges by addition or register max, so partitions and windows combine freely.

import type { Dictionary } from "./dictionary.ts";
import { createHyperLogLog, decodeHyperLogLog, type HyperLogLog } from "./hyperloglog.ts";
import { createQuantileSketch, decodeQuantileSketch, type QuantileSketch } from "./quantile-sketch.ts";

// core counters: 0..6 events by type (EVENT_TYPES order), then:
export const C_TOTAL = 7;
export const C_DUPLICATES = 8;
export const C_REVENUE = 9; // cents
export const C_ORDERS = 10;
export const C_UNITS = 11;
export const C_LATE_MERGED = 12;
export const C_LATE_DROPPED = 13;
export const N_CORE = 14;

// funnel counters, by the window of each session's first event
export const F_SESSIONS = 0;
export const F_VIEW = 1;
export const F_CART = 2;
export const F_CHECKOUT = 3;
export const F_PURCHASE = 4;
export const F_ABANDON = 5;
export const N_FUNNEL = 6;

// per-product columns
export const P_VIEWS = 0;
export const P_CARTS = 1;
export const P_UNITS = 2;
export const P_REVENUE = 3;
export const P_STRIDE = 4;

// per-campaign columns (source id, -1 = direct)
export const G_SESSIONS = 0;
export const G_ORDERS = 1;
export const G_REVENUE = 2;
export const G_STRIDE = 3;

export const DIRECT = -1;

export const FAMILIES = ["core", "users", "sessions", "products", "load", "funnel", "campaigns"] as const;
export type Family = (typeof FAMILIES)[number];

/** Keyed rows of numbers: id -> row of `stride` float64 columns, growable, no allocation per update. */
export interface Table {
  readonly stride: number;
  index: Map<number, number>;
  data: Float64Array;
  /** row offset of id, creating a zero row when absent */
  row(id: number): number;
}

export function createTable(stride: number, initialRows = 8): Table {
  const t: Table = {
    stride,
    index: new Map(),
    data: new Float64Array(initialRows * stride),
    row(id) {
      let r = t.index.get(id);
      if (r === undefined) {
        r = t.index.size * stride;
        if (r + stride > t.data.length) {
          const grown = new Float64Array(t.data.length * 2);
          grown.set(t.data);
          t.data = grown;
        }
        t.index.set(id, r);
      }
      return r;
    },
  };
  return t;
}

/** t[id][col] += v. The row is resolved first: row() may grow (replace) t.data. */
export function addTo(t: Table, id: number, col: number, v: number): void {
  const r = t.row(id);
  t.data[r + col] += v;
}

function mergeTable(into: Table, from: Table): void {
  for (const [id, r] of from.index) {
    const o = into.row(id);
    for (let c = 0; c < from.stride; c++) into.data[o + c] += from.data[r + c];
  }
}

export interface Pane {
  core: Float64Array;
  funnel: Float64Array;
  users: HyperLogLog | null;
  sessions: HyperLogLog | null;
  load: QuantileSketch | null;
  products: Table | null;
  campaigns: Table | null;
  /** set when something changed since the last checkpoint / delta */
  dirty: boolean;
  /** changed since it was last published to other instances (partials); set wherever `dirty` is */
  pub: boolean;
}

export function createPane(): Pane {
  return {
    core: new Float64Array(N_CORE),
    funnel: new Float64Array(N_FUNNEL),
    users: null,
    sessions: null,
    load: null,
    products: null,
    campaigns: null,
    dirty: false,
    pub: true,
  };
}

export function usersOf(p: Pane): HyperLogLog {
  return (p.users ??= createHyperLogLog());
}
export function sessionsOf(p: Pane): HyperLogLog {
  return (p.sessions ??= createHyperLogLog());
}
export function loadOf(p: Pane): QuantileSketch {
  return (p.load ??= createQuantileSketch());
}
export function productsOf(p: Pane): Table {
  return (p.products ??= createTable(P_STRIDE));
}
export function campaignsOf(p: Pane): Table {
  return (p.campaigns ??= createTable(G_STRIDE, 4));
}

/** Visits every dictionary id a pane refers to (product rows, campaign sources; DIRECT is no id). */
export function markPane(p: Pane, visit: (id: number) => void): void {
  if (p.products) for (const id of p.products.index.keys()) visit(id);
  if (p.campaigns) for (const id of p.campaigns.index.keys()) visit(id);
}

/** into += from, family by family. */
export function mergePane(into: Pane, from: Pane): void {
  for (let i = 0; i < N_CORE; i++) into.core[i] += from.core[i];
  for (let i = 0; i < N_FUNNEL; i++) into.funnel[i] += from.funnel[i];
  if (from.users) usersOf(into).merge(from.users);
  if (from.sessions) sessionsOf(into).merge(from.sessions);
  if (from.load) loadOf(into).merge(from.load);
  if (from.products) mergeTable(productsOf(into), from.products);
  if (from.campaigns) mergeTable(campaignsOf(into), from.campaigns);
  into.dirty = into.pub = true;
}

function isZero(a: Float64Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return false;
  return true;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function tableToJson(t: Table, keyOf: (id: number) => string): Uint8Array {
  const rows: Array<Array<string | number>> = [];
  for (const [id, r] of t.index) {
    const row: Array<string | number> = [keyOf(id)];
    for (let c = 0; c < t.stride; c++) row.push(t.data[r + c]);
    rows.push(row);
  }
  return enc.encode(JSON.stringify(rows));
}

function mergeJsonTable(t: Table, bytes: Uint8Array, idOf: (key: string) => number): void {
  const rows = JSON.parse(dec.decode(bytes)) as Array<Array<string | number>>;
  for (const row of rows) {
    const o = t.row(idOf(row[0] as string));
    for (let c = 0; c < t.stride; c++) t.data[o + c] += row[c + 1] as number;
  }
}

function f64Bytes(a: Float64Array): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}

function addF64Bytes(into: Float64Array, bytes: Uint8Array): void {
  const copy = new Float64Array(bytes.slice().buffer);
  const n = Math.min(copy.length, into.length);
  for (let i = 0; i < n; i++) into[i] += copy[i];
}

export const DIRECT_KEY = "(direct)";

/** Encoded families of a pane that hold anything; stored rows keep strings, never dictionary ids. */
export function encodePane(p: Pane, dict: Dictionary): Array<{ family: Family; value: Uint8Array }> {
  const out: Array<{ family: Family; value: Uint8Array }> = [];
  if (!isZero(p.core)) out.push({ family: "core", value: f64Bytes(p.core) });
  if (p.users && !p.users.isEmpty()) out.push({ family: "users", value: p.users.encode() });
  if (p.sessions && !p.sessions.isEmpty()) out.push({ family: "sessions", value: p.sessions.encode() });
  if (p.products && p.products.index.size > 0)
    out.push({ family: "products", value: tableToJson(p.products, (id) => dict.str(id)) });
  if (p.load && p.load.count > 0) out.push({ family: "load", value: p.load.encode() });
  if (!isZero(p.funnel)) out.push({ family: "funnel", value: f64Bytes(p.funnel) });
  if (p.campaigns && p.campaigns.index.size > 0)
    out.push({
      family: "campaigns",
      value: tableToJson(p.campaigns, (id) => (id === DIRECT ? DIRECT_KEY : dict.str(id))),
    });
  return out;
}

/** pane += decoded stored row. */
export function mergeEncoded(p: Pane, family: Family, bytes: Uint8Array, dict: Dictionary): void {
  switch (family) {
    case "core":
      addF64Bytes(p.core, bytes);
      break;
    case "funnel":
      addF64Bytes(p.funnel, bytes);
      break;
    case "users":
      usersOf(p).merge(decodeHyperLogLog(bytes));
      break;
    case "sessions":
      sessionsOf(p).merge(decodeHyperLogLog(bytes));
      break;
    case "load":
      loadOf(p).merge(decodeQuantileSketch(bytes));
      break;
    case "products":
      mergeJsonTable(productsOf(p), bytes, (k) => dict.intern(k));
      break;
    case "campaigns":
      mergeJsonTable(campaignsOf(p), bytes, (k) => (k === DIRECT_KEY ? DIRECT : dict.intern(k)));
      break;
  }
}

/** All families of a pane in one blob: [u8 family][u32 length][bytes]... (open-window checkpoints). */
export function packPane(p: Pane, dict: Dictionary): Uint8Array {
  const parts = encodePane(p, dict);
  let size = 0;
  for (const part of parts) size += 5 + part.value.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let o = 0;
  for (const part of parts) {
    out[o] = FAMILIES.indexOf(part.family);
    view.setUint32(o + 1, part.value.length, true);
    out.set(part.value, o + 5);
    o += 5 + part.value.length;
  }
  return out;
}

export function unpackPane(bytes: Uint8Array, dict: Dictionary): Pane {
  const p = createPane();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  while (o < bytes.length) {
    const family = FAMILIES[bytes[o]];
    const len = view.getUint32(o + 1, true);
    mergeEncoded(p, family, bytes.subarray(o + 5, o + 5 + len), dict);
    o += 5 + len;
  }
  p.dirty = false;
  return p;
}
