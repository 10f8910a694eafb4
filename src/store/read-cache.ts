// Decoded-window cache in front of a HistoryStore for range queries: stored windows change only
// when a checkpoint rewrites them, so merged panes of closed windows are kept and reused; every
// commit invalidates exactly the windows it wrote.

import type { Dictionary, Family, Pane, Res, WindowReader } from "../window/index.ts";
import { createPane, markPane, mergeEncoded, mergePane } from "../window/index.ts";
import type { HistoryStore, WindowRow } from "./types.ts";

const SEC = 1000;

interface Entry {
  pane: Pane;
  keys: Set<string>;
}

export interface ReadCache extends WindowReader {
  /**
   * A commit of these rows is starting: until written() or abandoned(), reads see them in place of the
   * stored rows with the same key, whether or not the store has applied them yet (an async store applies
   * a batch row by row).
   */
  pending(rows: readonly WindowRow[]): void;
  /** call with the rows of every commit, right after it is durable */
  written(rows: readonly WindowRow[]): void;
  /** the commit of these rows failed: reads go back to the store alone */
  abandoned(rows: readonly WindowRow[]): void;
  /** another writer changed rows of these windows (another instance's commit): drop what is cached of them */
  invalidate(windows: ReadonlyArray<{ res: number; start: number }>): void;
  seq(): number;
  stats(): { windows: number; ranges: number; hits: number; misses: number };
}

/**
 * 1 s windows are cached one by one (a sliding "last hour" shares all but one of its head windows
 * with the previous query); 1 m / 1 h segments are cached whole. Both are bounded LRUs.
 */
export function createReadCache(
  store: HistoryStore,
  dict: Dictionary,
  opts: { maxWindows?: number; maxRanges?: number } = {},
): ReadCache {
  const maxWindows = opts.maxWindows ?? 1200;
  const maxRanges = opts.maxRanges ?? 128;
  const windows = new Map<string, Map<string, Entry>>(); // `res:start` -> families -> entry
  let windowCount = 0;
  const ranges = new Map<string, Entry & { res: Res; from: number; to: number }>();
  let commitSeq = 0; // a read that overlapped a commit is not cached
  const rowKey = (r: { family: string; res: number; start: number; partition: number }) => `${r.family}|${r.res}|${r.start}|${r.partition}`;
  // rows of commits in flight, replaced (never mutated) on change so a read keeps the one it started with
  let overlay = new Map<string, WindowRow>();

  /** the store's rows with the overlay applied: overlay rows replace stored rows of their key */
  async function read(families: readonly string[], res: Res, from: number, to: number) {
    const ov = overlay;
    const rows = await store.readWindows(families, res, from, to);
    if (ov.size === 0) return rows;
    const out = rows.filter((r) => !ov.has(rowKey(r)));
    for (const r of ov.values())
      if (r.res === res && r.start >= from && r.start < to && families.includes(r.family)) out.push(r);
    return out;
  }
  function drop(rows: ReadonlyArray<{ res: number; start: number }>): void {
    commitSeq++;
    for (const r of rows) {
      const wk = `${r.res}:${r.start}`;
      const fams = windows.get(wk);
      if (fams) {
        windowCount -= fams.size;
        windows.delete(wk);
      }
    }
    if (ranges.size > 0)
      for (const [rk, e] of ranges)
        if (rows.some((r) => r.res === e.res && r.start >= e.from && r.start < e.to)) ranges.delete(rk);
  }
  function unlay(rows: readonly WindowRow[]): void {
    if (overlay.size === 0) return;
    const next = new Map(overlay);
    for (const r of rows) if (next.get(rowKey(r)) === r) next.delete(rowKey(r));
    overlay = next;
  }
  let hits = 0;
  let misses = 0;
  // cached panes keep their product and campaign ids in the dictionary (bounded by the two LRUs)
  dict.addHolder({
    mark(visit) {
      for (const fams of windows.values()) for (const e of fams.values()) markPane(e.pane, visit);
      for (const e of ranges.values()) markPane(e.pane, visit);
    },
  });

  const touch = <K, V>(m: Map<K, V>, k: K, v: V) => {
    m.delete(k);
    m.set(k, v);
  };

  function putWindow(wk: string, fk: string, e: Entry): void {
    let byFam = windows.get(wk);
    if (!byFam) {
      byFam = new Map();
      windows.set(wk, byFam);
    } else windows.delete(wk), windows.set(wk, byFam);
    if (!byFam.has(fk)) windowCount++;
    byFam.set(fk, e);
    while (windowCount > maxWindows) {
      const [oldest, fams] = windows.entries().next().value as [string, Map<string, Entry>];
      windowCount -= fams.size;
      windows.delete(oldest);
    }
  }

  return {
    readWindows: (families, res, from, to) => read(families, res, from, to),
    seq: () => commitSeq,

    async readMerged(families: readonly Family[], res: Res, from: number, to: number) {
      const fk = families.join(",");
      const seq = commitSeq;
      if (res !== SEC) {
        const rk = `${res}:${from}:${to}|${fk}`;
        const hit = ranges.get(rk);
        if (hit) {
          hits++;
          touch(ranges, rk, hit);
          return hit;
        }
        misses++;
        const rows = await read(families, res, from, to);
        const pane = createPane();
        const keys = new Set<string>();
        for (const r of rows) {
          keys.add(`${res}:${r.start}:${r.partition}`);
          mergeEncoded(pane, r.family as Family, r.value, dict);
        }
        const e = { pane, keys, res, from, to };
        if (seq === commitSeq) {
          ranges.set(rk, e);
          if (ranges.size > maxRanges) ranges.delete(ranges.keys().next().value as string);
        }
        return e;
      }
      // 1 s: the SQL read is cheap, decoding is not; decode only windows not cached yet
      const rows = await read(families, res, from, to);
      const byStart = new Map<number, typeof rows>();
      for (const r of rows) {
        const l = byStart.get(r.start);
        if (l) l.push(r);
        else byStart.set(r.start, [r]);
      }
      const pane = createPane();
      const keys = new Set<string>();
      for (const [start, list] of byStart) {
        const wk = `${res}:${start}`;
        let e = windows.get(wk)?.get(fk);
        if (e) hits++;
        else {
          misses++;
          e = { pane: createPane(), keys: new Set() };
          for (const r of list) {
            e.keys.add(`${res}:${start}:${r.partition}`);
            mergeEncoded(e.pane, r.family as Family, r.value, dict);
          }
          if (seq === commitSeq) putWindow(wk, fk, e);
        }
        mergePane(pane, e.pane);
        for (const k of e.keys) keys.add(k);
      }
      return { pane, keys };
    },

    pending(rows) {
      if (rows.length === 0) return;
      const next = new Map(overlay);
      for (const r of rows) next.set(rowKey(r), r);
      overlay = next;
      drop(rows);
    },
    written(rows) {
      if (rows.length === 0) return;
      unlay(rows);
      drop(rows);
    },
    abandoned(rows) {
      if (rows.length === 0) return;
      unlay(rows);
      drop(rows);
    },
    invalidate(list) {
      if (list.length > 0) drop(list);
    },

    stats: () => ({ windows: windowCount, ranges: ranges.size, hits, misses }),
  };
}
