import { afterEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteHistory } from "./sqlite-history.ts";
import type { CommitBatch, SessionRow } from "./types.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const fresh = () => {
  const d = mkdtempSync(join(tmpdir(), "rtae-hist-"));
  dirs.push(d);
  return d;
};

const batch = (over: Partial<CommitBatch>): CommitBatch => ({
  windows: [],
  openWindows: [],
  sessions: [],
  deletedSessions: [],
  inventory: [],
  late: [],
  offsets: new Map(),
  meta: "{}",
  ...over,
});
const session = (key: number, last: number, source: string | null = null): SessionRow => ({
  partition: key % 3,
  key,
  start: 1000,
  last,
  bits: key % 16,
  source,
  sourceTime: source ? 1000 : 8.64e15,
});

describe("sqlite history", () => {
  it("replays the session log: later changes win, deletes remove, a full snapshot replaces everything", async () => {
    const dir = fresh();
    const h = openSqliteHistory(dir);
    await h.commit(batch({ sessions: [session(1, 10, "google"), session(2, 10), session(3, 10)] }));
    await h.commit(batch({ sessions: [session(2, 20, "mail")], deletedSessions: [{ partition: 3 % 3, key: 3 }] }));
    let cp = await h.loadCheckpoint();
    expect(cp.sessions.sort((a, b) => a.key - b.key)).toEqual([session(1, 10, "google"), session(2, 20, "mail")]);

    await h.commit(batch({ sessions: [session(7, 70)], sessionsFull: true }));
    await h.commit(batch({ sessions: [session(8, 80, "ads")] }));
    await h.close();
    const again = openSqliteHistory(dir);
    cp = await again.loadCheckpoint();
    expect(cp.sessions.sort((a, b) => a.key - b.key)).toEqual([session(7, 70), session(8, 80, "ads")]);
    await again.close();
  });

  it("upserts windows idempotently per (family, resolution, start, partition) and reads ranges", async () => {
    const h = openSqliteHistory(fresh());
    const row = (start: number, partition: number, v: number) => ({ family: "core", res: 1000 as const, start, partition, value: new Uint8Array([v]) });
    await h.commit(batch({ windows: [row(1000, 0, 1), row(2000, 0, 2), row(2000, 1, 3)], offsets: new Map([[0, 5]]) }));
    await h.commit(batch({ windows: [row(2000, 0, 9)], offsets: new Map([[0, 7]]) })); // replay/upsert
    const rows = await h.readWindows(["core"], 1000, 1500, 3000);
    expect(rows.map((r) => [r.start, r.partition, r.value[0]]).sort()).toEqual([[2000, 0, 9], [2000, 1, 3]]);
    expect((await h.readWindows(["users"], 1000, 0, 5000)).length).toBe(0);
    expect((await h.loadCheckpoint()).offsets.get(0)).toBe(7);
    expect(await h.prune({ "1s": 1500, "1m": 1e9, "1h": 1e9 }, 3000)).toBe(1); // starts before 1500
    expect((await h.readWindows(["core"], 1000, 0, 5000)).map((r) => r.start)).toEqual([2000, 2000]);
    await h.close();
  });
});
