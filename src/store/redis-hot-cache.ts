// Redis HotCache (distributed mode): values in Redis plus a local copy read synchronously, deltas over pub/sub.
// Every Redis call goes through a circuit breaker; while it is open the cache works in memory and catches up on close.

import Redis, { type RedisOptions } from "ioredis";
import { createCircuitBreaker, type BreakerState, type CircuitBreaker } from "./circuit-breaker.ts";
import type { HotCache } from "./types.ts";

export interface RedisHotCacheOptions {
  /** redis:// or rediss:// URL */
  url: string;
  /** prefix of every key and channel, e.g. "rtae:" */
  prefix: string;
  /** identifies this instance in messages so its own echoes are skipped; default a random UUID */
  instanceId?: string;
  /** default: 3 consecutive failures open it for 1 s */
  breaker?: CircuitBreaker;
  /** TTL of value keys (default 1 h); a value's owner re-writes it when it is found missing */
  ttlMs?: number;
  /** period of the full refresh, which is also the breaker's probe while no traffic flows (default 5 s) */
  refreshIntervalMs?: number;
  /** cap of the reconnect backoff (default 2 s) */
  maxBackoffMs?: number;
  /** a command without an answer after this long fails (default 2 s) */
  commandTimeoutMs?: number;
  /** ready() rejects after this long (default 10 s); the cache keeps connecting in the background */
  readyTimeoutMs?: number;
}

export interface RedisHotCacheStats {
  instanceId: string;
  breaker: BreakerState;
  /** ioredis status of the command and subscriber connections ("ready" when usable) */
  command: string;
  subscriber: string;
  topics: number;
  /** topics whose latest value was set here (re-written after an outage) */
  ownTopics: number;
  /** topics set locally and not yet written to Redis */
  pendingWrites: number;
  writes: number;
  writeFailures: number;
  published: number;
  /** local publishes not sent to Redis (breaker open, not connected yet, or failed) */
  publishDropped: number;
  /** messages from other instances delivered to local subscribers */
  received: number;
  echoesSkipped: number;
  /** values taken from Redis because another instance wrote them */
  remoteUpdates: number;
  refreshes: number;
  /** breaker closings after which the local values were re-written */
  catchUps: number;
  /** command connection reconnects after the first connection */
  reconnects: number;
  errors: number;
  lastError: string | null;
}

export interface RedisHotCache extends HotCache {
  /** Resolves once both connections are up, subscribed, and the current values are loaded. */
  ready(): Promise<void>;
  stats(): RedisHotCacheStats;
}

interface Entry {
  value: unknown;
  /** JSON as written to / read from Redis; undefined when the value cannot be encoded */
  raw: string | undefined;
  /** bumped on every local set: a read issued before it must not overwrite the newer local value */
  gen: number;
  own: boolean;
}

const VALUES_CHANNEL = "values";

/** Create a Redis-backed HotCache; call ready() before relying on other instances' values. */
export function createRedisHotCache(options: RedisHotCacheOptions): RedisHotCache {
  const { url, prefix } = options;
  const id = options.instanceId ?? crypto.randomUUID();
  if (id.length === 0 || id.includes("\n")) throw new RangeError("instanceId must be non-empty and without newlines");
  const ttlMs = options.ttlMs ?? 3_600_000;
  const refreshIntervalMs = options.refreshIntervalMs ?? 5000;
  const maxBackoffMs = options.maxBackoffMs ?? 2000;
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  const breaker = options.breaker ?? createCircuitBreaker({ failureThreshold: 3, resetTimeoutMs: 1000 });
  const valuesChannel = prefix + VALUES_CHANNEL;
  const keyPrefix = `${prefix}topic:`;
  // the prefix is validated by config to hold no glob characters; escape anyway for direct callers
  const scanPattern = `${keyPrefix.replace(/[*?[\]\\]/g, "\\$&")}*`;

  const entries = new Map<string, Entry>();
  const subs = new Map<string, Set<(m: string) => void>>();
  const dirty = new Set<string>();
  const inflight = new Set<string>();
  const pendingFetch = new Set<string>();
  let gen = 0;
  let connectedOnce = false;
  let closing = false;
  let closed = false;
  let flushing: Promise<void> | null = null;
  let flushScheduled = false;
  let fetchScheduled = false;
  let refreshing = false;
  const s = {
    writes: 0, writeFailures: 0, published: 0, publishDropped: 0, received: 0, echoesSkipped: 0,
    remoteUpdates: 0, refreshes: 0, catchUps: 0, reconnects: 0, errors: 0, lastError: null as string | null,
  };

  const connOptions: RedisOptions = {
    // never give up, but back off to at most maxBackoffMs; jitter keeps instances from reconnecting in lockstep
    retryStrategy: (times) => Math.min(maxBackoffMs, 50 * 2 ** Math.min(times, 10)) * (0.8 + Math.random() * 0.4),
    // fail fast while disconnected so the breaker sees the outage instead of a growing offline queue
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs ?? 2000,
    connectTimeout: 5000,
    // the subscriber resubscribes itself on every "ready" from the local subscription table
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
  };
  // named so operators (and the tests) can find them in CLIENT LIST
  const cmd = new Redis(url, { ...connOptions, connectionName: `${prefix}${id}:cmd` });
  const sub = new Redis(url, { ...connOptions, connectionName: `${prefix}${id}:sub` });

  function noteError(e: unknown): void {
    s.errors++;
    s.lastError = e instanceof Error ? e.message : String(e);
  }
  // without listeners ioredis prints "Unhandled error event"; connection errors are expected during outages
  cmd.on("error", noteError);
  sub.on("error", noteError);

  /** A failed SUBSCRIBE leaves channels silent: reconnect, and the "ready" handler subscribes everything again. */
  function resubscribeLater(e: unknown): void {
    noteError(e);
    if (!closing) sub.disconnect(true);
  }

  function deliver(channel: string, message: string): void {
    const set = subs.get(channel);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(message);
      } catch {
        // one failing subscriber must not starve the others
      }
    }
  }

  function checkChannel(channel: string): void {
    if (channel === VALUES_CHANNEL) throw new RangeError(`channel "${VALUES_CHANNEL}" is reserved for value notifications`);
  }

  // ------------------------------------------------------------ writes: coalesced, single-flight

  function scheduleFlush(): void {
    if (flushScheduled || !connectedOnce) return;
    flushScheduled = true;
    queueMicrotask(() => {
      flushScheduled = false;
      void flush();
    });
  }

  function flush(): Promise<void> {
    if (flushing) return flushing;
    if (dirty.size === 0 || !connectedOnce) return Promise.resolve();
    flushing = doFlush().finally(() => {
      flushing = null;
      if (dirty.size > 0 && breaker.state === "closed" && !closing) scheduleFlush();
    });
    return flushing;
  }

  async function doFlush(): Promise<void> {
    const batch: Array<[string, string]> = [];
    for (const topic of dirty) {
      const e = entries.get(topic);
      if (e?.own && e.raw !== undefined) batch.push([topic, e.raw]);
    }
    dirty.clear();
    if (batch.length === 0) return;
    for (const [topic] of batch) inflight.add(topic);
    const ok = await breaker.run(
      async () => {
        const p = cmd.pipeline();
        for (const [topic, raw] of batch) p.set(keyPrefix + topic, raw, "PX", ttlMs);
        for (const [topic] of batch) p.publish(valuesChannel, `${id}\n${topic}`);
        const results = await p.exec();
        for (const [err] of results ?? []) if (err) throw err;
        return true;
      },
      () => false,
    );
    inflight.clear();
    if (ok) {
      s.writes += batch.length;
      return;
    }
    s.writeFailures += batch.length;
    // keep them for the next attempt (or the catch-up), unless another instance's value replaced ours meanwhile
    for (const [topic] of batch) if (entries.get(topic)?.own) dirty.add(topic);
  }

  // ------------------------------------------------------------ reads: notifications and the full refresh

  /** Take a value read from Redis unless a local set happened after the read was issued. */
  function apply(topic: string, raw: string | null, genAtIssue: number | undefined): void {
    if (raw === null) return;
    const e = entries.get(topic);
    if (e?.gen !== genAtIssue || dirty.has(topic) || inflight.has(topic)) return;
    if (e?.raw === raw) return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      return; // not ours; leave the local copy alone
    }
    entries.set(topic, { value, raw, gen: e?.gen ?? 0, own: false });
    s.remoteUpdates++;
  }

  function scheduleFetch(topic: string): void {
    pendingFetch.add(topic);
    if (fetchScheduled) return;
    fetchScheduled = true;
    queueMicrotask(() => {
      fetchScheduled = false;
      const topics = [...pendingFetch];
      pendingFetch.clear();
      void breaker.run(
        async () => {
          const gens = topics.map((t) => entries.get(t)?.gen);
          const raws = await cmd.mget(topics.map((t) => keyPrefix + t));
          topics.forEach((t, i) => apply(t, raws[i] ?? null, gens[i]));
        },
        () => undefined, // the next full refresh picks it up
      );
    });
  }

  async function refreshAll(): Promise<void> {
    if (refreshing || closing) return;
    refreshing = true;
    try {
      await breaker.run(
        async () => {
          const found = new Set<string>();
          let cursor = "0";
          do {
            const [next, keys] = await cmd.scan(cursor, "MATCH", scanPattern, "COUNT", 500);
            cursor = next;
            for (const k of keys) found.add(k.slice(keyPrefix.length));
          } while (cursor !== "0");
          const topics = [...found];
          if (topics.length > 0) {
            const gens = topics.map((t) => entries.get(t)?.gen);
            const raws = await cmd.mget(topics.map((t) => keyPrefix + t));
            topics.forEach((t, i) => apply(t, raws[i] ?? null, gens[i]));
          }
          // our values lost by a Redis restart or expired by the TTL: write them again
          for (const [topic, e] of entries) {
            if (e.own && !found.has(topic) && !inflight.has(topic)) dirty.add(topic);
          }
          s.refreshes++;
        },
        () => undefined,
      );
    } finally {
      refreshing = false;
    }
    if (dirty.size > 0) scheduleFlush();
  }

  // ------------------------------------------------------------ connections

  sub.on("message", (channel: string, message: string) => {
    const nl = message.indexOf("\n");
    if (nl < 0 || !channel.startsWith(prefix)) return; // not from an rtae instance
    if (message.slice(0, nl) === id) {
      s.echoesSkipped++;
      return;
    }
    const body = message.slice(nl + 1);
    if (channel === valuesChannel) {
      scheduleFetch(body);
      return;
    }
    s.received++;
    deliver(channel.slice(prefix.length), body);
  });

  const subscribed = Promise.withResolvers<void>();
  sub.on("ready", () => {
    const channels = [valuesChannel, ...[...subs.keys()].map((c) => prefix + c)];
    sub.subscribe(...channels).then(
      () => {
        subscribed.resolve();
        // notifications were missed while the subscriber was away
        if (connectedOnce) void refreshAll();
      },
      resubscribeLater,
    );
  });

  cmd.on("ready", () => {
    if (!connectedOnce) return;
    s.reconnects++;
    tick();
  });

  // while the circuit is not closed, look often whether a probe may go: a refused call costs nothing,
  // and recovery then follows the breaker's reset timeout instead of the (slower) refresh period
  let recovery: ReturnType<typeof setInterval> | null = null;
  function stopRecovery(): void {
    if (recovery) clearInterval(recovery);
    recovery = null;
  }
  breaker.onStateChange((to) => {
    if (to === "open" && !recovery && !closing) {
      recovery = setInterval(() => {
        if (cmd.status === "ready") tick();
      }, 100);
      recovery.unref?.();
    }
    if (to !== "closed" || closing) return;
    stopRecovery();
    // catch up: other instances may have lost our values, and we missed theirs
    s.catchUps++;
    for (const [topic, e] of entries) if (e.own) dirty.add(topic);
    scheduleFlush();
    void refreshAll();
  });

  function tick(): void {
    if (closing || !connectedOnce) return;
    // while the circuit is open the refresh is the probe; its success closes the circuit and the catch-up writes
    if (dirty.size > 0 && breaker.state === "closed") void flush();
    void refreshAll();
  }
  const timer = setInterval(tick, refreshIntervalMs);
  timer.unref?.();

  function connected(conn: Redis): Promise<void> {
    if (conn.status === "ready") return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onReady = () => {
        conn.off("end", onEnd);
        resolve();
      };
      const onEnd = () => {
        conn.off("ready", onReady);
        reject(new Error("connection closed before it was ready"));
      };
      conn.once("ready", onReady);
      conn.once("end", onEnd);
    });
  }

  const readyPromise = (async () => {
    await Promise.all([connected(cmd), connected(sub), subscribed.promise]);
    connectedOnce = true;
    await refreshAll();
    if (dirty.size > 0) await flush();
  })();
  readyPromise.catch(() => {}); // observed through ready()

  /** QUIT (or a hard disconnect when not ready) and wait, bounded, until the socket is gone. */
  async function quit(conn: Redis): Promise<void> {
    if (conn.status === "end") return;
    const { promise: ended, resolve } = Promise.withResolvers<void>();
    conn.once("end", () => resolve());
    const bound = setTimeout(() => {
      conn.disconnect();
      resolve();
    }, 2000);
    if (conn.status === "ready") {
      await conn.quit().catch(() => conn.disconnect());
    } else {
      conn.disconnect();
      // ioredis quirk: disconnect() while waiting to reconnect cancels the retry but never emits "end"
      if (conn.status === "reconnecting" || conn.status === "close") resolve();
    }
    await ended;
    clearTimeout(bound);
  }

  return {
    set(topic, value) {
      if (closing) return;
      let raw: string | undefined;
      try {
        raw = JSON.stringify(value);
      } catch (e) {
        noteError(e); // e.g. a bigint: kept locally, not shared
      }
      entries.set(topic, { value, raw, gen: ++gen, own: true });
      if (raw === undefined) return;
      dirty.add(topic);
      if (breaker.state === "closed") scheduleFlush();
    },
    get(topic) {
      return entries.get(topic)?.value;
    },
    publish(channel, message) {
      checkChannel(channel);
      if (closing) return;
      s.published++;
      deliver(channel, message);
      if (!connectedOnce) {
        s.publishDropped++;
        return;
      }
      void breaker.run(
        async () => {
          await cmd.publish(prefix + channel, `${id}\n${message}`);
        },
        () => {
          s.publishDropped++;
        },
      );
    },
    subscribe(channel, fn) {
      checkChannel(channel);
      let set = subs.get(channel);
      if (!set) {
        subs.set(channel, (set = new Set()));
        // when not ready, the "ready" handler subscribes everything in `subs`
        if (sub.status === "ready") sub.subscribe(prefix + channel).catch(resubscribeLater);
      }
      set.add(fn);
      const mine = set;
      let active = true;
      return () => {
        if (!active) return;
        active = false;
        mine.delete(fn);
        if (mine.size === 0 && subs.get(channel) === mine) {
          subs.delete(channel);
          if (sub.status === "ready") sub.unsubscribe(prefix + channel).catch(noteError);
        }
      };
    },
    ready() {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`redis hot cache not ready after ${readyTimeoutMs} ms (${s.lastError ?? "no error"})`)), readyTimeoutMs);
      });
      return Promise.race([readyPromise, timeout]).finally(() => clearTimeout(timer));
    },
    stats() {
      let own = 0;
      for (const e of entries.values()) if (e.own) own++;
      return {
        instanceId: id,
        breaker: breaker.state,
        // after close() a connection cancelled while waiting to reconnect keeps ioredis status "reconnecting"
        command: closed ? "end" : cmd.status,
        subscriber: closed ? "end" : sub.status,
        topics: entries.size,
        ownTopics: own,
        pendingWrites: dirty.size,
        ...s,
      };
    },
    async close() {
      if (closing) return;
      closing = true;
      clearInterval(timer);
      stopRecovery();
      // last values out if Redis is reachable; bounded by the command timeout
      if (flushing) await flushing;
      if (dirty.size > 0 && breaker.state === "closed" && cmd.status === "ready") await flush();
      subs.clear();
      await Promise.all([quit(cmd), quit(sub)]);
      closed = true;
      entries.clear();
    },
  };
}
