#!/usr/bin/env bun
// rtae command line: `serve | produce | migrate | version`. Configuration comes from flags and
// RTAE_* variables (src/config.ts); this file only wires the commands together.

import pkg from "../package.json" with { type: "json" };
import { ConfigError, describeConfig, parseCli, usage, type Config } from "./config.ts";
import { startEngine, type Engine } from "./engine.ts";
import { runProducer, startRealtime } from "./generator/index.ts";
import { createDoor, openLogWriter } from "./ingest/index.ts";
import { ensureTopics } from "./ingest/kafka-admin.ts";
import { createKafkaSink } from "./ingest/kafka-sink.ts";
import { logger, setLogLevel } from "./log.ts";
import { lockDataDir, type DataDirLock } from "./data-dir-lock.ts";
import { createHttpApp } from "./http-app.ts";
import { warnOpen, type Listening } from "./server/index.ts";
import { startLiveTopics } from "./server/live.ts";
import { migrateCassandra, openSqliteHistory } from "./store/index.ts";
import { loadAlertRules, startAlerting, type AlertRule } from "./alerts/index.ts";

const log = logger("Main");

async function serve(config: Config): Promise<void> {
  let alertRules: AlertRule[];
  try {
    alertRules = loadAlertRules(config); // before anything starts: a broken rules file is a config error
  } catch (err) {
    process.stderr.write(`rtae: ${(err as Error).message}\n`);
    process.exit(2);
  }
  let engine: Engine;
  try {
    engine = await startEngine(config);
  } catch (err) {
    // an unreachable or unprepared service at start is the operator's to fix: say which, and exit
    process.stderr.write(`rtae: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const live = startLiveTopics(engine);
  const alerts = startAlerting(engine, alertRules);
  const app = createHttpApp(engine, live, alerts);
  let http: Listening;
  try {
    http = app.listen({ port: config.port, hostname: config.host, idleTimeout: 30 });
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why =
      code === "EADDRINUSE"
        ? `port ${config.port} on ${config.host} is in use (another rtae or another program); stop it or choose another --port`
        : `cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`;
    process.stderr.write(`rtae: cannot start: ${why}\n`);
    live.stop();
    await alerts.stop();
    await engine.stop();
    process.exit(2);
  }
  const warning = warnOpen(config);
  if (warning) log.warn(warning);
  log.info("rtae serving", { url: `http://${config.host}:${http.port}`, config: describeConfig(config) });

  let demo: { stop(): void } | null = null;
  if (config.demoRate > 0) {
    const enc = new TextEncoder();
    demo = startRealtime({
      seed: config.seed,
      rate: config.demoRate,
      products: config.traffic.products,
      users: config.traffic.users,
      bursts: config.traffic.bursts,
      diurnal: config.traffic.diurnal,
      currency: config.currency,
      sink: async (batch) => {
        if (batch.length === 0) return;
        const r = await engine.door.ingest(enc.encode(JSON.stringify(batch)), "application/json");
        if (r.status !== 202) log.warn("demo batch refused", { status: r.status, body: r.body });
      },
      onError: (err) => log.warn("demo traffic error", { message: String(err) }),
    });
    log.info("demo traffic on", { eventsPerSecond: config.demoRate });
  }

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("shutting down", { signal });
    const bound = setTimeout(() => {
      log.error("shutdown took too long; exiting");
      process.exit(1);
    }, 20_000);
    // intake first: new events get 503 (clients send them elsewhere); appends in flight finish and their
    // 202s go out; then streams and the listener close, and the engine drains its rings, checkpoints the
    // open windows and commits the offsets they cover
    demo?.stop();
    await engine.door.close();
    await Bun.sleep(100);
    live.stop();
    await http.stop(true);
    await alerts.stop();
    await engine.stop();
    clearTimeout(bound);
    log.info("stopped cleanly");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

async function produce(config: Config): Promise<void> {
  const p = config.produce;
  const ac = new AbortController();
  process.on("SIGINT", () => ac.abort());
  process.on("SIGTERM", () => ac.abort());
  // with --kafka-brokers the events go straight to the topic, validated and partitioned as the door does
  const kafka = config.kafkaBrokers ? await kafkaTarget(config) : null;
  const target = kafka
    ? kafka.target
    : p.target === "-"
      ? { write: (chunk: string) => new Promise<void>((r) => (process.stdout.write(chunk) ? r() : process.stdout.once("drain", () => r()))) }
      : {
          url: `${p.target}/api/events`,
          headers: p.ingestKey ? { authorization: `Bearer ${p.ingestKey}` } : undefined,
        };
  const totals = await runProducer({
    seed: config.seed,
    rate: p.rate,
    count: p.count ?? undefined,
    durationMs: p.durationMs ?? undefined,
    batchSize: p.batchSize,
    products: config.traffic.products,
    users: config.traffic.users,
    bursts: config.traffic.bursts,
    diurnal: config.traffic.diurnal,
    currency: config.currency,
    target,
    signal: ac.signal,
  });
  await kafka?.close();
  log.info("produce finished", { ...totals });
}

/** `rtae produce --kafka-brokers`: the door's validation and partitioning in front of the Kafka sink. */
async function kafkaTarget(config: Config) {
  const conn = { brokers: [...config.kafkaBrokers!], clientId: "rtae-produce", logLevel: "error" as const };
  await ensureTopics({ ...conn, topic: config.kafkaTopic, partitions: config.partitions });
  const sink = createKafkaSink({ ...conn, topic: config.kafkaTopic, partitions: config.partitions });
  const maxAgeMs = Math.max(config.retention["1s"], config.retention["1m"], config.retention["1h"]);
  const door = createDoor({
    sink,
    context: () => ({ now: Date.now(), maxAgeMs, currency: config.currency }),
    maxEvents: Number.MAX_SAFE_INTEGER,
  });
  const enc = new TextEncoder();
  return {
    target: {
      async write(chunk: string) {
        const r = await door.ingest(enc.encode(chunk), "application/x-ndjson");
        if (r.status !== 202) throw new Error(`kafka produce failed: ${JSON.stringify(r.body)}`);
      },
    },
    close: () => sink.close(),
  };
}

async function migrate(config: Config): Promise<void> {
  if (config.cassandraContactPoints) {
    // keyspace and tables, idempotent; TTLs follow --retention
    await migrateCassandra({
      contactPoints: [...config.cassandraContactPoints],
      keyspace: config.cassandraKeyspace,
      retention: config.retention,
      replication: config.cassandraReplication,
      localDataCenter: config.cassandraDatacenter,
    });
    log.info("migrated", { cassandra: config.cassandraContactPoints, keyspace: config.cassandraKeyspace });
    return;
  }
  // embedded stores create their schema on open; a running serve owns these files, so take its lock
  let lock: DataDirLock;
  try {
    lock = lockDataDir(config.dataDir);
  } catch (err) {
    process.stderr.write(`rtae: cannot migrate: ${(err as Error).message}\n`);
    process.exit(1);
  }
  try {
    openLogWriter(config.dataDir, config.partitions).close();
    await (await openSqliteHistory(config.dataDir)).close();
  } finally {
    lock.release();
  }
  log.info("migrated", { dataDir: config.dataDir });
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseCli(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`rtae: ${err.message}\nRun 'rtae --help' for the options.\n`);
      process.exit(2);
    }
    throw err;
  }
  const { command, config, warnings } = parsed;
  setLogLevel(config.logLevel);
  for (const w of warnings) log.warn(w);
  switch (command) {
    case "help":
      process.stdout.write(usage() + "\n");
      return;
    case "version":
      process.stdout.write(`rtae ${pkg.version} (bun ${Bun.version})\n`);
      return;
    case "migrate":
      return migrate(config);
    case "produce":
      return produce(config);
    case "serve":
      return serve(config);
  }
}

main().catch((err) => {
  log.error("fatal", { message: (err as Error).message });
  process.exit(1);
});
