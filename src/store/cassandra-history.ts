// Distributed HistoryStore on Cassandra: idempotent prepared upserts; per Kafka partition, its state and its
// offset go in one unlogged single-partition batch (one atomic mutation), written after windows and meta.

import cassandra from "cassandra-driver";
import {
  BUCKET_MS,
  CassandraStoreError,
  LATE_BUCKET_MS,
  bucketOf,
  checkKeyspace,
  createClient,
  toStoreError,
  ttlSeconds,
  withDeadline,
  type RetentionMs,
} from "./cassandra-schema.ts";
import { decodeSessions, encodeSessions } from "./sqlite-history.ts";
import type { Checkpoint, CommitBatch, HistoryStore, LateRow, Resolution, SessionRow, WindowRow } from "./types.ts";

export { CassandraStoreError, migrateCassandra, bucketOf, BUCKET_MS, type CassandraMigrateOptions } from "./cassandra-schema.ts";

export type CassandraConsistency = "LOCAL_ONE" | "LOCAL_QUORUM" | "QUORUM" | "ONE" | "ALL";
const CONSISTENCY: Record<CassandraConsistency, number> = {
  LOCAL_ONE: cassandra.types.consistencies.localOne,
  LOCAL_QUORUM: cassandra.types.consistencies.localQuorum,
  QUORUM: cassandra.types.consistencies.quorum,
  ONE: cassandra.types.consistencies.one,
  ALL: cassandra.types.consistencies.all,
};

export interface CassandraHistoryOptions {
  contactPoints: string[];
  keyspace: string;
  /** default "datacenter1" (Cassandra's default) */
  localDataCenter?: string;
  /** for every read and write; default LOCAL_QUORUM */
  consistency?: CassandraConsistency;
  /** meta row holding this instance's engine state (watermark, clocks); default "engine" */
  writerId?: string;
  /** statements or batches in flight at once per call; default 32 */
  concurrency?: number;
  /** bound on each store call, connect included; default 30 s */
  timeoutMs?: number;
}

type Stmt = { query: string; params: unknown[] };

const Q = {
  window: "INSERT INTO windows (res, family, bucket, start, partition, value) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?",
  late: "INSERT INTO late_events (bucket, time, partition, offset, type, reason) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?",
  meta: "INSERT INTO meta (k, v) VALUES (?, ?)",
  open: "INSERT INTO open_windows (partition, res, start, value) VALUES (?, ?, ?, ?)",
  openDelete: "DELETE FROM open_windows WHERE partition = ? AND res = ? AND start = ?",
  session: "INSERT INTO session_log (partition, seq, is_full, blob) VALUES (?, ?, ?, ?)",
  sessionClear: "DELETE FROM session_log WHERE partition = ? AND seq < ?",
  inventory: "INSERT INTO inventory (partition, product, stock, time) VALUES (?, ?, ?, ?)",
  offset: "INSERT INTO offsets (partition, next, meta) VALUES (?, ?, ?)",
  claim: "INSERT INTO owners (partition, owner, claimed_at) VALUES (?, ?, ?)",
};
/** statements per multi-row batch of one windows partition: large enough to save round trips, small for the coordinator */
const BATCH_ROWS = 64;
/** a read wider than this many bucket queries is refused rather than flooding the cluster */
const MAX_BUCKET_QUERIES = 20_000;

/**
 * Connect to a migrated keyspace (see `migrateCassandra`) and return its HistoryStore.
 * Rejects with a `CassandraStoreError` (`store_unavailable`, retriable) when no contact point answers in time.
 */
export async function openCassandraHistory(opts: CassandraHistoryOptions): Promise<HistoryStore> {
  const ks = checkKeyspace(opts.keyspace);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const limit = Math.max(1, opts.concurrency ?? 32);
  const metaKey = opts.writerId ?? "engine";
  const consistency = CONSISTENCY[opts.consistency ?? "LOCAL_QUORUM"];
  // isIdempotent: every statement writes fixed values at fixed keys, so the driver may retry or speculate
  const wopts = { prepare: true, isIdempotent: true, consistency };
  const client = createClient(opts.contactPoints, opts.localDataCenter, ks);

  function guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return withDeadline(fn(), timeoutMs, what).catch((err: unknown) => {
      throw toStoreError(err, what);
    });
  }

  async function all(query: string, params: unknown[]): Promise<cassandra.types.Row[]> {
    const rows: cassandra.types.Row[] = [];
    let pageState: string | undefined;
    do {
      const rs = await client.execute(query, params, { ...wopts, fetchSize: 5000, pageState });
      rows.push(...rs.rows);
      pageState = rs.pageState ?? undefined;
    } while (pageState);
    return rows;
  }

  const retention = await guard("cassandra open", async () => {
    await client.connect();
    const rs = await client.execute("SELECT v FROM meta WHERE k = ?", ["retention"], wopts);
    const v = rs.first()?.get("v") as string | undefined;
    if (!v) throw new CassandraStoreError("not_migrated", `keyspace ${ks} has no retention recorded (run rtae migrate)`);
    return JSON.parse(v) as RetentionMs;
  }).catch(async (err: unknown) => {
    await client.shutdown().catch(() => {});
    throw err;
  });
  const keep: Record<Resolution, number> = { 1000: retention["1s"], 60_000: retention["1m"], 3_600_000: retention["1h"] };

  // session log entries are ordered by seq within a partition: microseconds of wall time, forced above every
  // seq this store has seen, so a new owner of a partition (after loadCheckpoint) always appends after the old one
  let lastSeq = 0;
  const nextSeq = () => (lastSeq = Math.max(lastSeq + 1, Date.now() * 1000));

  async function runBatches(groups: Stmt[][]): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < groups.length) {
        const g = groups[next++];
        if (g.length === 1) await client.execute(g[0].query, g[0].params, wopts);
        else await client.batch(g, { ...wopts, logged: false });
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, groups.length) }, worker));
  }

  /** Rows grouped by Cassandra partition key, last write of a key winning as in sqlite, cut into batches. */
  function grouped(byKey: Map<string, Map<string, Stmt>>): Stmt[][] {
    const out: Stmt[][] = [];
    for (const rows of byKey.values()) {
      const list = [...rows.values()];
      for (let i = 0; i < list.length; i += BATCH_ROWS) out.push(list.slice(i, i + BATCH_ROWS));
    }
    return out;
  }
  function put(m: Map<string, Map<string, Stmt>>, pk: string, ck: string, s: Stmt): void {
    let rows = m.get(pk);
    if (!rows) m.set(pk, (rows = new Map()));
    rows.delete(ck); // re-insert so a later op for the same key keeps its place after earlier ones
    rows.set(ck, s);
  }

  async function commit(b: CommitBatch): Promise<void> {
    const now = Date.now();
    // 1. windows and late events: separate partition keys, rewritten identically by a replay
    const windows = new Map<string, Map<string, Stmt>>();
    for (const w of b.windows) {
      const bucket = bucketOf(w.res, w.start);
      put(windows, `${w.res}|${w.family}|${bucket}`, `${w.start}|${w.partition}`, {
        query: Q.window,
        params: [w.res, w.family, bucket, w.start, w.partition, Buffer.from(w.value), ttlSeconds(w.start, keep[w.res], now)],
      });
    }
    const late = new Map<string, Map<string, Stmt>>();
    for (const l of b.late) {
      const bucket = Math.floor(l.time / LATE_BUCKET_MS) * LATE_BUCKET_MS;
      put(late, `${bucket}`, `${l.partition}|${l.offset}`, {
        query: Q.late,
        params: [bucket, l.time, l.partition, l.offset, l.type, l.reason, ttlSeconds(l.time, retention["1h"], now)],
      });
    }
    await runBatches([...grouped(windows), ...grouped(late)]);
    // 2. engine meta before any offset moves (see the report: a newer watermark turns replayed events into
    //    corrections merged with the stored windows, where an older one could overwrite them)
    await client.execute(Q.meta, [metaKey, b.meta], wopts);
    // 3. per Kafka partition: open windows, session log, inventory and the offset in one single-partition
    //    unlogged batch, i.e. one mutation that a replica applies whole: state and offset never diverge
    const perPartition = new Map<number, Map<string, Stmt>>();
    const state = (p: number) => {
      let m = perPartition.get(p);
      if (!m) perPartition.set(p, (m = new Map()));
      return m;
    };
    for (const o of b.openWindows) {
      const m = state(o.partition);
      const ck = `o|${o.res}|${o.start}`;
      m.delete(ck);
      m.set(
        ck,
        o.value
          ? { query: Q.open, params: [o.partition, o.res, o.start, Buffer.from(o.value)] }
          : { query: Q.openDelete, params: [o.partition, o.res, o.start] },
      );
    }
    const changed = new Map<number, SessionRow[]>();
    const closed = new Map<number, Array<{ partition: number; key: number }>>();
    for (const s of b.sessions) (changed.get(s.partition) ?? changed.set(s.partition, []).get(s.partition)!).push(s);
    for (const d of b.deletedSessions) (closed.get(d.partition) ?? closed.set(d.partition, []).get(d.partition)!).push(d);
    // a full snapshot covers every partition this writer reports an offset for, plus any with sessions
    const sessionParts = new Set<number>([...changed.keys(), ...closed.keys(), ...(b.sessionsFull ? b.offsets.keys() : [])]);
    for (const p of sessionParts) {
      const seq = nextSeq();
      const m = state(p);
      if (b.sessionsFull) m.set("s|clear", { query: Q.sessionClear, params: [p, seq] });
      m.set("s|log", { query: Q.session, params: [p, seq, b.sessionsFull === true, Buffer.from(encodeSessions(changed.get(p) ?? [], closed.get(p) ?? []))] });
    }
    for (const i of b.inventory) {
      const m = state(i.partition);
      const ck = `i|${i.productId}`;
      m.delete(ck);
      m.set(ck, { query: Q.inventory, params: [i.partition, i.productId, i.stock, i.time] });
    }
    for (const [p, next] of b.offsets) state(p).set("offset", { query: Q.offset, params: [p, next, b.partitionMeta?.get(p) ?? null] });
    await runBatches([...perPartition.values()].map((m) => [...m.values()]));
  }

  return {
    commit: (batch) => guard("cassandra commit", () => commit(batch)),
    readWindows: (families, res, from, to) =>
      guard("cassandra readWindows", async () => {
        if (families.length === 0 || !(from < to)) return [];
        const span = BUCKET_MS[res];
        const buckets: number[] = [];
        for (let b = bucketOf(res, from); b < to; b += span) buckets.push(b);
        if (buckets.length * families.length > MAX_BUCKET_QUERIES)
          throw new CassandraStoreError("store_rejected", `range [${from}, ${to}) at ${res} ms needs ${buckets.length} buckets per family`);
        const out: WindowRow[] = [];
        const jobs = families.flatMap((family) => buckets.map((bucket) => ({ family, bucket })));
        let next = 0;
        const worker = async () => {
          while (next < jobs.length) {
            const { family, bucket } = jobs[next++];
            const rows = await all(
              "SELECT start, partition, value FROM windows WHERE res = ? AND family = ? AND bucket = ? AND start >= ? AND start < ?",
              [res, family, bucket, from, to],
            );
            for (const r of rows)
              out.push({ family, res, start: num(r.get("start")), partition: r.get("partition") as number, value: bytes(r.get("value")) });
          }
        };
        await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
        return out;
      }),
    loadCheckpoint: (only) =>
      guard("cassandra loadCheckpoint", async (): Promise<Checkpoint> => {
        // owned partitions: one query per partition key (no scan); all of them: a scan per table
        const each = async (cols: string, table: string) =>
          only === undefined
            ? all(`SELECT ${cols} FROM ${table}`, [])
            : (await Promise.all(only.map((p) => all(`SELECT ${cols} FROM ${table} WHERE partition = ?`, [p])))).flat();
        const [offRows, openRows, logRows, invRows, metaRows] = await Promise.all([
          each("partition, next, meta", "offsets"),
          each("partition, res, start, value", "open_windows"),
          // each partition's rows come together and in seq order: enough for a per-partition replay
          each("partition, seq, is_full, blob", "session_log"),
          each("partition, product, stock, time", "inventory"),
          all("SELECT v FROM meta WHERE k = ?", [metaKey]),
        ]);
        const offsets = new Map<number, number>();
        const partitionMeta = new Map<number, string>();
        for (const r of offRows) {
          offsets.set(r.get("partition") as number, num(r.get("next")));
          const m = r.get("meta") as string | null;
          if (m) partitionMeta.set(r.get("partition") as number, m);
        }
        const openWindows = openRows.map((r) => ({
          res: r.get("res") as Resolution,
          start: num(r.get("start")),
          partition: r.get("partition") as number,
          value: bytes(r.get("value")),
        }));
        const open = new Map<string, SessionRow>();
        for (const r of logRows) {
          lastSeq = Math.max(lastSeq, num(r.get("seq")));
          const p = r.get("partition") as number;
          if (r.get("is_full") === true) for (const k of open.keys()) if (open.get(k)!.partition === p) open.delete(k);
          const { sessions, deleted } = decodeSessions(bytes(r.get("blob")));
          for (const s of sessions) open.set(`${s.partition}:${s.key}`, s);
          for (const d of deleted) open.delete(`${d.partition}:${d.key}`);
        }
        const inventory = invRows.map((r) => ({
          partition: r.get("partition") as number,
          productId: r.get("product") as string,
          stock: num(r.get("stock")),
          time: r.get("time") as number,
        }));
        const meta = (metaRows[0]?.get("v") as string | undefined) ?? null;
        return { offsets, openWindows, sessions: [...open.values()], inventory, meta, partitionMeta };
      }),
    inventory: (partitions) =>
      guard("cassandra inventory", async () => {
        const rows = (await Promise.all(partitions.map((p) => all("SELECT partition, product, stock, time FROM inventory WHERE partition = ?", [p])))).flat();
        return rows.map((r) => ({
          partition: r.get("partition") as number,
          productId: r.get("product") as string,
          stock: num(r.get("stock")),
          time: r.get("time") as number,
        }));
      }),
    claim: (owner, partitions) =>
      guard("cassandra claim", async () => {
        const now = Date.now();
        await Promise.all(partitions.map((p) => client.execute(Q.claim, [p, owner, now], wopts)));
      }),
    lostOwnership: (owner, partitions) =>
      guard("cassandra lostOwnership", async () => {
        const lost: number[] = [];
        await Promise.all(
          partitions.map(async (p) => {
            const rs = await client.execute("SELECT owner FROM owners WHERE partition = ?", [p], wopts);
            const o = rs.first()?.get("owner") as string | undefined;
            if (o !== undefined && o !== owner) lost.push(p);
          }),
        );
        return lost;
      }),
    lateEvents: (limitRows) =>
      guard("cassandra lateEvents", async () => {
        const out: LateRow[] = [];
        if (limitRows <= 0) return out;
        // late events are rare and expire with the 1 h retention: a handful of buckets
        const buckets = (await all("SELECT DISTINCT bucket FROM late_events", [])).map((r) => num(r.get("bucket"))).sort((a, b) => b - a);
        for (const bucket of buckets) {
          const rows = await all("SELECT time, partition, offset, type, reason FROM late_events WHERE bucket = ? LIMIT ?", [bucket, limitRows - out.length]);
          for (const r of rows)
            out.push({
              partition: r.get("partition") as number,
              offset: num(r.get("offset")),
              time: r.get("time") as number,
              type: r.get("type") as string,
              reason: r.get("reason") as string,
            });
          if (out.length >= limitRows) break;
        }
        return out;
      }),
    // rows carry a TTL of (start + retention − now) from their insert: Cassandra expires them, nothing to delete
    prune: async () => 0,
    close: () => guard("cassandra close", () => client.shutdown()),
  };
}

function num(v: unknown): number {
  return typeof v === "number" ? v : (v as cassandra.types.Long).toNumber();
}
/** own copy: the driver's Buffer may be a view into a whole response frame */
function bytes(v: unknown): Uint8Array {
  return new Uint8Array(v as Buffer);
}
