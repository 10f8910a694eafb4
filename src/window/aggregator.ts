// The window aggregator: applies ring records to event-time 1 s panes per partition, fires and purges
// them by watermark (fire and purge are separate decisions), rolls purged panes into 1 m and 1 h
// windows, tracks sessions, funnel, campaigns and inventory, and hands durable state to checkpoints.

import type { Dictionary, DictionaryOptions } from "./dictionary.ts";
import { createDictionary } from "./dictionary.ts";
import {
  C_DUPLICATES,
  C_LATE_DROPPED,
  C_LATE_MERGED,
  C_ORDERS,
  C_REVENUE,
  C_TOTAL,
  C_UNITS,
  DIRECT,
  F_ABANDON,
  F_CART,
  F_CHECKOUT,
  F_PURCHASE,
  F_SESSIONS,
  F_VIEW,
  G_ORDERS,
  G_REVENUE,
  G_SESSIONS,
  P_CARTS,
  P_REVENUE,
  P_UNITS,
  P_VIEWS,
  addTo,
  campaignsOf,
  createPane,
  loadOf,
  markPane,
  mergePane,
  packPane,
  productsOf,
  sessionsOf,
  unpackPane,
  usersOf,
  type Pane,
} from "./pane.ts";
import {
  FLAG_END,
  KIND_MASK,
  K_ADD_TO_CART,
  K_CHECKOUT,
  K_DUPLICATE,
  K_INVENTORY,
  K_ITEM,
  K_PAGE_VIEW,
  K_PRODUCT_VIEW,
  K_PURCHASE,
  K_REMOVE_FROM_CART,
  K_SKIP,
  TYPES,
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
import {
  STEP_CART,
  STEP_CHECKOUT,
  STEP_PURCHASE,
  STEP_VIEW,
  S_BITS,
  S_LAST,
  S_PARTITION,
  S_SOURCE,
  S_SOURCE_TIME,
  S_START,
  S_STRIDE,
  createSessionTable,
  sessionKey,
  type SessionTable,
} from "./sessions.ts";
import { createWatermark, type Watermark } from "./watermark.ts";

export const SEC = 1000;
export const MIN = 60_000;
export const HOUR = 3_600_000;
export type Res = typeof SEC | typeof MIN | typeof HOUR;

/** Window lifecycle in memory: LIVE 1 s panes take events; PARTIAL rollups collect purged children;
 * FLUSHING windows wait for the checkpoint that writes them to the history store. */
export const LIVE = 0;
export const PARTIAL = 1;
export const FLUSHING = 2;

export interface MemWindow {
  res: Res;
  start: number;
  partition: number;
  state: number;
  pane: Pane;
  /** taken by a checkpoint that is being written: later deltas must go to corrections */
  captured?: boolean;
}

export interface AggregatorOptions {
  partitions: number;
  outOfOrdernessMs: number;
  allowedLatenessMs: number;
  sessionGapMs: number;
  idleTimeoutMs: number;
  /** processing-time clock (injectable for tests) */
  clock?: () => number;
  /** when the string dictionary sweeps (tests) */
  dictionary?: DictionaryOptions;
}

export interface LateEvent {
  partition: number;
  offset: number;
  time: number;
  type: string;
  reason: string;
}

export interface InventoryEntry {
  product: number;
  partition: number;
  stock: number;
  time: number;
}

/** What one checkpoint must persist; produced synchronously, committed asynchronously. */
/** An open session as checkpoints keep it (the store's SessionRow has the same shape). */
export interface SessionState {
  partition: number;
  key: number;
  start: number;
  last: number;
  bits: number;
  source: string | null;
  sourceTime: number;
}

/** Latest stock of a product as checkpoints keep it. */
export interface InventoryState {
  partition: number;
  productId: string;
  stock: number;
  time: number;
}

export interface CheckpointCapture {
  flushed: MemWindow[];
  corrections: MemWindow[];
  open: Array<{ res: Res; start: number; partition: number; value: Uint8Array | null }>;
  sessions: SessionState[];
  deletedSessions: Array<{ partition: number; key: number }>;
  sessionsFull: boolean;
  inventory: InventoryState[];
  late: LateEvent[];
  offsets: Map<number, number>;
  meta: string;
  /** per owned partition: its event clock and the watermark it has been finalised up to (JSON), for a new owner */
  partitionMeta: Map<number, string>;
}

/** The state of some partitions, as a checkpoint holds it (restore, or adopt after a rebalance). */
export interface PartitionState {
  offsets: Map<number, number>;
  openWindows: Array<{ res: number; start: number; partition: number; value: Uint8Array }>;
  sessions: SessionState[];
  inventory: InventoryState[];
  /** instance meta (embedded restore): watermark and version */
  meta: string | null;
  /** per partition meta written by capture() (distributed adopt) */
  partitionMeta?: Map<number, string>;
}

/** indexes of Aggregator.totals() after the seven event type codes */
export const T_ORDERS = 7;
export const T_REVENUE = 8;

const wkey = (start: number, p: number) => start * 1024 + p;
const floorTo = (t: number, res: number) => Math.floor(t / res) * res;
const finite = (x: number) => (Number.isFinite(x) ? x : null);

export interface Aggregator {
  /** product ids and campaign sources as small integers; ids of released state are freed by advance() */
  readonly dict: Dictionary;
  readonly watermark: Watermark;
  readonly sessions: SessionTable;
  readonly opts: Required<AggregatorOptions>;
  /** apply one ring record; `xlate` maps the producing worker's string ids to dictionary ids */
  apply(i32: Int32Array, f64: Float64Array, base: number, xlate: Int32Array): void;
  /**
   * advance the watermark and fire/purge windows and sessions; returns true when anything fired or purged.
   * Also lets the dictionary sweep when due: call it where no id is held outside a holder or a pin.
   */
  advance(): boolean;
  /** next offset to consume per partition (events fully applied) */
  readonly applied: Map<number, number>;
  /** monotonically increasing change counter (for live deltas) */
  readonly version: number;
  /** memory windows for queries */
  memWindows(): Iterable<MemWindow>;
  pendingCorrections(): Iterable<MemWindow>;
  inventory(): Iterable<InventoryEntry>;
  /** `fullSessions`: include every open session (a compacting snapshot), not only the changed ones; answer each with committed() or failed() */
  capture(fullSessions?: boolean): CheckpointCapture;
  /** counted since start: [0..6] events by type code, [T_ORDERS] orders, [T_REVENUE] revenue in cents (read-only view) */
  totals(): Float64Array;
  /** the capture's rows are readable now (the reader overlays the batch in flight): stop counting its corrections here */
  overlaid(): void;
  /** after the capture's commit is durable */
  committed(c: CheckpointCapture): void;
  /**
   * after a failed commit: keep the capture's windows for the next attempt. `corrections: false` when the
   * caller keeps the corrections itself (as rows computed from them, because the commit may have stored some).
   */
  failed(c: CheckpointCapture, opts?: { corrections?: boolean }): void;
  restore(cp: PartitionState): void;
  /**
   * Forget partitions this instance no longer owns (after a rebalance): their windows, pending corrections,
   * sessions, inventory, late rows and offsets. Nothing of them is written any more; their new owner replays
   * from their last checkpoint.
   */
  dropPartitions(partitions: Iterable<number>): void;
  /** partitions whose state is held (restored or adopted, and not dropped) */
  owned(): number[];
  stats(): { livePanes: number; partials: number; flushing: number; sessions: number; corrections: number };
}

export function createAggregator(options: AggregatorOptions): Aggregator {
  const opts: Required<AggregatorOptions> = { ...options, clock: options.clock ?? (() => Date.now()), dictionary: options.dictionary ?? {} };
  const dict = createDictionary(opts.dictionary);
  const wm = createWatermark({
    partitions: opts.partitions,
    outOfOrdernessMs: opts.outOfOrdernessMs,
    idleTimeoutMs: opts.idleTimeoutMs,
    clock: opts.clock,
  });
  const sessions = createSessionTable();
  const lateness = opts.allowedLatenessMs;
  const gap = opts.sessionGapMs;

  // memory windows by resolution: key = start * 1024 + partition
  const live = new Map<number, MemWindow>(); // 1 s, LIVE or FLUSHING
  const mins = new Map<number, MemWindow>(); // 1 m, PARTIAL or FLUSHING
  const hours = new Map<number, MemWindow>(); // 1 h, PARTIAL or FLUSHING
  const byRes = (res: number) => (res === SEC ? live : res === MIN ? mins : hours);
  let flushQueue: MemWindow[] = [];
  // running totals of what was counted into windows since this process started (metrics), by type code
  const totals = new Float64Array(T_REVENUE + 1);
  let inflight: MemWindow[] = []; // corrections captured, not yet visible through the reader
  // deltas for windows that already left memory: merged into stored rows at the next checkpoint
  const corrections = new Map<string, MemWindow>();
  const openDeleted: Array<{ res: Res; start: number; partition: number }> = [];
  let late: LateEvent[] = [];
  const applied = new Map<number, number>();
  let version = 0;

  // inventory: latest stock per product by event time
  const inv = new Map<number, InventoryEntry>();
  const invDirty = new Set<number>();
  // captures not answered by committed() / failed() yet: their panes are encoded after awaits, even when a
  // partition drop took the windows out of the maps meanwhile
  const outstanding = new Set<CheckpointCapture>();

  // Every id the state above refers to; everything else in the dictionary can be released.
  dict.addHolder({
    mark(visit) {
      // flushing windows stay in the maps until committed; a capture's are marked apart only once dropped from them
      for (const map of [live, mins, hours]) for (const w of map.values()) markPane(w.pane, visit);
      for (const w of corrections.values()) markPane(w.pane, visit);
      for (const w of inflight) markPane(w.pane, visit);
      for (const c of outstanding) {
        for (const w of c.flushed) if (byRes(w.res).get(wkey(w.start, w.partition)) !== w) markPane(w.pane, visit);
        for (const w of c.corrections) markPane(w.pane, visit);
      }
      for (const id of inv.keys()) visit(id);
      const rec = sessions.rec;
      sessions.forEach((slot) => visit(rec[slot * S_STRIDE + S_SOURCE]));
    },
  });

  // per-record scratch (no allocation per event)
  let curDropped = false;
  let curSource = DIRECT;
  let curSessionPane: Pane | null = null;

  // Direct-mapped cache of 1 s windows per partition, indexed by second modulo RING. Partitions
  // interleave in the stream (a single last-window cache missed about half the time) and `live` is
  // keyed by doubles that the Map must box and hash. RING covers the span a live pane can be reached
  // in (out-of-orderness + lateness); a collision or a partition beyond `partitions` falls back to
  // the Map, so the cache never changes an answer.
  const nParts = opts.partitions;
  let RING = 64;
  while (RING < (opts.outOfOrdernessMs + lateness) / SEC + 8 && RING < 4096) RING *= 2;
  const ringMask = RING - 1;
  const ring: Array<MemWindow | null> = new Array<MemWindow | null>(nParts * RING).fill(null);
  // per partition, the watermark its previous owner had finalised windows up to: a window below it is
  // final (stored) even when this instance's own watermark is behind, so replayed events never reopen it
  const floor = new Float64Array(nParts).fill(-Infinity);
  const finalBelow = (p: number) => (p >= 0 && p < nParts && floor[p] > wm.value ? floor[p] : wm.value);

  function liveWindow(p: number, t: number): MemWindow | null {
    const sec = Math.floor(t / SEC);
    const start = sec * SEC; // = floorTo(t, SEC)
    const cacheable = p >= 0 && p < nParts;
    const ri = p * RING + (sec & ringMask);
    if (cacheable) {
      const c = ring[ri];
      // purgeTo evicts windows as they leave LIVE, so a hit is always a live window
      if (c !== null && c.start === start) return c;
    }
    const k = wkey(start, p);
    let w = live.get(k);
    if (w === undefined) {
      if (start + SEC + lateness <= finalBelow(p)) return null; // purged: too late for a live pane
      w = { res: SEC, start, partition: p, state: LIVE, pane: createPane() };
      live.set(k, w);
    } else if (w.state !== LIVE) return null;
    if (cacheable) ring[ri] = w;
    return w;
  }

  // Reusable target list for deltas to already-accounted windows (session moves, step changes,
  // late drops, duplicates): filled by `targets`, read by a plain loop, so no closure per call.
  const targetPanes: Pane[] = [];

  /**
   * Fills `targetPanes` with the panes that must take a delta for (partition p, time t): the live
   * 1 s pane if there is one, else every resolution that already absorbed that time (memory windows
   * or corrections). Marks memory panes dirty. Returns how many were filled.
   */
  function targets(p: number, t: number): number {
    const w1 = liveWindow(p, t);
    if (w1) {
      w1.pane.dirty = w1.pane.pub = true;
      targetPanes[0] = w1.pane;
      return 1; // rollups receive it when the pane is purged
    }
    let n = 0;
    for (let res: Res = SEC; ; res = res === SEC ? MIN : HOUR) {
      const start = floorTo(t, res);
      const map = byRes(res);
      const mem = map.get(wkey(start, p));
      if (mem && !mem.captured) {
        mem.pane.dirty = mem.pane.pub = true;
        targetPanes[n++] = mem.pane;
        if (mem.state === PARTIAL || mem.state === LIVE) return n; // the next level gets it by merging later
      } else if (!mem && res !== SEC && start + res + lateness > finalBelow(p)) {
        // a rollup not created yet and not final: open it now, or its later flush would overwrite a correction
        const w: MemWindow = { res, start, partition: p, state: PARTIAL, pane: createPane() };
        w.pane.dirty = w.pane.pub = true;
        map.set(wkey(start, p), w);
        targetPanes[n++] = w.pane;
        return n;
      } else {
        const ck = `${res}:${start}:${p}`;
        let c = corrections.get(ck);
        if (!c) corrections.set(ck, (c = { res, start, partition: p, state: FLUSHING, pane: createPane() }));
        targetPanes[n++] = c.pane;
      }
      if (res === HOUR) return n;
    }
  }

  function funnelDelta(pane: Pane, bits: number, sign: number): void {
    const f = pane.funnel;
    f[F_SESSIONS] += sign;
    if (bits & STEP_VIEW) f[F_VIEW] += sign;
    if (bits & STEP_CART) f[F_CART] += sign;
    if (bits & STEP_CHECKOUT) f[F_CHECKOUT] += sign;
    if (bits & STEP_PURCHASE) f[F_PURCHASE] += sign;
    if (bits & STEP_CART && !(bits & STEP_PURCHASE)) f[F_ABANDON] += sign;
  }

  // session-level contributions (funnel + campaign sessions) live in the pane of the session start
  function addSession(slot: number, sign: number): void {
    const rec = sessions.rec;
    const o = slot * S_STRIDE;
    const bits = rec[o + S_BITS];
    const src = rec[o + S_SOURCE];
    const n = targets(rec[o + S_PARTITION], rec[o + S_START]);
    for (let i = 0; i < n; i++) {
      const pane = targetPanes[i];
      funnelDelta(pane, bits, sign);
      addTo(campaignsOf(pane), src, G_SESSIONS, sign);
    }
  }
  function changeBits(slot: number, newBits: number): void {
    const rec = sessions.rec;
    const o = slot * S_STRIDE;
    const oldBits = rec[o + S_BITS];
    const n = targets(rec[o + S_PARTITION], rec[o + S_START]);
    for (let i = 0; i < n; i++) {
      const pane = targetPanes[i];
      funnelDelta(pane, oldBits, -1);
      funnelDelta(pane, newBits, 1);
    }
    rec[o + S_BITS] = newBits;
  }

  const STEP_OF = [0, STEP_VIEW, STEP_CART, 0, STEP_CHECKOUT, STEP_PURCHASE, 0];

  function touchSession(p: number, kind: number, t: number, lo: number, hi: number, src: number): number {
    const k = sessionKey(lo, hi);
    let slot = sessions.slotOf(k);
    // only open() can rebuild the table (moving rows), so `rec` and `o` are re-read after it
    let rec = sessions.rec;
    let o = slot * S_STRIDE;
    if (slot >= 0 && t > rec[o + S_LAST] + gap) {
      // the old session ended with this gap; its contributions stay where they are
      slot = -1;
    }
    if (slot < 0) {
      slot = sessions.open(k, p, t);
      rec = sessions.rec;
      o = slot * S_STRIDE;
      if (src >= 0) {
        rec[o + S_SOURCE] = src;
        rec[o + S_SOURCE_TIME] = t;
      }
      rec[o + S_BITS] = STEP_OF[kind];
      addSession(slot, 1);
      return slot;
    }
    let changed = false;
    if (t < rec[o + S_START]) {
      // an earlier event arrived late: the session moves to the window of its new first event
      addSession(slot, -1);
      rec[o + S_START] = t;
      addSession(slot, 1);
      changed = true;
    }
    if (src >= 0 && t < rec[o + S_SOURCE_TIME]) {
      if (rec[o + S_SOURCE] !== src) {
        addSession(slot, -1);
        rec[o + S_SOURCE] = src;
        rec[o + S_SOURCE_TIME] = t;
        addSession(slot, 1);
      } else rec[o + S_SOURCE_TIME] = t;
      changed = true;
    }
    const step = STEP_OF[kind];
    const bits = rec[o + S_BITS];
    if (step && !(bits & step)) {
      changeBits(slot, bits | step);
      changed = true;
    }
    if (t > rec[o + S_LAST]) {
      rec[o + S_LAST] = t;
      changed = true;
    }
    if (changed) sessions.touched(slot);
    return slot;
  }

  function dropLate(p: number, offset: number, t: number, kind: number): void {
    const n = targets(p, t);
    for (let i = 0; i < n; i++) targetPanes[i].core[C_LATE_DROPPED] += 1;
    late.push({
      partition: p,
      offset,
      time: t,
      type: TYPES[kind] ?? "unknown",
      reason:
        // the bound that made it final: this instance's watermark, or the one the partition's previous owner finalised to
        `event time ${new Date(t).toISOString()} is behind the watermark ${new Date(finalBelow(p)).toISOString()} ` +
        `by more than the allowed lateness (${lateness} ms): its window is already final`,
    });
  }

  function apply(i32: Int32Array, f64: Float64Array, base: number, xlate: Int32Array): void {
    const word0 = i32[base + W_KIND];
    const kind = word0 & KIND_MASK;
    const p = i32[base + W_PARTITION];
    const t = f64[(base + W_TIME) >> 1];
    const offset = f64[(base + W_OFFSET) >> 1];
    version++;

    if (kind === K_ITEM) {
      if (!curDropped) {
        const w = liveWindow(p, t);
        if (w) {
          const qty = i32[base + W_QTY];
          const cents = i32[base + W_PRICE] * qty;
          const pane = w.pane;
          pane.core[C_REVENUE] += cents;
          totals[T_REVENUE] += cents;
          pane.core[C_UNITS] += qty;
          const prod = xlate[i32[base + W_PRODUCT]];
          const tab = productsOf(pane);
          const r = tab.row(prod);
          tab.data[r + P_UNITS] += qty;
          tab.data[r + P_REVENUE] += cents;
          if (curSessionPane) {
            // revenue attributed to the session's first-touch source, in the purchase's window
            const g = campaignsOf(curSessionPane);
            addTo(g, curSource, G_REVENUE, cents);
          }
          pane.dirty = pane.pub = true;
        }
      }
    } else if (kind === K_SKIP) {
      // dead-lettered upstream: only the offset moves
    } else if (kind === K_DUPLICATE) {
      const n = targets(p, t);
      for (let i = 0; i < n; i++) targetPanes[i].core[C_DUPLICATES] += 1;
    } else {
      wm.observe(p, t);
      const w = liveWindow(p, t);
      if (w === null) {
        curDropped = true;
        dropLate(p, offset, t, kind);
      } else {
        curDropped = false;
        const pane = w.pane;
        pane.dirty = pane.pub = true;
        const core = pane.core;
        core[kind] += 1;
        totals[kind] += 1;
        core[C_TOTAL] += 1;
        if (t < wm.value) core[C_LATE_MERGED] += 1;
        if (kind !== K_INVENTORY) {
          usersOf(pane).add(i32[base + W_USER_LO] >>> 0, i32[base + W_USER_HI] >>> 0);
          sessionsOf(pane).add(i32[base + W_SESSION_LO] >>> 0, i32[base + W_SESSION_HI] >>> 0);
          const srcLocal = i32[base + W_SOURCE];
          const src = srcLocal >= 0 ? xlate[srcLocal] : -1;
          const slot = touchSession(p, kind, t, i32[base + W_SESSION_LO], i32[base + W_SESSION_HI], src);
          switch (kind) {
            case K_PAGE_VIEW: {
              const us = i32[base + W_LOAD_US];
              if (us >= 0) loadOf(pane).add(us / 1000);
              break;
            }
            case K_PRODUCT_VIEW: {
              const tab = productsOf(pane);
              addTo(tab, xlate[i32[base + W_PRODUCT]], P_VIEWS, 1);
              break;
            }
            case K_ADD_TO_CART: {
              const tab = productsOf(pane);
              addTo(tab, xlate[i32[base + W_PRODUCT]], P_CARTS, 1);
              break;
            }
            case K_REMOVE_FROM_CART:
            case K_CHECKOUT:
              break;
            case K_PURCHASE: {
              core[C_ORDERS] += 1;
              totals[T_ORDERS] += 1;
              curSource = sessions.rec[slot * S_STRIDE + S_SOURCE];
              curSessionPane = pane;
              const g = campaignsOf(pane);
              addTo(g, curSource, G_ORDERS, 1);
              break;
            }
          }
        } else {
          const prod = xlate[i32[base + W_PRODUCT]];
          const e = inv.get(prod);
          if (e === undefined) {
            inv.set(prod, { product: prod, partition: p, stock: i32[base + W_QTY], time: t });
            invDirty.add(prod);
          } else if (t >= e.time) {
            e.stock = i32[base + W_QTY];
            e.time = t;
            e.partition = p;
            invDirty.add(prod);
          }
        }
      }
    }
    if (word0 & FLAG_END) {
      applied.set(p, offset + 1);
      curSessionPane = null;
    }
  }

  function purgeTo(map: Map<number, MemWindow>, res: Res, wmv: number, into: Map<number, MemWindow> | null, intoRes: Res): boolean {
    let any = false;
    for (const w of map.values()) {
      if (w.state === FLUSHING || w.start + res + lateness > wmv) continue;
      w.state = FLUSHING;
      flushQueue.push(w);
      openDeleted.push({ res, start: w.start, partition: w.partition });
      if (res === SEC && w.partition >= 0 && w.partition < nParts) {
        // the cache only ever holds LIVE windows, so purged panes are not kept alive by it
        const ri = w.partition * RING + (Math.floor(w.start / SEC) & ringMask);
        if (ring[ri] === w) ring[ri] = null;
      }
      if (into) {
        const ps = floorTo(w.start, intoRes);
        const pk = wkey(ps, w.partition);
        let parent = into.get(pk);
        if (!parent) {
          parent = { res: intoRes, start: ps, partition: w.partition, state: PARTIAL, pane: createPane() };
          into.set(pk, parent);
        }
        mergePane(parent.pane, w.pane);
      }
      any = true;
    }
    return any;
  }

  function advance(): boolean {
    const before = wm.value;
    const v = wm.advance();
    let changed = v !== before;
    // Firing needs no step of its own: a window whose end the watermark passed is complete for
    // readers (late events still correct it, counted in late.merged); purging below makes it final.
    changed = purgeTo(live, SEC, v, mins, MIN) || changed;
    changed = purgeTo(mins, MIN, v, hours, HOUR) || changed;
    changed = purgeTo(hours, HOUR, v, null, HOUR) || changed;
    // Close only what no accepted event can reach any more: an event is still merged while its 1 s
    // window is open (t > watermark - lateness - 1 s), and it joins a session when t <= last + gap.
    // Closing at the bare watermark split sessions on events inside the allowed lateness.
    sessions.closeBefore(v - lateness - SEC, gap, () => {});
    if (changed) version++;
    dict.maintain(opts.clock());
    return changed;
  }

  function capture(fullSessions = false): CheckpointCapture {
    const flushed = flushQueue;
    flushQueue = [];
    for (const w of flushed) w.captured = true;
    const corr = [...corrections.values()];
    corrections.clear();
    inflight = corr;
    const open: CheckpointCapture["open"] = [];
    for (const d of openDeleted) open.push({ ...d, value: null });
    openDeleted.length = 0;
    for (const map of [live, mins, hours]) {
      for (const w of map.values()) {
        if (w.state === FLUSHING || !w.pane.dirty) continue;
        w.pane.dirty = false;
        open.push({ res: w.res, start: w.start, partition: w.partition, value: packPane(w.pane, dict) });
      }
    }
    const sess: CheckpointCapture["sessions"] = [];
    const changed = sessions.drainDirty();
    const closed = sessions.drainClosed();
    const slots: number[] = [];
    if (fullSessions) sessions.forEach((slot) => slots.push(slot));
    const rec = sessions.rec;
    for (const slot of fullSessions ? slots : changed) {
      const o = slot * S_STRIDE;
      const src = rec[o + S_SOURCE];
      const sourceTime = rec[o + S_SOURCE_TIME];
      sess.push({
        partition: rec[o + S_PARTITION],
        key: sessions.keyOf(slot),
        start: rec[o + S_START],
        last: rec[o + S_LAST],
        bits: rec[o + S_BITS],
        source: src >= 0 ? dict.str(src) : null,
        sourceTime: Number.isFinite(sourceTime) ? sourceTime : 8.64e15,
      });
    }
    const inventory: CheckpointCapture["inventory"] = [];
    for (const prod of invDirty) {
      const e = inv.get(prod)!;
      inventory.push({ partition: e.partition, productId: dict.str(prod), stock: e.stock, time: e.time });
    }
    invDirty.clear();
    const lateRows = late;
    late = [];
    const c: CheckpointCapture = {
      flushed,
      corrections: corr,
      open,
      sessions: sess,
      deletedSessions: fullSessions ? [] : closed,
      sessionsFull: fullSessions,
      inventory,
      late: lateRows,
      offsets: new Map(applied),
      meta: JSON.stringify({ watermark: wm.snapshot(), version }),
      partitionMeta: new Map(
        [...applied.keys()].map((p) => [p, JSON.stringify({ maxTime: finite(wm.maxTime(p)), floor: finite(finalBelow(p)) })]),
      ),
    };
    outstanding.add(c);
    return c;
  }

  function committed(c: CheckpointCapture): void {
    outstanding.delete(c);
    for (const w of c.flushed) {
      const map = byRes(w.res);
      const k = wkey(w.start, w.partition);
      if (map.get(k) === w) map.delete(k);
    }
    inflight = [];
  }

  function failed(c: CheckpointCapture, opts: { corrections?: boolean } = {}): void {
    outstanding.delete(c);
    // partitions dropped while the commit was in flight are gone for good: nothing of them comes back
    const ours = (r: { partition: number }) => applied.has(r.partition);
    c = {
      ...c,
      flushed: c.flushed.filter(ours),
      corrections: opts.corrections === false ? [] : c.corrections.filter(ours),
      open: c.open.filter(ours),
      sessions: c.sessions.filter(ours),
      inventory: c.inventory.filter(ours),
      late: c.late.filter(ours),
    };
    // everything goes back so the next checkpoint retries it; dirty flags are re-raised
    for (const w of c.flushed) {
      w.captured = false;
      // deltas that arrived while the failed write was in flight belong to the window itself again
      const ck = `${w.res}:${w.start}:${w.partition}`;
      const pendingDelta = corrections.get(ck);
      if (pendingDelta) {
        mergePane(w.pane, pendingDelta.pane);
        corrections.delete(ck);
      }
    }
    flushQueue = c.flushed.concat(flushQueue);
    for (const w of c.corrections) {
      const ck = `${w.res}:${w.start}:${w.partition}`;
      const cur = corrections.get(ck);
      if (cur) mergePane(cur.pane, w.pane);
      else corrections.set(ck, w);
    }
    inflight = [];
    for (const o of c.open) {
      if (o.value === null) openDeleted.push({ res: o.res, start: o.start, partition: o.partition });
      else {
        const w = byRes(o.res).get(wkey(o.start, o.partition));
        if (w) w.pane.dirty = w.pane.pub = true;
      }
    }
    for (const s of c.sessions) {
      const slot = sessions.slotOf(s.key);
      if (slot >= 0) sessions.touched(slot);
    }
    for (const i of c.inventory) {
      const id = dict.lookup(i.productId);
      if (id >= 0 && inv.has(id)) invDirty.add(id);
    }
    late = c.late.concat(late);
  }

  function dropPartitions(partitions: Iterable<number>): void {
    const gone = new Set(partitions);
    if (gone.size === 0) return;
    const drop = (w: { partition: number }) => gone.has(w.partition);
    for (const map of [live, mins, hours]) for (const [k, w] of map) if (drop(w)) map.delete(k);
    for (const p of gone) {
      if (p >= 0 && p < nParts) {
        ring.fill(null, p * RING, (p + 1) * RING);
        floor[p] = -Infinity;
        wm.forget(p);
      }
      applied.delete(p);
    }
    flushQueue = flushQueue.filter((w) => !drop(w));
    for (const [k, w] of corrections) if (drop(w)) corrections.delete(k);
    for (let i = openDeleted.length - 1; i >= 0; i--) if (drop(openDeleted[i])) openDeleted.splice(i, 1);
    late = late.filter((l) => !drop(l));
    for (const [prod, e] of inv)
      if (drop(e)) {
        inv.delete(prod);
        invDirty.delete(prod);
      }
    sessions.dropPartitions((p) => gone.has(p));
    version++;
  }

  function restore(cp: PartitionState): void {
    for (const [p, o] of cp.offsets) applied.set(p, o);
    for (const [p, m] of cp.partitionMeta ?? []) {
      const pm = JSON.parse(m) as { maxTime: number | null; floor: number | null };
      wm.adopt(p, pm.maxTime ?? -Infinity);
      floor[p] = pm.floor ?? -Infinity;
      if (!applied.has(p)) applied.set(p, 0);
    }
    ring.fill(null); // restored windows replace whatever the cache pointed at
    for (const row of cp.openWindows) {
      const res = row.res as Res;
      const w: MemWindow = {
        res,
        start: row.start,
        partition: row.partition,
        state: res === SEC ? LIVE : PARTIAL,
        pane: unpackPane(row.value, dict),
      };
      byRes(res).set(wkey(row.start, row.partition), w);
    }
    for (const s of cp.sessions) {
      const slot = sessions.open(s.key, s.partition, s.start);
      const rec = sessions.rec;
      const o = slot * S_STRIDE;
      rec[o + S_LAST] = s.last;
      rec[o + S_BITS] = s.bits;
      rec[o + S_SOURCE] = s.source === null ? -1 : dict.intern(s.source);
      rec[o + S_SOURCE_TIME] = s.sourceTime >= 8.64e15 ? Infinity : s.sourceTime;
      sessions.touched(slot);
    }
    sessions.drainDirty();
    for (const i of cp.inventory) {
      const id = dict.intern(i.productId);
      // rows are keyed by (partition, product): when several partitions reported a product, the
      // latest event time wins, whatever order the store returns the rows in
      const cur = inv.get(id);
      if (cur === undefined || i.time >= cur.time)
        inv.set(id, { product: id, partition: i.partition, stock: i.stock, time: i.time });
    }
    if (cp.meta) {
      const m = JSON.parse(cp.meta) as { watermark: { value: number; maxTime: number[] }; version: number };
      wm.restore(m.watermark);
      version = m.version ?? 0;
    }
  }

  return {
    dict,
    watermark: wm,
    sessions,
    opts,
    apply,
    advance,
    applied,
    get version() {
      return version;
    },
    *memWindows() {
      yield* live.values();
      yield* mins.values();
      yield* hours.values();
    },
    *pendingCorrections() {
      yield* corrections.values();
      yield* inflight;
    },
    overlaid() {
      inflight = [];
    },
    totals: () => totals,
    inventory() {
      return inv.values();
    },
    capture,
    committed,
    failed,
    restore,
    dropPartitions,
    owned: () => [...applied.keys()].sort((a, b) => a - b),
    stats() {
      return {
        livePanes: live.size,
        partials: mins.size + hours.size,
        flushing: flushQueue.length,
        sessions: sessions.size,
        corrections: corrections.size,
      };
    },
  };
}
