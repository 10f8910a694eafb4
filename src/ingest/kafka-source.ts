// Kafka consumer-group source: per-partition batches in offset order, start offsets chosen by the caller
// (its checkpoints), group offsets committed only through commit(). kafkajs runs with autoCommit off and
// eachBatchAutoResolve off; resolveOffset only moves its fetch position, never a commit.

import type { Admin, Consumer, EachBatchPayload } from "kafkajs";
import { logger } from "../log.ts";
import { createClient, KafkaError, toKafkaError, type KafkaConnection } from "./kafka.ts";

const log = logger("kafka.source");

export interface KafkaSourceConfig extends KafkaConnection {
  topic: string;
  groupId: string;
  /** where a partition without a committed group offset starts: earliest (default) or latest */
  fromBeginning?: boolean;
  /** group session timeout (ms, default 30 s; the broker's minimum is 6 s) */
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  /** longest a fetch waits for data (ms, default 500); also bounds how long stop() waits on a fetch */
  maxWaitMs?: number;
}

export interface KafkaRecord {
  offset: number;
  /** the value as UTF-8 text (lossy when `utf8` is false), or null for a null value (tombstone) */
  value: string | null;
  key: string | null;
  /** false when the value bytes were not valid UTF-8: dead-letter it, do not parse the lossy text */
  utf8: boolean;
}

export interface KafkaSourceHandlers {
  /** newly assigned partitions; return where each starts (next offset to read) or null for the group's offset */
  onAssigned(partitions: number[]): Promise<Map<number, number | null>>;
  /**
   * Partitions taken away. On a rebalance this runs after the fact (kafkajs has no pre-revoke hook), not
   * awaited by the group, and commit() ignores these partitions from then on; on stop() it runs before
   * leaving the group, awaited, and commit() still works inside it.
   */
  onRevoked(partitions: number[]): Promise<void>;
  /**
   * One batch of one partition, records in offset order, each partition's batches one at a time. Call
   * heartbeat() during long work (it never throws; a rebalance it detects is acted on after the batch).
   * Bad records must be handled (dead-lettered) here: a throw means "cannot go on", the batch is redelivered
   * a few times and then the source stops with onError(err, false).
   */
  onBatch(partition: number, records: KafkaRecord[], heartbeat: () => Promise<void>): Promise<void>;
  /** the consumer crashed; `restarting` false means it stays down */
  onError?(err: KafkaError, restarting: boolean): void;
}

export interface KafkaSource {
  /** Connect, subscribe and join the group; resolves after the first assignment. */
  start(handlers: KafkaSourceHandlers): Promise<void>;
  /** Commit next offsets (the first offset not yet durable) for partitions this member still owns. */
  commit(offsets: Map<number, number>): Promise<void>;
  /** Partitions currently assigned to this member, ascending. */
  assigned(): number[];
  /** group joins (1 + rebalances seen), batches and records delivered: for metrics and tests */
  stats(): { joins: number; batches: number; records: number };
  /** Stop delivering, let the last onBatch finish, call onRevoked(all) while still a member, then leave. */
  stop(): Promise<void>;
}

const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const lossy = new TextDecoder("utf-8", { ignoreBOM: true });

/** A record as onBatch receives it, from raw bytes (any client): invalid UTF-8 is flagged, never thrown. */
export function toKafkaRecord(offset: number, key: Uint8Array | null | undefined, value: Uint8Array | null | undefined): KafkaRecord {
  const k = key === null || key === undefined ? null : lossy.decode(key);
  if (value === null || value === undefined) return { offset, value: null, key: k, utf8: true };
  try {
    return { offset, value: strict.decode(value), key: k, utf8: true };
  } catch {
    return { offset, value: lossy.decode(value), key: k, utf8: false };
  }
}

/** Create a consumer-group source over `topic`; nothing connects before start(). */
export function createKafkaSource(cfg: KafkaSourceConfig): KafkaSource {
  const kafka = createClient(cfg);
  const topic = cfg.topic;
  let consumer: Consumer | null = null;
  let handlers: KafkaSourceHandlers | null = null;
  let stopping = false;
  let current = new Set<number>(); // the assignment of the last group join
  const position = new Map<number, number>(); // next offset to deliver, per owned partition
  const pending = new Set<number>(); // assigned, paused until onAssigned answers
  let inFlight: Promise<void> = Promise.resolve();
  const counters = { joins: 0, batches: 0, records: 0 };
  let firstJoin: PromiseWithResolvers<void> | null = null;

  let admin: Admin | null = null;

  /**
   * Keep start offsets inside [log start, log end]: kafkajs answers OFFSET_OUT_OF_RANGE by committing the
   * reset offset to the group on its own, which is exactly the commit this adapter promises never to make.
   */
  async function clamp(starts: Map<number, number | null>, parts: number[]): Promise<void> {
    if (!parts.some((p) => typeof starts.get(p) === "number")) return;
    if (!admin) {
      admin = kafka.admin();
      await admin.connect();
    }
    for (const o of await admin.fetchTopicOffsets(topic)) {
      const at = starts.get(o.partition);
      if (typeof at !== "number") continue;
      const lo = Number(o.low);
      const hi = Number(o.high);
      if (at < lo || at > hi) {
        const to = at < lo ? lo : hi;
        log.warn("start offset outside the partition's log, clamped", { topic, partition: o.partition, requested: at, low: lo, high: hi, start: to });
        starts.set(o.partition, to);
      }
    }
  }

  function report(err: unknown, restarting: boolean): void {
    handlers?.onError?.(toKafkaError(err, "kafka source"), restarting);
  }

  function revoke(parts: number[]): void {
    if (parts.length === 0) return;
    for (const p of parts) {
      position.delete(p);
      pending.delete(p);
    }
    handlers!.onRevoked(parts).catch((err) => report(err, true));
  }

  /** Ask the caller where new partitions start; they stay paused until it answers (retried on failure). */
  async function assign(c: Consumer, parts: number[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const still = parts.filter((p) => pending.has(p) && current.has(p));
      if (still.length === 0 || consumer !== c) return;
      try {
        const starts = new Map(await handlers!.onAssigned(still));
        await clamp(starts, still);
        if (consumer !== c) return;
        const ready: number[] = [];
        for (const p of still) {
          if (!pending.has(p) || !current.has(p)) continue; // revoked while the caller answered
          const at = starts.get(p);
          if (at !== undefined && at !== null) {
            c.seek({ topic, partition: p, offset: String(at) });
            position.set(p, at);
          }
          pending.delete(p);
          ready.push(p);
        }
        if (ready.length > 0) c.resume([{ topic, partitions: ready }]);
        return;
      } catch (err) {
        report(err, true);
        await Bun.sleep(Math.min(5000, 100 * 2 ** attempt)); // back off before asking again
      }
    }
  }

  function onJoin(c: Consumer, now: number[]): void {
    counters.joins++;
    firstJoin?.resolve();
    const next = new Set(now);
    const gone = [...current].filter((p) => !next.has(p));
    const added = now.filter((p) => !current.has(p));
    current = next;
    revoke(gone);
    // kafkajs rebuilds its fetch positions from the committed offsets on every join: put the
    // retained partitions back where delivery stopped, so a rebalance never re-delivers
    for (const p of now) {
      const at = position.get(p);
      if (!added.includes(p) && !pending.has(p) && at !== undefined) c.seek({ topic, partition: p, offset: String(at) });
    }
    if (added.length > 0) {
      for (const p of added) pending.add(p);
      // synchronous with the join, so no fetch of the new generation sees them unpaused
      c.pause([{ topic, partitions: added }]);
      void assign(c, added);
    }
  }

  async function eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const p = batch.partition;
    if (stopping || pending.has(p) || !current.has(p) || payload.isStale()) return; // not resolved: refetched later
    const from = position.get(p);
    const records: KafkaRecord[] = [];
    for (const m of batch.messages) {
      const offset = Number(m.offset);
      if (from !== undefined && offset < from) continue;
      records.push(toKafkaRecord(offset, m.key, m.value));
    }
    // heartbeat errors (a rebalance started) are held until the batch is done: the caller's batch stays whole
    let deferred: unknown = null;
    const heartbeat = async () => {
      if (deferred !== null) return;
      try {
        await payload.heartbeat();
      } catch (err) {
        deferred = err;
      }
    };
    const { promise, resolve } = Promise.withResolvers<void>();
    inFlight = promise;
    try {
      if (records.length > 0) {
        counters.batches++;
        counters.records += records.length;
        await handlers!.onBatch(p, records, heartbeat);
      }
      const last = batch.messages[batch.messages.length - 1];
      if (last) payload.resolveOffset(last.offset);
      position.set(p, Math.max(from ?? 0, Number(batch.lastOffset()) + 1));
    } finally {
      resolve();
    }
    if (deferred !== null) throw deferred;
  }

  return {
    async start(h) {
      if (consumer) throw new KafkaError("not_running", "source already started", false);
      handlers = h;
      stopping = false;
      const c = kafka.consumer({
        groupId: cfg.groupId,
        sessionTimeout: cfg.sessionTimeoutMs ?? 30_000,
        heartbeatInterval: cfg.heartbeatIntervalMs ?? 3000,
        maxWaitTimeInMs: cfg.maxWaitMs ?? 500,
        allowAutoTopicCreation: false,
      });
      consumer = c;
      firstJoin = Promise.withResolvers<void>();
      firstJoin.promise.catch(() => {}); // may reject before start() awaits it; the await still throws
      c.on(c.events.GROUP_JOIN, (e) => {
        if (consumer === c) onJoin(c, e.payload.memberAssignment[topic] ?? []);
      });
      c.on(c.events.CRASH, (e) => {
        if (consumer !== c) return;
        // kafkajs leaves the group before restarting: everything owned is gone
        const all = [...current];
        current = new Set();
        revoke(all);
        report(e.payload.error, e.payload.restart);
        if (!e.payload.restart) firstJoin?.reject(toKafkaError(e.payload.error, `cannot join group ${cfg.groupId}`));
      });
      try {
        await c.connect();
        await c.subscribe({ topic, fromBeginning: cfg.fromBeginning ?? true });
        await c.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch });
        // run() also resolves when the first join crashed and a restart is scheduled: wait for a real join
        await firstJoin.promise;
      } catch (err) {
        consumer = null;
        await c.disconnect().catch(() => {});
        throw toKafkaError(err, `cannot consume ${topic} as ${cfg.groupId}`);
      }
    },
    async commit(offsets) {
      const c = consumer;
      if (!c) throw new KafkaError("not_running", "commit on a source that is not running", false);
      // a revoked partition's offsets belong to its new owner now: committing them could move it backwards
      const entries = [...offsets].filter(([p]) => current.has(p));
      if (entries.length === 0) return;
      try {
        await c.commitOffsets(entries.map(([partition, next]) => ({ topic, partition, offset: String(next) })));
      } catch (err) {
        throw toKafkaError(err, `cannot commit offsets of ${topic} for ${cfg.groupId}`);
      }
    },
    assigned() {
      return [...current].sort((a, b) => a - b);
    },
    stats() {
      return { ...counters };
    },
    async stop() {
      const c = consumer;
      if (!c) return;
      stopping = true;
      const all = [...current];
      if (all.length > 0) c.pause([{ topic, partitions: all }]);
      await inFlight;
      // still a group member here, so the caller may commit its final offsets from onRevoked
      if (all.length > 0) await handlers!.onRevoked(all).catch((err) => report(err, false));
      current = new Set();
      position.clear();
      pending.clear();
      consumer = null;
      try {
        await c.stop();
      } finally {
        await c.disconnect().catch(() => {});
        await admin?.disconnect().catch(() => {});
        admin = null;
        stopping = false;
      }
    },
  };
}
