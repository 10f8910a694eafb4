// Cassandra HistoryStore against a real Cassandra 5.0 (scripts/services.sh up cassandra), and one shared
// scenario run against both it and bun:sqlite. Skipped only when nothing answers on 9042 outside CI.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import cassandra from "cassandra-driver";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CassandraStoreError, migrateCassandra, openCassandraHistory } from "../../src/store/cassandra-history.ts";
import { openSqliteHistory } from "../../src/store/sqlite-history.ts";
import type { Checkpoint, CommitBatch, HistoryStore, Resolution, SessionRow, WindowRow } from "../../src/store/types.ts";
import { tcpReachable } from "../helpers.ts";

const CONTACT = ["127.0.0.1:9042"];
const RUN = `rtae_t_${crypto.randomUUID().slice(0, 8)}`;
const RETENTION = { "1s": 24 * 3_600_000, "1m": 30 * 86_400_000, "1h": 400 * 86_400_000 };
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const TEST_MS = 20_000;

const reachable = () => tcpReachable(9042);
const skip = !(await reachable()) && !process.env.CI;

// ---------------------------------------------------------------- helpers

const keyspaces: string[] = [];
const stores: HistoryStore[] = [];
const dirs: string[] = [];
let n = 0;
/** keyspaces migrated up front, concurrently: schema changes dominate this file's run time */
let ready: Array<Promise<void>> = [];
function premigrate(count: number): void {
  ready = Array.from({ length: count }, (_, i) => {
    keyspaces.push(`${RUN}_${i}`);
    return migrateCassandra({ contactPoints: CONTACT, keyspace: `${RUN}_${i}`, retention: RETENTION });
  });
}
async function freshCassandra(): Promise<{ ks: string; store: HistoryStore }> {
  const i = n++;
  const ks = `${RUN}_${i}`;
  await ready[i];
  const store = await openCassandraHistory({ contactPoints: CONTACT, keyspace: ks });
  stores.push(store);
  return { ks, store };
}
function freshSqlite(): HistoryStore {
  const d = mkdtempSync(join(tmpdir(), "rtae-cass-"));
  dirs.push(d);
  const s = openSqliteHistory(d);
  stores.push(s);
  return s;
}
let admin: cassandra.Client;

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
const win = (family: string, res: Resolution, start: number, partition: number, v: number): WindowRow => ({
  family,
  res,
  start,
  partition,
  value: new Uint8Array([v, v >> 8, 7]),
});
const sortedWindows = (rows: WindowRow[]) =>
  rows
    .map((r) => [r.family, r.res, r.start, r.partition, [...r.value].join(",")] as const)
    .sort((a, b) => (a.join("|") < b.join("|") ? -1 : a.join("|") > b.join("|") ? 1 : 0));
const normalize = (cp: Checkpoint) => ({
  offsets: [...cp.offsets].sort((a, b) => a[0] - b[0]),
  openWindows: cp.openWindows
    .map((o) => [o.res, o.start, o.partition, [...o.value].join(",")] as const)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]),
  sessions: [...cp.sessions].sort((a, b) => a.partition - b.partition || a.key - b.key),
  inventory: [...cp.inventory].sort((a, b) => a.partition - b.partition || (a.productId < b.productId ? -1 : 1)),
  meta: cp.meta,
});

/** A deterministic LCG, so both stores see the very same batches. */
function rng(seed: number) {
  let s = seed >>> 0;
  return (m: number) => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return s % m;
  };
}

/**
 * One scenario, as the engine drives a store: six checkpoints of windows around bucket boundaries of every
 * resolution, open-window upserts and deletes, session deltas then a full snapshot (offsets for every
 * partition, as the engine sends), inventory, late events, advancing offsets and meta.
 */
function scenario(now: number): CommitBatch[] {
  const r = rng(42);
  const P = 4;
  const hourB = Math.floor(now / HOUR) * HOUR;
  const dayB = Math.floor(now / DAY) * DAY;
  const monthB = Math.floor(now / (30 * DAY)) * (30 * DAY);
  const out: CommitBatch[] = [];
  const offsets = new Map<number, number>();
  for (let c = 0; c < 6; c++) {
    const windows: WindowRow[] = [];
    for (let i = 0; i < 40; i++) {
      const family = ["core", "users", "products"][r(3)];
      const p = r(P);
      const which = r(3);
      if (which === 0) windows.push(win(family, 1000, hourB + (r(20) - 10) * 1000, p, r(256)));
      else if (which === 1) windows.push(win(family, 60_000, dayB + (r(20) - 10) * 60_000, p, r(256)));
      else windows.push(win(family, 3_600_000, monthB + (r(20) - 10) * HOUR, p, r(256)));
    }
    const openWindows = Array.from({ length: 6 }, () => {
      const v = r(4);
      return { res: 1000 as Resolution, start: hourB + r(5) * 1000, partition: r(P), value: v === 0 ? null : new Uint8Array([v, c]) };
    });
    const full = c === 3;
    const sessions: SessionRow[] = Array.from({ length: full ? 5 : 8 }, () => {
      const key = r(30);
      return { partition: key % P, key, start: now - r(1000), last: now + r(1000), bits: r(64), source: r(2) ? `src${r(3)}` : null, sourceTime: now };
    });
    const deletedSessions = full ? [] : Array.from({ length: 3 }, () => ({ partition: 0, key: 0 })).map(() => {
      const key = r(30);
      return { partition: key % P, key };
    });
    const inventory = Array.from({ length: 4 }, () => ({ partition: r(P), productId: `p${r(6)}`, stock: r(100), time: now - r(9999) }));
    const late = Array.from({ length: 2 }, (_, i) => ({
      partition: r(P),
      offset: c * 10 + i,
      time: now - (c * 2 + i) * 1000 - (c === 5 ? 40 * DAY : 0), // one checkpoint's late events in an older bucket
      type: "page_view",
      reason: "behind allowed lateness",
    }));
    for (let p = 0; p < P; p++) offsets.set(p, (offsets.get(p) ?? 0) + r(50));
    out.push({ windows, openWindows, sessions, deletedSessions, sessionsFull: full, inventory, late, offsets: new Map(offsets), meta: JSON.stringify({ c }) });
  }
  return out;
}

/** Reads that must agree between stores after the scenario. */
async function answers(h: HistoryStore, now: number) {
  const hourB = Math.floor(now / HOUR) * HOUR;
  const dayB = Math.floor(now / DAY) * DAY;
  const monthB = Math.floor(now / (30 * DAY)) * (30 * DAY);
  const fams = ["core", "users", "products"];
  return {
    checkpoint: normalize(await h.loadCheckpoint()),
    s: sortedWindows(await h.readWindows(fams, 1000, hourB - 7000, hourB + 3000)),
    m: sortedWindows(await h.readWindows(["core", "users"], 60_000, dayB - 600_000, dayB + 600_000)),
    h: sortedWindows(await h.readWindows(fams, 3_600_000, monthB - 4 * HOUR, monthB + 9 * HOUR)),
    late: await h.lateEvents(7),
  };
}

// ---------------------------------------------------------------- tests

describe.skipIf(skip)("cassandra history", () => {
  let store: HistoryStore;
  let ks: string;
  beforeAll(async () => {
    admin = new cassandra.Client({ contactPoints: CONTACT, localDataCenter: "datacenter1", socketOptions: { connectTimeout: 5000 } });
    const t0 = performance.now();
    premigrate(6);
    await Promise.all(ready);
    ({ ks, store } = await freshCassandra());
    console.log(`[timing] 6 concurrent migrates + open: ${(performance.now() - t0).toFixed(0)} ms`);
  }, 60_000);
  afterAll(async () => {
    for (const s of stores.splice(0)) await s.close().catch(() => {});
    const t0 = performance.now();
    await Promise.all(keyspaces.splice(0).map((k) => admin.execute(`DROP KEYSPACE IF EXISTS ${k}`).catch(() => {})));
    console.log(`[timing] drop keyspaces: ${(performance.now() - t0).toFixed(0)} ms`);
    await admin?.shutdown();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }, 60_000);

  it("migrates idempotently: a second run keeps data and records the new retention", async () => {
    await store.commit(batch({ offsets: new Map([[9, 99]]), meta: '{"kept":true}' }));
    await migrateCassandra({ contactPoints: CONTACT, keyspace: ks, retention: { ...RETENTION, "1s": 2 * HOUR } });
    const tables = (await admin.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?", [ks], { prepare: true })).rows
      .map((r) => r.get("table_name") as string)
      .sort();
    expect(tables).toEqual(["inventory", "late_events", "meta", "offsets", "open_windows", "owners", "session_log", "windows"]);
    const retention = (await admin.execute(`SELECT v FROM ${ks}.meta WHERE k = 'retention'`)).first().get("v") as string;
    expect(JSON.parse(retention)).toEqual({ ...RETENTION, "1s": 2 * HOUR });
    const cp = await store.loadCheckpoint();
    expect(cp.offsets.get(9)).toBe(99);
    expect(cp.meta).toBe('{"kept":true}');
    await migrateCassandra({ contactPoints: CONTACT, keyspace: ks, retention: RETENTION });
  }, TEST_MS);

  it("replays the session log: later changes win, deletes remove, a full snapshot replaces its partitions", async () => {
    const { ks: k2, store: h } = await freshCassandra();
    await h.commit(batch({ sessions: [session(1, 10, "google"), session(2, 10), session(3, 10)] }));
    await h.commit(batch({ sessions: [session(2, 20, "mail")], deletedSessions: [{ partition: 0, key: 3 }] }));
    let cp = await h.loadCheckpoint();
    expect(cp.sessions.sort((a, b) => a.key - b.key)).toEqual([session(1, 10, "google"), session(2, 20, "mail")]);

    // the engine's full snapshot carries offsets for every partition it owns
    const owned = new Map([[0, 1], [1, 1], [2, 1]]);
    await h.commit(batch({ sessions: [session(7, 70)], sessionsFull: true, offsets: owned }));
    await h.commit(batch({ sessions: [session(8, 80, "ads")] }));
    const again = await openCassandraHistory({ contactPoints: CONTACT, keyspace: k2 });
    stores.push(again);
    cp = await again.loadCheckpoint();
    expect(cp.sessions.sort((a, b) => a.key - b.key)).toEqual([session(7, 70), session(8, 80, "ads")]);
    // compaction: the full snapshot's range delete left only entries from the snapshot on
    const left = (await admin.execute(`SELECT partition, is_full FROM ${k2}.session_log`)).rows.map((r) => [r.get("partition"), r.get("is_full")]);
    expect(left.sort()).toEqual([[0, true], [1, true], [2, false], [2, true]]);
  }, TEST_MS);

  it("leaves the session log of partitions a full snapshot does not cover (owned by another instance)", async () => {
    const { store: h } = await freshCassandra();
    await h.commit(batch({ sessions: [session(1, 10), session(5, 10)] })); // partitions 1 and 2
    await h.commit(batch({ sessions: [session(4, 40)], sessionsFull: true, offsets: new Map([[1, 3]]) }));
    const cp = await h.loadCheckpoint();
    expect(cp.sessions.map((s) => s.key).sort()).toEqual([4, 5]);
  }, TEST_MS);

  it("upserts windows idempotently and reads ranges across 1 s, 1 m and 1 h bucket boundaries", async () => {
    const now = Date.now();
    const cases: Array<[Resolution, number]> = [
      [1000, Math.floor(now / HOUR) * HOUR],
      [60_000, Math.floor(now / DAY) * DAY],
      [3_600_000, Math.floor(now / (30 * DAY)) * (30 * DAY)],
    ];
    for (const [res, boundary] of cases) {
      const rows = [-2, -1, 0, 1, 2].flatMap((i) => [win("core", res, boundary + i * res, 0, 10 + i), win("core", res, boundary + i * res, 1, 20 + i)]);
      await store.commit(batch({ windows: rows, offsets: new Map([[0, 5]]) }));
      const redo = [win("core", res, boundary - res, 0, 99), win("core", res, boundary, 1, 98)];
      await store.commit(batch({ windows: redo, offsets: new Map([[0, 7]]) })); // replay/upsert
      const from = boundary - res - res / 2;
      const to = boundary + res + res / 2;
      const expected = new Map<string, WindowRow>();
      for (const r of [...rows, ...redo]) if (r.start >= from && r.start < to) expected.set(`${r.start}|${r.partition}`, r);
      expect(sortedWindows(await store.readWindows(["core"], res, from, to))).toEqual(sortedWindows([...expected.values()]));
      expect(expected.size).toBe(6); // starts boundary−res, boundary, boundary+res on both partitions
      expect(await store.readWindows(["users"], res, from, to)).toEqual([]);
      expect(await store.readWindows(["core"], res, to, from)).toEqual([]);
    }
    expect((await store.loadCheckpoint()).offsets.get(0)).toBe(7);
    expect(await store.prune(RETENTION, now + 400 * DAY)).toBe(0); // TTL expires rows, nothing to delete
  }, TEST_MS);

  it("sets each window's TTL from its resolution's retention and start", async () => {
    const now = Date.now();
    const rows = ([1000, 60_000, 3_600_000] as Resolution[]).map((res) => win("ttl", res, Math.floor(now / res) * res, 3, 1));
    const before = Date.now();
    await store.commit(batch({ windows: rows }));
    const after = Date.now();
    for (const r of rows) {
      const bucket = Math.floor(r.start / { 1000: HOUR, 60_000: DAY, 3_600_000: 30 * DAY }[r.res]) * { 1000: HOUR, 60_000: DAY, 3_600_000: 30 * DAY }[r.res];
      const ttl = (
        await admin.execute(`SELECT TTL(value) AS t FROM ${ks}.windows WHERE res = ? AND family = 'ttl' AND bucket = ? AND start = ? AND partition = 3`, [r.res, bucket, r.start], { prepare: true })
      ).first().get("t") as number;
      const keep = { 1000: RETENTION["1s"], 60_000: RETENTION["1m"], 3_600_000: RETENTION["1h"] }[r.res];
      expect(ttl).toBeLessThanOrEqual(Math.ceil((r.start + keep - before) / 1000));
      expect(ttl).toBeGreaterThanOrEqual(Math.floor((r.start + keep - after) / 1000) - 2);
    }
  }, TEST_MS);

  it("round-trips offsets, meta, open windows, inventory and late events newest first", async () => {
    const { store: h } = await freshCassandra();
    const now = Date.now();
    const big = new Uint8Array(300_000).map((_, i) => i % 251); // above the 50 KiB batch fail threshold
    await h.commit(
      batch({
        openWindows: [{ res: 1000, start: 5000, partition: 2, value: big }, { res: 60_000, start: 60_000, partition: 2, value: new Uint8Array([1]) }],
        inventory: [{ partition: 2, productId: "p1", stock: 5, time: now - 10 }, { partition: 1, productId: "p2", stock: 0, time: now - 5 }],
        late: [1, 2, 3].map((i) => ({ partition: i % 2, offset: i, time: now - i * 40 * DAY, type: "purchase", reason: "late" })),
        offsets: new Map([[1, 10], [2, 20]]),
        meta: '{"w":1}',
      }),
    );
    await h.commit(batch({ openWindows: [{ res: 60_000, start: 60_000, partition: 2, value: null }], offsets: new Map([[2, 25]]), meta: '{"w":2}' }));
    const cp = await h.loadCheckpoint();
    expect([...cp.offsets].sort()).toEqual([[1, 10], [2, 25]]);
    expect(cp.meta).toBe('{"w":2}');
    expect(cp.openWindows.length).toBe(1);
    expect(cp.openWindows[0].value).toEqual(big);
    expect(cp.inventory.sort((a, b) => a.partition - b.partition)).toEqual([
      { partition: 1, productId: "p2", stock: 0, time: now - 5 },
      { partition: 2, productId: "p1", stock: 5, time: now - 10 },
    ]);
    expect((await h.lateEvents(2)).map((l) => l.offset)).toEqual([1, 2]);
    expect((await h.lateEvents(10)).map((l) => l.time)).toEqual([1, 2, 3].map((i) => now - i * 40 * DAY));
  }, TEST_MS);

  it("loads only the partitions asked for, with their meta, and tracks which instance owns a partition", async () => {
    const { store: h } = await freshCassandra();
    await h.commit(
      batch({
        openWindows: [0, 1, 2].map((p) => ({ res: 1000 as const, start: 7000, partition: p, value: new Uint8Array([p + 1]) })),
        sessions: [0, 1, 2].map((p) => ({ partition: p, key: 100 + p, start: 1, last: 2, bits: 1, source: null, sourceTime: 8.64e15 })),
        inventory: [0, 1, 2].map((p) => ({ partition: p, productId: `p${p}`, stock: p, time: 10 + p })),
        offsets: new Map([[0, 5], [1, 6], [2, 7]]),
        partitionMeta: new Map([[0, '{"floor":1}'], [2, '{"floor":3}']]),
        meta: "{}",
      }),
    );
    const cp = await h.loadCheckpoint([0, 2]);
    expect([...cp.offsets].sort()).toEqual([[0, 5], [2, 7]]);
    expect([...(cp.partitionMeta ?? [])].sort()).toEqual([[0, '{"floor":1}'], [2, '{"floor":3}']]);
    expect(cp.openWindows.map((o) => o.partition).sort()).toEqual([0, 2]);
    expect(cp.sessions.map((x) => x.key).sort()).toEqual([100, 102]);
    expect(cp.inventory.map((x) => x.productId).sort()).toEqual(["p0", "p2"]);
    expect((await h.inventory!([1])).map((x) => [x.productId, x.stock])).toEqual([["p1", 1]]);
    // ownership: unclaimed partitions are nobody's loss; a later claim by another instance is
    expect(await h.lostOwnership!("a", [0, 1])).toEqual([]);
    await h.claim!("a", [0, 1]);
    expect(await h.lostOwnership!("a", [0, 1])).toEqual([]);
    await h.claim!("b", [1]);
    expect(await h.lostOwnership!("a", [0, 1])).toEqual([1]);
    expect(await h.lostOwnership!("b", [1])).toEqual([]);
  }, TEST_MS);

  it("gives the same checkpoint and reads as sqlite for one commit sequence", async () => {
    const { store: c } = await freshCassandra();
    const s = freshSqlite();
    const now = Date.now();
    for (const b of scenario(now)) {
      await c.commit(b);
      await s.commit(b);
    }
    const [fromC, fromS] = [await answers(c, now), await answers(s, now)];
    expect(fromS.s.length + fromS.m.length + fromS.h.length).toBeGreaterThan(50);
    expect(fromS.checkpoint.sessions.length).toBeGreaterThan(3);
    expect(fromS.checkpoint.openWindows.length).toBeGreaterThan(0);
    expect(fromC).toEqual(fromS);
  }, TEST_MS);

  it("commits and reads back thousands of window rows", async () => {
    const h = store;
    const base = Math.floor(Date.now() / HOUR) * HOUR - HOUR;
    const rows: WindowRow[] = [];
    for (let s = 0; s < 1250; s++) for (let p = 0; p < 4; p++) rows.push(win("bulk", 1000, base + s * 1000, p, s));
    let t0 = performance.now();
    await h.commit(batch({ windows: rows, offsets: new Map([[0, 1]]) }));
    const commitMs = performance.now() - t0;
    t0 = performance.now();
    const back = await h.readWindows(["bulk"], 1000, base, base + 2 * HOUR);
    const readMs = performance.now() - t0;
    t0 = performance.now();
    const day = await h.readWindows(["bulk", "core", "users"], 1000, base - 23 * HOUR, base + HOUR); // 72 bucket queries
    const dayMs = performance.now() - t0;
    t0 = performance.now();
    await h.loadCheckpoint();
    console.log(
      `[timing] commit ${rows.length} window rows: ${commitMs.toFixed(0)} ms; read them (2 buckets): ${readMs.toFixed(0)} ms; ` +
        `24 h of 1 s for 3 families (72 buckets): ${dayMs.toFixed(0)} ms; loadCheckpoint: ${(performance.now() - t0).toFixed(0)} ms`,
    );
    expect(day.filter((r) => r.family === "bulk").length).toBe(rows.length); // all 1250 s lie in the last of the 24 hours
    expect(sortedWindows(back)).toEqual(sortedWindows(rows));
  }, TEST_MS);

  it("refuses a keyspace that was never migrated with a non-retriable error", async () => {
    const err = await openCassandraHistory({ contactPoints: CONTACT, keyspace: `${RUN}_missing` }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CassandraStoreError);
    expect((err as CassandraStoreError).code).toBe("not_migrated");
    expect((err as CassandraStoreError).retriable).toBe(false);
  }, TEST_MS);
});

describe("cassandra history without a cluster", () => {
  it("fails fast with a retriable store_unavailable error when no contact point answers", async () => {
    for (const contactPoints of [["127.0.0.1:1"], ["10.255.255.1:9042"]]) {
      const t0 = performance.now();
      const err = await openCassandraHistory({ contactPoints, keyspace: "rtae", timeoutMs: 1500 }).catch((e: unknown) => e);
      expect(performance.now() - t0).toBeLessThan(3000);
      expect(err).toBeInstanceOf(CassandraStoreError);
      expect((err as CassandraStoreError).code).toBe("store_unavailable");
      expect((err as CassandraStoreError).retriable).toBe(true);
    }
    const t0 = performance.now();
    const err = await migrateCassandra({ contactPoints: ["127.0.0.1:1"], keyspace: "rtae", retention: RETENTION, timeoutMs: 1500 }).catch((e: unknown) => e);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect((err as CassandraStoreError).code).toBe("store_unavailable");
  }, TEST_MS);
});
