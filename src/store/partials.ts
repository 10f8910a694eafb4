// Open-window partials shared between instances: each owner publishes, per Kafka partition it holds, the
// windows still in its memory and their pending corrections; every other instance merges them into its
// answers for that partition (reads skip a published window once its rows are in the store).
//
// A partition has one owner at a time, so one value per partition is enough (last writer wins). Values
// carry the owner and a sequence number; decoded windows are cached until the sequence moves.

import { FLUSHING, packPane, unpackPane, type Aggregator, type MemWindow, type RemoteWindows, type Res } from "../window/index.ts";
import type { HotCache } from "./types.ts";

interface Published {
  owner: string;
  seq: number;
  /** publish time (ms): a value much older than this is an owner that died; its partitions are read from the store */
  at: number;
  /** [res, start, state, base64 packed pane] */
  windows: Array<[number, number, number, string]>;
  corrections: Array<[number, number, string]>;
}

export interface Partials {
  /** publish the memory of the partitions `agg` owns (call every tick with live views) */
  publish(): void;
  /** remote windows of partitions this instance does not own, for collect() */
  remote(): RemoteWindows;
  stats(): { published: number; remotePartitions: number; lastPublishMs: number; lastBytes: number };
}

const topicOf = (p: number) => `partial:${p}`;

export function createPartials(opts: {
  cache: HotCache;
  agg: Aggregator;
  owner: string;
  partitions: number;
  /** a published value older than this is ignored (its owner is gone; default 30 s) */
  staleMs?: number;
}): Partials {
  const { cache, agg } = opts;
  const staleMs = opts.staleMs ?? 30_000;
  let seq = 0;
  let published = 0;
  let lastPublishMs = 0;
  let lastBytes = 0;
  const decoded = new Map<number, { owner: string; seq: number; windows: MemWindow[]; corrections: MemWindow[] }>();
  const b64 = (u: Uint8Array) => Buffer.from(u).toString("base64");
  const unb64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));

  return {
    publish() {
      const started = performance.now();
      const owned = agg.owned();
      if (owned.length === 0) return;
      const by = new Map<number, Published>();
      seq++;
      const now = Date.now();
      for (const p of owned) by.set(p, { owner: opts.owner, seq, at: now, windows: [], corrections: [] });
      let bytes = 0;
      for (const w of agg.memWindows()) {
        const v = by.get(w.partition);
        if (!v) continue;
        const packed = b64(packPane(w.pane, agg.dict));
        bytes += packed.length;
        v.windows.push([w.res, w.start, w.state, packed]);
      }
      for (const c of agg.pendingCorrections()) {
        const v = by.get(c.partition);
        if (!v) continue;
        const packed = b64(packPane(c.pane, agg.dict));
        bytes += packed.length;
        v.corrections.push([c.res, c.start, packed]);
      }
      for (const [p, v] of by) cache.set(topicOf(p), v);
      published++;
      lastBytes = bytes;
      lastPublishMs = performance.now() - started;
    },

    remote() {
      const mine = new Set(agg.owned());
      const windows: MemWindow[] = [];
      const corrections: MemWindow[] = [];
      const now = Date.now();
      for (let p = 0; p < opts.partitions; p++) {
        if (mine.has(p)) continue;
        const v = cache.get(topicOf(p)) as Published | undefined;
        if (!v || v.owner === opts.owner || !(now - v.at < staleMs)) continue;
        let d = decoded.get(p);
        if (!d || d.seq !== v.seq || d.owner !== v.owner) {
          d = {
            owner: v.owner,
            seq: v.seq,
            windows: v.windows.map(([res, start, state, pane]) => ({
              res: res as Res,
              start,
              partition: p,
              state,
              pane: unpackPane(unb64(pane), agg.dict),
            })),
            corrections: v.corrections.map(([res, start, pane]) => ({
              res: res as Res,
              start,
              partition: p,
              state: FLUSHING,
              pane: unpackPane(unb64(pane), agg.dict),
            })),
          };
          decoded.set(p, d);
        }
        windows.push(...d.windows);
        corrections.push(...d.corrections);
      }
      return { windows, corrections };
    },

    stats: () => ({ published, remotePartitions: decoded.size, lastPublishMs, lastBytes }),
  };
}
