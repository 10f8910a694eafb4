// KafkaSource on @platformatic/kafka (evaluated against the kafkajs one in kafka-source.ts; see
// bench/kafka-clients.ts). Same interface; one MessagesStream per group generation, in MANUAL mode with
// every start offset resolved here, so the library never picks a position on its own and never commits.
//
// Where the semantics differ from kafka-source.ts, because of how the library works:
// - Heartbeats run on the library's own timer, independent of onBatch; the heartbeat() handed to onBatch
//   is a no-op. A handler that blocks the event loop still loses the group, as with kafkajs.
// - A rebalance is acted on as soon as the library rejoins, which can be while onBatch runs. onRevoked
//   for the lost partitions is deferred until that batch has finished, and commit() already ignores them
//   from the join on. With kafkajs the member still owns them, so the commit is sent and refused.
// - A commit refused for a rejoin reason (ILLEGAL_GENERATION, ...) is retried by the library after it
//   rejoins, even for partitions this member no longer owns. Such a late commit can move the new owner's
//   committed offset back to ours. That means duplicates on a later restart, never loss.
// - Every join replaces the stream: records fetched but not yet delivered are dropped and fetched again
//   from the positions. There is no per-partition pause, so delivery of all partitions waits for
//   onAssigned of the new ones.
// - A batch is what the stream had buffered for one partition when it was read: one or more fetch
//   responses' worth (fetches capped at kafkajs' sizes, 1 MiB per partition, 10 MiB per fetch), not one
//   Kafka fetch batch.
// - onError: a failed stream is reported and rebuilt from the positions (restarting true); a failed
//   rejoin is reported with restarting false, and the source stays down. An onBatch that throws gets the
//   batch redelivered up to 5 times, then the source goes down the same way.
// - cfg.logLevel is ignored: the library logs through `debug`.

import { Consumer, ListOffsetTimestamps, type Message, type MessagesStream } from "@platformatic/kafka";
import { logger } from "../log.ts";
import { KafkaError, toKafkaError } from "./kafka.ts";
import { toKafkaRecord, type KafkaRecord, type KafkaSource, type KafkaSourceConfig, type KafkaSourceHandlers } from "./kafka-source.ts";

const log = logger("kafka.source.platformatic");

type Msg = Message<Buffer, Buffer, Buffer, Buffer>;
type Stream = MessagesStream<Buffer, Buffer, Buffer, Buffer>;

const MAX_REDELIVERIES = 5;

const toRecord = (m: Msg): KafkaRecord => toKafkaRecord(Number(m.offset), m.key, m.value);

/** Create a consumer-group source over `topic` on @platformatic/kafka; nothing connects before start(). */
export function createPlatformaticKafkaSource(cfg: KafkaSourceConfig): KafkaSource {
  const topic = cfg.topic;
  let consumer: Consumer<Buffer, Buffer, Buffer, Buffer> | null = null;
  let handlers: KafkaSourceHandlers | null = null;
  let stream: Stream | null = null;
  let generation = 0; // bumped by every join and by stop(): a stream or an answer of an older one is stale
  let stopping = false;
  let current = new Set<number>();
  const position = new Map<number, number>(); // next offset to deliver, per owned partition
  let inFlight: Promise<void> = Promise.resolve();
  const counters = { joins: 0, batches: 0, records: 0 };
  let failures = 0; // consecutive onBatch failures

  function report(err: unknown, restarting: boolean): void {
    handlers?.onError?.(toKafkaError(err, "kafka source (platformatic)"), restarting);
  }

  /** Where each partition starts: the caller's answer or our position, else committed, else earliest/latest; clamped to the log. */
  async function resolveStarts(c: Consumer<Buffer, Buffer, Buffer, Buffer>, wanted: Map<number, number | null>): Promise<Map<number, bigint>> {
    const parts = [...wanted.keys()];
    const [low, high, committed] = await Promise.all([
      c.listOffsets({ topics: [topic], timestamp: ListOffsetTimestamps.EARLIEST }),
      c.listOffsets({ topics: [topic], timestamp: ListOffsetTimestamps.LATEST }),
      c.listCommittedOffsets({ topics: [{ topic, partitions: parts }] }),
    ]);
    const out = new Map<number, bigint>();
    for (const p of parts) {
      const lo = low.get(topic)?.[p] ?? 0n;
      const hi = high.get(topic)?.[p] ?? 0n;
      const asked = wanted.get(p);
      const group = committed.get(topic)?.[p] ?? -1n;
      let at: bigint = typeof asked === "number" ? BigInt(asked) : group >= 0n ? group : (cfg.fromBeginning ?? true) ? lo : hi;
      // the library would reset an out-of-range offset to its fallback (earliest: re-read the whole log)
      if (at < lo || at > hi) {
        const to = at < lo ? lo : hi;
        if (typeof asked === "number") log.warn("start offset outside the partition's log, clamped", { topic, partition: p, requested: asked, low: Number(lo), high: Number(hi), start: Number(to) });
        at = to;
      }
      out.set(p, at);
    }
    return out;
  }

  /** Ask the caller about the new partitions (retried on failure), then consume generation `gen` from a fresh stream. */
  async function rebuild(c: Consumer<Buffer, Buffer, Buffer, Buffer>, gen: number, added: number[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (gen !== generation || consumer !== c) return;
      try {
        const answers = added.length > 0 ? new Map(await handlers!.onAssigned(added)) : new Map<number, number | null>();
        if (gen !== generation) return;
        const wanted = new Map<number, number | null>();
        for (const p of current) wanted.set(p, added.includes(p) ? (answers.get(p) ?? null) : (position.get(p) ?? null));
        const starts = wanted.size > 0 ? await resolveStarts(c, wanted) : new Map<number, bigint>();
        if (gen !== generation) return;
        for (const [p, at] of starts) position.set(p, Number(at));
        if (starts.size === 0) return; // nothing assigned: wait for the next join
        const s = await c.consume({
          topics: [topic],
          mode: "manual",
          offsets: [...starts].map(([partition, offset]) => ({ topic, partition, offset })),
          autocommit: false,
          maxWaitTime: cfg.maxWaitMs ?? 500,
          // kafkajs' fetch sizes: the library's own 50 MB per partition would hand onBatch ~100 k records at once
          maxBytes: 10 * 1024 * 1024,
          maxBytesPerPartition: 1024 * 1024,
        });
        if (gen !== generation) {
          await s.close().catch(() => {});
          return;
        }
        stream = s;
        void pump(s, gen);
        return;
      } catch (err) {
        report(err, true);
        await Bun.sleep(Math.min(5000, 100 * 2 ** attempt));
      }
    }
  }

  function retire(): void {
    const s = stream;
    stream = null;
    if (s) s.close().catch(() => {});
  }

  /** Read whatever the stream buffered, group it per partition and deliver, one batch at a time. */
  async function pump(s: Stream, gen: number): Promise<void> {
    const live = () => gen === generation && !stopping;
    let wake: (() => void) | null = null;
    const poke = () => wake?.();
    let failure: unknown = null;
    s.on("readable", poke);
    s.on("close", poke);
    s.on("error", (err) => {
      failure = err;
      poke();
    });
    while (live()) {
      const byPartition = new Map<number, Msg[]>();
      for (let m = s.read() as Msg | null; m !== null; m = s.read() as Msg | null) {
        let list = byPartition.get(m.partition);
        if (!list) byPartition.set(m.partition, (list = []));
        list.push(m);
      }
      if (byPartition.size === 0) {
        if (failure !== null || s.destroyed || s.closed) break;
        await new Promise<void>((r) => (wake = r));
        wake = null;
        continue;
      }
      for (const [p, msgs] of byPartition) {
        if (!live()) break;
        if (!current.has(p)) continue;
        const from = position.get(p) ?? 0;
        const records: KafkaRecord[] = [];
        for (const m of msgs) if (Number(m.offset) >= from) records.push(toRecord(m));
        if (records.length === 0) continue;
        const { promise, resolve } = Promise.withResolvers<void>();
        inFlight = promise;
        try {
          counters.batches++;
          counters.records += records.length;
          await handlers!.onBatch(p, records, async () => {});
          position.set(p, records[records.length - 1].offset + 1);
          failures = 0;
        } catch (err) {
          // as with kafkajs' retries: redeliver from the position on a new stream a few times, then go down
          if (!live()) return;
          if (++failures > MAX_REDELIVERIES) {
            void down(err);
            return;
          }
          report(err, true);
          retire();
          await Bun.sleep(100 * 2 ** failures);
          void rebuild(consumer!, gen, []);
          return;
        } finally {
          resolve();
        }
      }
    }
    if (failure !== null && live()) {
      report(failure, true);
      retire();
      void rebuild(consumer!, gen, []);
    }
  }

  /** Give up for good: stop delivering, revoke everything, leave the group, report `restarting` false. */
  async function down(err: unknown): Promise<void> {
    const c = consumer;
    if (!c) return;
    generation++;
    retire();
    const all = [...current];
    current = new Set();
    position.clear();
    consumer = null;
    report(err, false);
    await inFlight;
    if (all.length > 0) await handlers!.onRevoked(all).catch((e) => report(e, false));
    await c.close(true).catch(() => {});
  }

  function onJoin(c: Consumer<Buffer, Buffer, Buffer, Buffer>, now: number[]): void {
    counters.joins++;
    const gen = ++generation;
    retire();
    const next = new Set(now);
    const gone = [...current].filter((p) => !next.has(p));
    const added = now.filter((p) => !current.has(p));
    current = next;
    for (const p of gone) position.delete(p);
    if (gone.length > 0) {
      // after the batch that may still be running on one of them, as kafkajs orders it
      void inFlight.then(() => handlers!.onRevoked(gone)).catch((err) => report(err, true));
    }
    void rebuild(c, gen, added);
  }

  return {
    async start(h) {
      if (consumer) throw new KafkaError("not_running", "source already started", false);
      handlers = h;
      stopping = false;
      const c = new Consumer<Buffer, Buffer, Buffer, Buffer>({
        clientId: cfg.clientId ?? "rtae",
        bootstrapBrokers: cfg.brokers,
        groupId: cfg.groupId,
        sessionTimeout: cfg.sessionTimeoutMs ?? 30_000,
        heartbeatInterval: cfg.heartbeatIntervalMs ?? 3000,
        maxWaitTime: cfg.maxWaitMs ?? 500,
        autocommit: false,
        autocreateTopics: false,
        connectTimeout: 3000,
        requestTimeout: cfg.requestTimeoutMs ?? 10_000,
        retries: 5,
        retryDelay: 200,
      });
      consumer = c;
      c.on("consumer:group:join", (e) => {
        if (consumer === c && !stopping) onJoin(c, e.assignments?.find((a) => a.topic === topic)?.partitions ?? []);
      });
      // the library emits 'error' when a rejoin failed for good; an unhandled 'error' event would throw
      c.on("error", (err: Error) => {
        if (consumer === c) void down(err);
      });
      try {
        // our own subscription count on the topic: streams come and go per generation without a rejoin
        c.topics.track(topic);
        await c.joinGroup({});
      } catch (err) {
        consumer = null;
        await c.close(true).catch(() => {});
        throw toKafkaError(err, `cannot consume ${topic} as ${cfg.groupId}`);
      }
    },
    async commit(offsets) {
      const c = consumer;
      if (!c) throw new KafkaError("not_running", "commit on a source that is not running", false);
      const entries = [...offsets].filter(([p]) => current.has(p));
      if (entries.length === 0) return;
      try {
        await c.commit({ offsets: entries.map(([partition, next]) => ({ topic, partition, offset: BigInt(next), leaderEpoch: -1 })) });
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
      generation++;
      await inFlight;
      const all = [...current];
      // still a group member here, so the caller may commit its final offsets from onRevoked
      if (all.length > 0) await handlers!.onRevoked(all).catch((err) => report(err, false));
      current = new Set();
      position.clear();
      consumer = null;
      retire();
      try {
        await c.close(true);
      } finally {
        stopping = false;
      }
    },
  };
}
