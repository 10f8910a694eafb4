// Embedded HistoryStore on bun:sqlite (history.db in the data dir). One transaction per checkpoint
// holds window upserts, open-window state, sessions, inventory and consumer offsets: all or nothing.

import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type {
  SessionRow,
  Checkpoint,
  CommitBatch,
  HistoryStore,
  LateRow,
  Resolution,
  WindowRow,
} from "./types.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS windows (
  family TEXT NOT NULL, res INTEGER NOT NULL, start INTEGER NOT NULL, partition INTEGER NOT NULL,
  value BLOB NOT NULL, PRIMARY KEY (res, family, start, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS open_windows (
  res INTEGER NOT NULL, start INTEGER NOT NULL, partition INTEGER NOT NULL, value BLOB NOT NULL,
  PRIMARY KEY (res, start, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS session_log (seq INTEGER PRIMARY KEY, full INTEGER NOT NULL, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS inventory (
  partition INTEGER NOT NULL, product TEXT NOT NULL, stock INTEGER NOT NULL, time REAL NOT NULL,
  PRIMARY KEY (partition, product)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS late_events (
  partition INTEGER NOT NULL, offset INTEGER NOT NULL, time REAL NOT NULL, type TEXT NOT NULL,
  reason TEXT NOT NULL, PRIMARY KEY (partition, offset)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (partition INTEGER PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
`;

/** Open (creating) history.db in dir. */
export function openSqliteHistory(dir: string, opts: { synchronous?: "NORMAL" | "FULL" } = {}): HistoryStore {
  mkdirSync(dir, { recursive: true });
  const db = new Database(join(dir, "history.db"), { create: true });
  db.exec("PRAGMA journal_mode=WAL");
  db.exec(`PRAGMA synchronous=${opts.synchronous ?? "NORMAL"}`);
  db.exec("PRAGMA busy_timeout=5000");
  db.exec(SCHEMA);

  const upsertWindow = db.prepare(
    "INSERT INTO windows (family, res, start, partition, value) VALUES (?, ?, ?, ?, ?) " +
      "ON CONFLICT (res, family, start, partition) DO UPDATE SET value = excluded.value",
  );
  const upsertOpen = db.prepare(
    "INSERT INTO open_windows (res, start, partition, value) VALUES (?, ?, ?, ?) " +
      "ON CONFLICT (res, start, partition) DO UPDATE SET value = excluded.value",
  );
  const deleteOpen = db.prepare("DELETE FROM open_windows WHERE res = ? AND start = ? AND partition = ?");
  // Open sessions change with nearly every event: each checkpoint appends one blob of the changed
  // and closed sessions instead of upserting thousands of rows; a periodic full snapshot compacts.
  const appendSessions = db.prepare("INSERT INTO session_log (full, blob) VALUES (?, ?)");
  const clearSessions = db.prepare("DELETE FROM session_log");
  const upsertInventory = db.prepare(
    "INSERT INTO inventory (partition, product, stock, time) VALUES (?, ?, ?, ?) " +
      "ON CONFLICT (partition, product) DO UPDATE SET stock = excluded.stock, time = excluded.time",
  );
  const insertLate = db.prepare(
    "INSERT OR REPLACE INTO late_events (partition, offset, time, type, reason) VALUES (?, ?, ?, ?, ?)",
  );
  const upsertOffset = db.prepare(
    "INSERT INTO offsets (partition, next) VALUES (?, ?) ON CONFLICT (partition) DO UPDATE SET next = excluded.next",
  );
  const upsertMeta = db.prepare(
    "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
  );

  const commitTx = db.transaction((b: CommitBatch) => {
    for (const w of b.windows) upsertWindow.run(w.family, w.res, w.start, w.partition, w.value);
    for (const o of b.openWindows) {
      if (o.value) upsertOpen.run(o.res, o.start, o.partition, o.value);
      else deleteOpen.run(o.res, o.start, o.partition);
    }
    if (b.sessionsFull) clearSessions.run();
    if (b.sessionsFull || b.sessions.length > 0 || b.deletedSessions.length > 0)
      appendSessions.run(b.sessionsFull ? 1 : 0, encodeSessions(b.sessions, b.deletedSessions));
    for (const i of b.inventory) upsertInventory.run(i.partition, i.productId, i.stock, i.time);
    for (const l of b.late) insertLate.run(l.partition, l.offset, l.time, l.type, l.reason);
    for (const [p, next] of b.offsets) upsertOffset.run(p, next);
    upsertMeta.run("engine", b.meta);
  });

  const readStmts = new Map<number, ReturnType<typeof db.prepare>>();
  function readStmt(nFamilies: number) {
    let s = readStmts.get(nFamilies);
    if (!s) {
      const marks = Array(nFamilies).fill("?").join(",");
      s = db.prepare(
        `SELECT family, res, start, partition, value FROM windows WHERE res = ? AND family IN (${marks}) AND start >= ? AND start < ?`,
      );
      readStmts.set(nFamilies, s);
    }
    return s;
  }

  return {
    async commit(batch) {
      commitTx(batch);
    },
    commitSync(batch) {
      commitTx(batch);
    },
    async readWindows(families, res, from, to) {
      if (families.length === 0) return [];
      const rows = readStmt(families.length).all(res, ...families, from, to) as Array<{
        family: string;
        res: number;
        start: number;
        partition: number;
        value: Uint8Array;
      }>;
      return rows.map(
        (r): WindowRow => ({
          family: r.family,
          res: r.res as Resolution,
          start: r.start,
          partition: r.partition,
          value: r.value,
        }),
      );
    },
    async loadCheckpoint(): Promise<Checkpoint> {
      const offsets = new Map<number, number>();
      for (const r of db.query("SELECT partition, next FROM offsets").all() as Array<{ partition: number; next: number }>)
        offsets.set(r.partition, r.next);
      const openWindows = (
        db.query("SELECT res, start, partition, value FROM open_windows").all() as Array<{
          res: number;
          start: number;
          partition: number;
          value: Uint8Array;
        }>
      ).map((r) => ({ res: r.res as Resolution, start: r.start, partition: r.partition, value: r.value }));
      const open = new Map<string, SessionRow>();
      for (const r of db.query("SELECT full, blob FROM session_log ORDER BY seq").all() as Array<{ full: number; blob: Uint8Array }>) {
        if (r.full) open.clear();
        const { sessions: changed, deleted } = decodeSessions(r.blob);
        for (const row of changed) open.set(`${row.partition}:${row.key}`, row);
        for (const d of deleted) open.delete(`${d.partition}:${d.key}`);
      }
      const sessions = [...open.values()];
      const inventory = (
        db.query("SELECT partition, product, stock, time FROM inventory").all() as Array<{
          partition: number;
          product: string;
          stock: number;
          time: number;
        }>
      ).map((r) => ({ partition: r.partition, productId: r.product, stock: r.stock, time: r.time }));
      const meta = (db.query("SELECT v FROM meta WHERE k = 'engine'").get() as { v: string } | null)?.v ?? null;
      return { offsets, openWindows, sessions, inventory, meta };
    },
    async lateEvents(limit) {
      return db
        .query("SELECT partition, offset, time, type, reason FROM late_events ORDER BY time DESC LIMIT ?")
        .all(limit) as LateRow[];
    },
    async prune(retention, now) {
      let removed = 0;
      const del = db.prepare("DELETE FROM windows WHERE res = ? AND start < ?");
      for (const [res, keep] of [
        [1000, retention["1s"]],
        [60_000, retention["1m"]],
        [3_600_000, retention["1h"]],
      ] as const) {
        removed += del.run(res, now - keep).changes;
      }
      // late-dropped events are kept as long as the finest history that could explain them
      db.prepare("DELETE FROM late_events WHERE time < ?").run(now - retention["1h"]);
      return removed;
    },
    async close() {
      db.close();
    },
  };
}

const SESSION_FIELDS = 6;

/** [u32 changed][u32 deleted][changed x 6 f64][deleted x 2 f64][JSON of the changed sessions' sources] */
export function encodeSessions(rows: SessionRow[], deleted: Array<{ partition: number; key: number }>): Uint8Array {
  const nums = new Float64Array(rows.length * SESSION_FIELDS + deleted.length * 2);
  let o = 0;
  for (const r of rows) {
    nums[o++] = r.partition;
    nums[o++] = r.key;
    nums[o++] = r.start;
    nums[o++] = r.last;
    nums[o++] = r.bits;
    nums[o++] = r.sourceTime;
  }
  for (const d of deleted) {
    nums[o++] = d.partition;
    nums[o++] = d.key;
  }
  const sources = new TextEncoder().encode(JSON.stringify(rows.map((r) => r.source)));
  const out = new Uint8Array(8 + nums.byteLength + sources.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, rows.length, true);
  view.setUint32(4, deleted.length, true);
  out.set(new Uint8Array(nums.buffer), 8);
  out.set(sources, 8 + nums.byteLength);
  return out;
}

export function decodeSessions(blob: Uint8Array): { sessions: SessionRow[]; deleted: Array<{ partition: number; key: number }> } {
  const bytes = blob.slice(); // own, aligned copy
  const view = new DataView(bytes.buffer);
  const n = view.getUint32(0, true);
  const m = view.getUint32(4, true);
  const nums = new Float64Array(bytes.buffer, 8, n * SESSION_FIELDS + m * 2);
  const sources = JSON.parse(new TextDecoder().decode(bytes.subarray(8 + nums.byteLength))) as Array<string | null>;
  const sessions: SessionRow[] = [];
  let o = 0;
  for (let i = 0; i < n; i++, o += SESSION_FIELDS)
    sessions.push({
      partition: nums[o],
      key: nums[o + 1],
      start: nums[o + 2],
      last: nums[o + 3],
      bits: nums[o + 4],
      sourceTime: nums[o + 5],
      source: sources[i],
    });
  const deleted: Array<{ partition: number; key: number }> = [];
  for (let i = 0; i < m; i++, o += 2) deleted.push({ partition: nums[o], key: nums[o + 1] });
  return { sessions, deleted };
}
