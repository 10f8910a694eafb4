// Builds a realistic set of fixed-size ring records from the traffic generator, written exactly as the
// ingest worker's emit() writes them, into a SharedArrayBuffer so a Worker can replay them through a ring.

import { createGenerator, type WireEvent } from "../src/generator/index.ts";
import { TYPE_CODE } from "../src/ingest/event-types.ts";
import { partitionOf } from "../src/ingest/index.ts";
import {
  FLAG_END,
  HLL_SEED_HI,
  HLL_SEED_LO,
  K_ITEM,
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
} from "../src/window/index.ts";

export interface RecordSet {
  readonly sab: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  /** records written (ends on an event boundary) */
  readonly count: number;
  readonly events: number;
  /** local string ids -> strings, as a worker's dictionary ring would carry them */
  readonly strings: string[];
  readonly minTime: number;
  readonly maxTime: number;
  readonly kinds: Record<string, number>;
}

export interface RecordSetOptions {
  records: number;
  partitions: number;
  seed: number;
  /** generator events per second of event time */
  rate: number;
  users: number;
  products: number;
  startTime: number;
}

/** Generates events and writes up to `records` ring records (whole events only). */
export function buildRecords(o: RecordSetOptions): RecordSet {
  const sab = new SharedArrayBuffer(o.records * RECORD_WORDS * 4);
  const i32 = new Int32Array(sab);
  const f64 = new Float64Array(sab);
  const gen = createGenerator({ seed: o.seed, rate: o.rate, users: o.users, products: o.products, startTime: o.startTime });
  const ids = new Map<string, number>();
  const strings: string[] = [];
  const intern = (s: string | undefined): number => {
    if (s === undefined) return -1;
    let id = ids.get(s);
    if (id === undefined) {
      id = strings.length;
      strings.push(s);
      ids.set(s, id);
    }
    return id;
  };
  const offsets = new Float64Array(o.partitions);
  const kinds: Record<string, number> = {};
  let n = 0;
  let events = 0;
  let minTime = Infinity;
  let maxTime = -Infinity;

  const header = (base: number, kind: number, p: number, offset: number, t: number) => {
    i32[base + W_KIND] = kind;
    i32[base + W_PARTITION] = p;
    f64[(base + W_OFFSET) >> 1] = offset;
    f64[(base + W_TIME) >> 1] = t;
  };

  const write = (e: WireEvent): boolean => {
    const items = e.items;
    const need = 1 + (items ? items.length : 0);
    if (n + need > o.records) return false;
    const p = partitionOf(e.sessionId ?? e.productId ?? e.eventId, o.partitions);
    const offset = offsets[p]++;
    const t = e.timestamp;
    if (t < minTime) minTime = t;
    if (t > maxTime) maxTime = t;
    const kind = TYPE_CODE[e.type];
    kinds[e.type] = (kinds[e.type] ?? 0) + 1;
    const base = n++ * RECORD_WORDS;
    header(base, items && items.length > 0 ? kind : kind | FLAG_END, p, offset, t);
    const u = e.userId ?? "";
    const s = e.sessionId ?? "";
    i32[base + W_USER_LO] = Bun.hash.murmur32v3(u, HLL_SEED_LO);
    i32[base + W_USER_HI] = Bun.hash.murmur32v3(u, HLL_SEED_HI);
    i32[base + W_SESSION_LO] = Bun.hash.murmur32v3(s, HLL_SEED_LO);
    i32[base + W_SESSION_HI] = Bun.hash.murmur32v3(s, HLL_SEED_HI);
    i32[base + W_PRODUCT] = intern(e.productId);
    i32[base + W_CATEGORY] = intern(e.category);
    i32[base + W_SOURCE] = intern(e.utmSource);
    i32[base + W_PRICE] = e.price === undefined ? 0 : Math.round(e.price * 100);
    i32[base + W_QTY] = e.type === "inventory_update" ? (e.stock ?? 0) : (e.quantity ?? 1);
    i32[base + W_LOAD_US] = e.loadTimeMs === undefined ? -1 : Math.round(e.loadTimeMs * 1000);
    if (items) {
      for (let k = 0; k < items.length; k++) {
        const b = n++ * RECORD_WORDS;
        header(b, k === items.length - 1 ? K_ITEM | FLAG_END : K_ITEM, p, offset, t);
        i32[b + W_PRODUCT] = intern(items[k].productId);
        i32[b + W_CATEGORY] = intern(items[k].category);
        i32[b + W_SOURCE] = -1;
        i32[b + W_PRICE] = Math.round(items[k].price * 100);
        i32[b + W_QTY] = items[k].quantity;
        i32[b + W_LOAD_US] = -1;
      }
      kinds.purchase_item = (kinds.purchase_item ?? 0) + items.length;
    }
    events++;
    return true;
  };

  // bounded: every batch adds at least one record until the set is full
  outer: while (n < o.records) {
    for (const e of gen.next(20_000)) if (!write(e)) break outer;
  }
  return { sab, i32, f64, count: n, events, strings, minTime, maxTime, kinds };
}
