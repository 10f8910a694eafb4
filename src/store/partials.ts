// Open-window partials shared between instances: each owner publishes, per Kafka partition it holds, the
// windows still in its memory; every other instance merges them into its answers for that partition (reads
// skip a published window once its rows are in the store). Pending corrections are not published: a reader
// cannot tell whether the stored rows it read already hold them, so they would count twice for a moment.
// Another owner's corrections show once its checkpoint commits them (within a checkpoint interval).
//
// A partition has one owner at a time, so one value per partition is enough (last writer wins). Values
// carry the owner and a sequence number; decoded windows are cached until the sequence moves.

import { markPane, packPane, unpackPane, type Aggregator, type MemWindow, type Pane, type RemoteWindows, type Res } from "../window/index.ts";
import type { HotCache } from "./types.ts";

interface Published {
  owner: string;
  seq: number;
  /** publish time (ms): a value much older than this is an owner that died; its partitions are read from the store */
  at: number;
  /** [res, start, state, base64 packed pane] */
  windows: Array<[number, number, number, string]>;
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
  const decoded = new Map<number, { owner: string; seq: number; windows: MemWindow[] }>();
  // packing and unpacking sketches is the expensive part: a window that did not change since the last publish
  // is sent as packed then, and a received window whose bytes did not change is not decoded again
  const packed = new WeakMap<Pane, string>();
  const unpacked = new Map<number, Map<string, { b64: string; pane: Pane }>>();
  // decoded remote panes keep their ids in this instance's dictionary until the owner publishes anew
  agg.dict.addHolder({
    mark(visit) {
      for (const byKey of unpacked.values()) for (const e of byKey.values()) markPane(e.pane, visit);
    },
  });
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
      for (const p of owned) by.set(p, { owner: opts.owner, seq, at: now, windows: [] });
      let bytes = 0;
      for (const w of agg.memWindows()) {
        const v = by.get(w.partition);
        if (!v) continue;
        let text = packed.get(w.pane);
        if (text === undefined || w.pane.pub) {
          text = b64(packPane(w.pane, agg.dict));
          packed.set(w.pane, text);
          w.pane.pub = false;
        }
        bytes += text.length;
        v.windows.push([w.res, w.start, w.state, text]);
      }
      for (const [p, v] of by) cache.set(topicOf(p), v);
      published++;
      lastBytes = bytes;
      lastPublishMs = performance.now() - started;
    },

    remote() {
      const mine = new Set(agg.owned());
      const windows: MemWindow[] = [];
      const now = Date.now();
      for (let p = 0; p < opts.partitions; p++) {
        if (mine.has(p)) continue;
        const v = cache.get(topicOf(p)) as Published | undefined;
        if (!v || v.owner === opts.owner || !(now - v.at < staleMs)) continue;
        let d = decoded.get(p);
        if (!d || d.seq !== v.seq || d.owner !== v.owner) {
          const before = unpacked.get(p) ?? new Map<string, { b64: string; pane: Pane }>();
          const now = new Map<string, { b64: string; pane: Pane }>();
          const paneOf = (key: string, text: string): Pane => {
            const hit = before.get(key);
            const pane = hit && hit.b64 === text ? hit.pane : unpackPane(unb64(text), agg.dict);
            now.set(key, { b64: text, pane });
            return pane;
          };
          unpacked.set(p, now);
          d = {
            owner: v.owner,
            seq: v.seq,
            windows: v.windows.map(([res, start, state, text]) => ({
              res: res as Res,
              start,
              partition: p,
              state,
              pane: paneOf(`${res}:${start}`, text),
            })),
          };
          decoded.set(p, d);
        }
        windows.push(...d.windows);
      }
      return { windows, corrections: [] };
    },

    stats: () => ({ published, remotePartitions: decoded.size, lastPublishMs, lastBytes }),
  };
}
