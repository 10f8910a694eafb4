import { describe, expect, it } from "bun:test";
import { C_TOTAL, createDictionary, createPane, encodePane } from "../window/index.ts";
import { createReadCache } from "./read-cache.ts";
import type { HistoryStore, WindowRow } from "./types.ts";

/** A store over an array of rows that counts reads. */
function fakeStore(rows: WindowRow[]) {
  let reads = 0;
  const store = {
    readWindows: async (families: readonly string[], res: number, from: number, to: number) => {
      reads++;
      return rows.filter((r) => r.res === res && families.includes(r.family) && r.start >= from && r.start < to);
    },
  } as unknown as HistoryStore;
  return { store, reads: () => reads };
}

const dict = createDictionary();
function coreRow(res: 1000 | 60_000, start: number, partition: number, total: number): WindowRow {
  const p = createPane();
  p.core[C_TOTAL] = total;
  const [core] = encodePane(p, dict);
  return { family: "core", res, start, partition, value: core.value };
}

describe("read cache", () => {
  it("merges stored windows like the rows do, and serves repeats without decoding again", async () => {
    const rows = [coreRow(1000, 1000, 0, 2), coreRow(1000, 1000, 1, 3), coreRow(1000, 2000, 0, 5), coreRow(60_000, 60_000, 0, 7)];
    const { store } = fakeStore(rows);
    const cache = createReadCache(store, dict);
    const a = await cache.readMerged!(["core"], 1000, 0, 3000);
    expect(a.pane.core[C_TOTAL]).toBe(10);
    expect([...a.keys].sort()).toEqual(["1000:1000:0", "1000:1000:1", "1000:2000:0"]);
    const b = await cache.readMerged!(["core"], 1000, 1000, 3000);
    expect(b.pane.core[C_TOTAL]).toBe(10);
    expect(cache.stats().hits).toBe(2); // both 1 s windows came from the cache
    const m1 = await cache.readMerged!(["core"], 60_000, 0, 120_000);
    const m2 = await cache.readMerged!(["core"], 60_000, 0, 120_000);
    expect(m1.pane.core[C_TOTAL]).toBe(7);
    expect(m2).toBe(m1);
    // the cached pane is never the caller's to change: a later read still sees the stored totals
    expect((await cache.readMerged!(["core"], 1000, 0, 3000)).pane.core[C_TOTAL]).toBe(10);
  });

  it("drops exactly the windows a commit rewrote", async () => {
    const rows = [coreRow(1000, 1000, 0, 2), coreRow(1000, 2000, 0, 5), coreRow(60_000, 60_000, 0, 7)];
    const { store } = fakeStore(rows);
    const cache = createReadCache(store, dict);
    await cache.readMerged!(["core"], 1000, 0, 3000);
    await cache.readMerged!(["core"], 60_000, 0, 120_000);
    const updated = coreRow(1000, 2000, 0, 50);
    rows[1] = updated;
    const minute = coreRow(60_000, 60_000, 0, 70);
    rows[2] = minute;
    cache.written([updated, minute]);
    expect((await cache.readMerged!(["core"], 1000, 0, 3000)).pane.core[C_TOTAL]).toBe(52);
    expect((await cache.readMerged!(["core"], 60_000, 0, 120_000)).pane.core[C_TOTAL]).toBe(70);
  });

  it("does not keep a read that overlapped a commit", async () => {
    const rows = [coreRow(60_000, 60_000, 0, 7)];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const store = {
      readWindows: async (_f: readonly string[], res: number, from: number, to: number) => {
        const snapshot = rows.filter((r) => r.res === res && r.start >= from && r.start < to);
        await gate;
        return snapshot;
      },
    } as unknown as HistoryStore;
    const cache = createReadCache(store, dict);
    const pending = cache.readMerged!(["core"], 60_000, 0, 120_000);
    const fresh = coreRow(60_000, 60_000, 0, 8);
    rows[0] = fresh;
    cache.written([fresh]);
    release();
    expect((await pending).pane.core[C_TOTAL]).toBe(7); // the old read answers its own query...
    expect(cache.stats().ranges).toBe(0); // ...but is not cached
  });
});
