import { describe, expect, it } from "bun:test";
import { C_TOTAL, createDictionary, createPane, encodePane, mergeEncoded } from "../window/index.ts";
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

describe("read cache overlay of commits in flight", () => {
  const totals = async (cache: ReturnType<typeof createReadCache>, res: 1000 | 60_000, from: number, to: number) => {
    const rows = await cache.readWindows(["core"], res, from, to);
    const out: Record<string, number> = {};
    for (const r of rows) {
      const p = createPane();
      mergeEncoded(p, r.family as "core", r.value, dict);
      out[`${res}:${r.start}:${r.partition}`] = (out[`${res}:${r.start}:${r.partition}`] ?? 0) + p.core[C_TOTAL];
    }
    return out;
  };

  it("reads pending rows in place of stored rows of their key, and rows the store lacks, until written or abandoned", async () => {
    const rows = [coreRow(1000, 1000, 0, 2), coreRow(1000, 1000, 1, 3), coreRow(60_000, 60_000, 0, 7)];
    const { store } = fakeStore(rows);
    const cache = createReadCache(store, dict);
    expect((await cache.readMerged!(["core"], 1000, 0, 3000)).pane.core[C_TOTAL]).toBe(5);
    expect((await cache.readMerged!(["core"], 60_000, 0, 120_000)).pane.core[C_TOTAL]).toBe(7);

    const batch = [coreRow(1000, 1000, 0, 20), coreRow(1000, 2000, 0, 4), coreRow(60_000, 60_000, 0, 70)];
    let seq = cache.seq();
    cache.pending(batch);
    expect(cache.seq()).not.toBe(seq);
    const inFlight = { "1000:1000:0": 20, "1000:1000:1": 3, "1000:2000:0": 4 };
    expect(await totals(cache, 1000, 0, 3000)).toEqual(inFlight);
    expect(await totals(cache, 1000, 0, 2000)).toEqual({ "1000:1000:0": 20, "1000:1000:1": 3 }); // range kept
    expect(await cache.readWindows(["users"], 1000, 0, 3000)).toEqual([]); // families kept
    expect((await cache.readMerged!(["core"], 1000, 0, 3000)).pane.core[C_TOTAL]).toBe(27);
    expect((await cache.readMerged!(["core"], 60_000, 0, 120_000)).pane.core[C_TOTAL]).toBe(70);
    rows[0] = batch[0]; // the store applies the batch row by row
    expect(await totals(cache, 1000, 0, 3000)).toEqual(inFlight);
    rows.push(batch[1]);
    rows[2] = batch[2];
    seq = cache.seq();
    cache.written(batch);
    expect(cache.seq()).not.toBe(seq);
    expect(await totals(cache, 1000, 0, 3000)).toEqual(inFlight);
    expect((await cache.readMerged!(["core"], 60_000, 0, 120_000)).pane.core[C_TOTAL]).toBe(70);

    // a commit that fails: reads go back to what the store holds
    const failing = [coreRow(1000, 1000, 1, 30), coreRow(60_000, 60_000, 0, 700), coreRow(60_000, 120_000, 0, 1)];
    cache.pending(failing);
    expect(await totals(cache, 1000, 0, 3000)).toEqual({ ...inFlight, "1000:1000:1": 30 });
    expect((await cache.readMerged!(["core"], 60_000, 0, 180_000)).pane.core[C_TOTAL]).toBe(701);
    seq = cache.seq();
    cache.abandoned(failing);
    expect(cache.seq()).not.toBe(seq);
    expect(await totals(cache, 1000, 0, 3000)).toEqual(inFlight);
    expect((await cache.readMerged!(["core"], 60_000, 0, 180_000)).pane.core[C_TOTAL]).toBe(70);
    expect((await cache.readMerged!(["core"], 1000, 0, 3000)).pane.core[C_TOTAL]).toBe(27);
  });

  it("keeps a later commit's row overlaid when an earlier commit of the same key ends", async () => {
    const rows = [coreRow(60_000, 0, 0, 1)];
    const { store } = fakeStore(rows);
    const cache = createReadCache(store, dict);
    const first = [coreRow(60_000, 0, 0, 10)];
    const second = [coreRow(60_000, 0, 0, 11)];
    const minute = async () => (await cache.readMerged!(["core"], 60_000, 0, 60_000)).pane.core[C_TOTAL];
    cache.pending(first);
    expect(await minute()).toBe(10);
    cache.pending(second);
    expect(await minute()).toBe(11);
    rows[0] = first[0];
    cache.written(first);
    expect(await minute()).toBe(11); // not the store's 10: the second commit is still in flight
    cache.abandoned(second);
    expect(await minute()).toBe(10);
  });

  it("drops cached windows another writer changed, and only those", async () => {
    const rows = [coreRow(1000, 1000, 0, 2), coreRow(1000, 2000, 0, 5), coreRow(60_000, 60_000, 0, 7), coreRow(60_000, 180_000, 0, 9)];
    const { store, reads } = fakeStore(rows);
    const cache = createReadCache(store, dict);
    const sec = async () => (await cache.readMerged!(["core"], 1000, 0, 3000)).pane.core[C_TOTAL];
    const min = async (from: number, to: number) => (await cache.readMerged!(["core"], 60_000, from, to)).pane.core[C_TOTAL];
    expect([await sec(), await min(0, 120_000), await min(120_000, 240_000)]).toEqual([7, 7, 9]);
    // another instance commits: the cache does not know until it is told
    rows[0] = coreRow(1000, 1000, 0, 20);
    rows[2] = coreRow(60_000, 60_000, 0, 70);
    expect([await sec(), await min(0, 120_000)]).toEqual([7, 7]);
    const seq = cache.seq();
    cache.invalidate([]);
    expect(cache.seq()).toBe(seq);
    cache.invalidate([
      { res: 1000, start: 1000 },
      { res: 60_000, start: 60_000 },
    ]);
    expect(cache.seq()).not.toBe(seq);
    const before = reads();
    expect([await sec(), await min(0, 120_000), await min(120_000, 240_000)]).toEqual([25, 70, 9]);
    expect(reads() - before).toBe(2); // the untouched minute range is still cached
    expect(cache.stats().hits).toBeGreaterThan(0);
  });

  it("does not keep a read that overlapped a pending commit", async () => {
    const rows = [coreRow(60_000, 60_000, 0, 7)];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const store = {
      readWindows: async (_f: readonly string[], res: number, from: number, to: number) => {
        await gate;
        return rows.filter((r) => r.res === res && r.start >= from && r.start < to);
      },
    } as unknown as HistoryStore;
    const cache = createReadCache(store, dict);
    const early = cache.readMerged!(["core"], 60_000, 0, 120_000);
    cache.pending([coreRow(60_000, 60_000, 0, 8)]);
    release();
    await early;
    expect(cache.stats().ranges).toBe(0);
    expect((await cache.readMerged!(["core"], 60_000, 0, 120_000)).pane.core[C_TOTAL]).toBe(8);
  });
});
