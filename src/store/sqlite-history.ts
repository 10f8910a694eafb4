// Embedded HistoryStore on bun:sqlite (history.db in the data dir). One transaction per checkpoint
// holds window upserts, open-window state, sessions, inventory and consumer offsets: all or nothing.

import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type {
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
CREATE TABLE IF NOT EXISTS sessions (
  partition INTEGER NOT NULL, key INTEGER NOT NULL, start REAL NOT NULL, last REAL NOT NULL,
  bits INTEGER NOT NULL, source TEXT, source_time REAL NOT NULL, PRIMARY KEY (partition, key)) WITHOUT ROWID;
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
  const upsertSession = db.prepare(
    "INSERT INTO sessions (partition, key, start, last, bits, source, source_time) VALUES (?, ?, ?, ?, ?, ?, ?) " +
      "ON CONFLICT (partition, key) DO UPDATE SET start = excluded.start, last = excluded.last, " +
      "bits = excluded.bits, source = excluded.source, source_time = excluded.source_time",
  );
  const deleteSession = db.prepare("DELETE FROM sessions WHERE partition = ? AND key = ?");
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
    for (const s of b.sessions)
      upsertSession.run(s.partition, s.key, s.start, s.last, s.bits, s.source, s.sourceTime);
    for (const s of b.deletedSessions) deleteSession.run(s.partition, s.key);
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
      const sessions = (
        db.query("SELECT partition, key, start, last, bits, source, source_time FROM sessions").all() as Array<{
          partition: number;
          key: number;
          start: number;
          last: number;
          bits: number;
          source: string | null;
          source_time: number;
        }>
      ).map((r) => ({
        partition: r.partition,
        key: r.key,
        start: r.start,
        last: r.last,
        bits: r.bits,
        source: r.source,
        sourceTime: r.source_time,
      }));
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
