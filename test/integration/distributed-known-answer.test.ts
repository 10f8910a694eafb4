// The known-answer data set (100 k events with duplicates, disorder, late-merged and late-dropped events)
// through two distributed instances (Kafka, Cassandra, Redis) and through an embedded engine: both must
// give the independent answer, and the same answers as each other, from either instance.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { rmSync } from "node:fs";
import { deleteTopics } from "../../src/ingest/kafka-admin.ts";
import { answerMismatches, buildDataset, decidedOf, expectedOf, secondRange, type Dataset } from "../ground-truth.ts";
import { getJson as getApp, post, startTestEngine, tcpReachable } from "../helpers.ts";
import { getJson, runRtae, spawnRtae, uniqueName, waitFor, type RtaeProcess } from "../rtae-process.ts";

const up = (await tcpReachable(9092)) && (await tcpReachable(9042)) && (await tcpReachable(6379));
if (!up && process.env.CI) throw new Error("Kafka (9092), Cassandra (9042) and Redis (6379) must run under CI: bash scripts/services.sh up");
const d = up ? describe : describe.skip;

const N = 100_000;
const start = Math.floor((Date.now() - 3.5 * 3_600_000) / 3_600_000) * 3_600_000 + 17 * 60_000 + 13_000;
const BATCH = 5000;
const name = uniqueName("ka");
const topic = `rtae.${name}`;

let ds: Dataset;
let embedded: Awaited<ReturnType<typeof startTestEngine>>;
const nodes: RtaeProcess[] = [];

const ranges = () => [
  ["the whole stream", ds.lo, ds.hi],
  ["an hour-aligned slice", Math.ceil(ds.lo / 3_600_000) * 3_600_000, Math.ceil(ds.lo / 3_600_000) * 3_600_000 + 3_600_000],
  ["an unaligned slice", ds.lo + 1_234_567, ds.lo + 1_234_567 + 2_345_678],
] as const;

/** Everything an analyst reads, minus what legitimately depends on processing order (merged-late count, watermark). */
async function answers(get: (path: string) => Promise<any>, from: number, to: number) {
  const q = `from=${from}&to=${to}`;
  const { late, watermark, ...summary } = await get(`/api/metrics/summary?${q}`);
  const top: Record<string, unknown> = {};
  for (const by of ["views", "carts", "units", "revenue"]) top[by] = (await get(`/api/products/top?by=${by}&limit=25&${q}`)).items;
  return {
    summary: { ...summary, lateDropped: late.dropped },
    top,
    funnel: await get(`/api/funnel?${q}`),
    campaigns: await get(`/api/campaigns?${q}`),
    inventory: await get(`/api/inventory?lowStock=1000000&limit=1000&${q}`),
  };
}

beforeAll(async () => {
  if (!up) return;
  ds = buildDataset({
    n: N, seed: 4242, rate: 10, start, bursts: true, products: 2000, users: 20_000,
    perturb: { seed: 7, duplicateRate: 0.02, disorderMs: 2000, lateRate: 0.005, lateMs: 20_000 },
    dropEvery: 150,
  });

  embedded = await startTestEngine(["--partitions", "6"]);
  for (let i = 0; i < ds.arrivals.length; i += BATCH) {
    const res = await post(embedded.app, ds.arrivals.slice(i, i + BATCH).map((e) => JSON.stringify(e)).join("\n"));
    expect(res.status).toBe(202);
    expect(await embedded.engine.caughtUp(30_000)).toBe(true);
  }
  await embedded.engine.checkpoint();

  const m = await runRtae(["migrate", "--cassandra-contact-points", "127.0.0.1:9042", "--cassandra-keyspace", name, "--log-level", "error"]);
  expect(m.code).toBe(0);
  const args = [
    "--kafka-brokers", "127.0.0.1:9092", "--kafka-topic", topic, "--consumer-group", `g.${name}`,
    "--cassandra-contact-points", "127.0.0.1:9042", "--cassandra-keyspace", name,
    "--redis-url", "redis://127.0.0.1:6379", "--redis-prefix", `${name}:`,
    "--partitions", "6", "--workers", "2", "--checkpoint-interval", "500ms", "--log-level", "error",
  ];
  for (let k = 0; k < 2; k++) nodes.push(spawnRtae(args));
  for (const n of nodes) await n.ready(60_000);
  // wait for a settled group (every partition owned, no rebalance for a while) before the stream starts
  const owned = async (n: RtaeProcess) => Number((await (await fetch(`${n.url}/metrics`)).text()).match(/rtae_partitions_owned (\d+)/)?.[1] ?? 0);
  let stableSince = Date.now();
  let last = "";
  await waitFor(async () => {
    const now = (await Promise.all(nodes.map(owned))).join(",");
    if (now !== last) (last = now), (stableSince = Date.now());
    return now.split(",").reduce((a, b) => a + Number(b), 0) === 6 && !now.split(",").includes("0") && Date.now() - stableSince > 4000;
  }, 90_000, "a settled consumer group");

  // alternate the instances; before the next batch, every event so far is decided, seen from the other one
  let sent = 0;
  for (let i = 0, k = 0; i < ds.arrivals.length; i += BATCH, k++) {
    const batch = ds.arrivals.slice(i, i + BATCH);
    const res = await fetch(`${nodes[k % 2].url}/api/events`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: batch.map((e) => JSON.stringify(e)).join("\n"),
    });
    expect(res.status).toBe(202);
    sent += batch.length;
    const other = nodes[(k + 1) % 2];
    await waitFor(async () => decidedOf(await getJson(other.url, `/api/metrics/summary?from=${ds.lo}&to=${ds.hi}`)) >= sent, 60_000, `batch ${k} decided`);
  }
}, 600_000);

afterAll(async () => {
  for (const n of nodes) await n.stop().catch(() => {});
  await embedded?.stop();
  for (const n of nodes) n.removeDataDir();
  if (up) await deleteTopics({ brokers: ["127.0.0.1:9092"], topics: [topic, `${topic}.dlq`] }).catch(() => {});
  if (embedded) rmSync(embedded.dir, { recursive: true, force: true });
});

d("known-answer data set in distributed mode", () => {
  for (const [k, [label]] of [["the whole stream"], ["an hour-aligned slice"], ["an unaligned slice"]].entries()) {
    it(`gives the independent answers from both instances, identical to embedded mode, over ${label}`, async () => {
      const [, f, t] = ranges()[k];
      const { from, to } = secondRange(f, t);
      const x = expectedOf(ds.arrivals, ds.dropped, from, to);
      const want = await answers(async (p) => (await getApp(embedded.app, p)).body, from, to);
      for (const n of nodes) {
        expect(await answerMismatches((p) => getJson(n.url, p), x, from, to, ["summary", "top", "funnel", "campaigns", "performance", "inventory", "timeseries"])).toEqual([]);
        expect(await answers((p) => getJson(n.url, p), from, to)).toEqual(want);
      }
    }, 120_000);
  }

  it("drops exactly the very late events, in both modes", async () => {
    for (const get of [...nodes.map((n) => (p: string) => getJson(n.url, p)), async (p: string) => (await getApp(embedded.app, p)).body]) {
      const s = await get(`/api/metrics/summary?from=${ds.lo}&to=${ds.hi}`);
      expect(s.late.dropped).toBe(ds.dropped.size);
    }
  });
});
