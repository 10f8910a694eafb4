// GET /metrics: Prometheus text format, naming conventions, counters that match a known ingest batch
// and never decrease, histogram shape, and the read-token guard. In process through app.handle.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { createApp } from "../../src/server/app.ts";
import { metricsPlugin } from "../../src/server/metrics.ts";
import { startTestEngine } from "../helpers.ts";

const TOKEN = "metrics-read-token-0123456789";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Family {
  help: string | null;
  type: string | null;
  samples: Sample[];
}

/** A strict parser of the Prometheus text exposition format (0.0.4); throws on any malformed line. */
function parseProm(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const fam = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { help: null, type: null, samples: [] }));
    return f;
  };
  const familyOf = (sample: string) => {
    for (const suffix of ["_bucket", "_sum", "_count"]) {
      const base = sample.slice(0, -suffix.length);
      if (sample.endsWith(suffix) && families.get(base)?.type === "histogram") return base;
    }
    return sample;
  };
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  for (const line of lines) {
    if (line === "") continue;
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      fam(m[1]).help = m[2];
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) {
      fam(m[1]).type = m[2];
      continue;
    }
    if (line.startsWith("#")) throw new Error(`bad comment line: ${line}`);
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3] !== undefined && m[3] !== "") {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
      let pos = 0;
      while (pos < m[3].length) {
        re.lastIndex = pos;
        const l = re.exec(m[3]);
        if (!l) throw new Error(`bad labels: ${line}`);
        labels[l[1]] = l[2].replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));
        pos = re.lastIndex;
      }
    }
    const raw = m[4];
    // Prometheus parses values with Go's ParseFloat: NaN and Inf in any case (prom-client writes "Nan")
    const lower = raw.toLowerCase();
    const isNaN = lower === "nan";
    const value = lower === "+inf" || lower === "inf" ? Infinity : lower === "-inf" ? -Infinity : isNaN ? Number.NaN : Number(raw);
    if (!isNaN && Number.isNaN(value)) throw new Error(`bad value: ${line}`);
    fam(familyOf(m[1])).samples.push({ name: m[1], labels, value });
  }
  return families;
}

const value = (f: Map<string, Family>, name: string, labels: Record<string, string> = {}) => {
  const fam = f.get(name) ?? f.get(name.replace(/_(bucket|sum|count)$/, ""));
  const s = fam?.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
};

describe("GET /metrics", () => {
  let t: Awaited<ReturnType<typeof startTestEngine>>;
  let app: ReturnType<typeof createApp>;
  const auth = { authorization: `Bearer ${TOKEN}` };

  const scrape = async () => {
    const res = await app.handle(new Request("http://rtae.test/metrics", { headers: auth }));
    expect(res.status).toBe(200);
    return { contentType: res.headers.get("content-type"), text: await res.text() };
  };
  const post = (body: string) =>
    app.handle(new Request("http://rtae.test/api/events", { method: "POST", body, headers: { "content-type": "application/x-ndjson" } }));

  beforeAll(async () => {
    t = await startTestEngine(["--read-tokens", TOKEN]);
    app = createApp(t.engine, { plugins: [metricsPlugin(t.engine, { registry: new Registry() })] });
  });
  afterAll(async () => {
    await t.stop();
  });

  it("answers 401 without a read token and 200 with one", async () => {
    const anon = await app.handle(new Request("http://rtae.test/metrics"));
    expect(anon.status).toBe(401);
    const ok = await app.handle(new Request("http://rtae.test/metrics", { headers: auth }));
    expect(ok.status).toBe(200);
  });

  it("serves the Prometheus text format with conventional names", async () => {
    const { contentType, text } = await scrape();
    expect(contentType).toStartWith("text/plain");
    expect(contentType).toContain("version=0.0.4");
    const f = parseProm(text);
    expect(f.size).toBeGreaterThan(20);
    for (const [name, fam] of f) {
      expect(fam.type).not.toBeNull();
      expect(fam.help).not.toBeNull();
      const ok = /^rtae_[a-z0-9_]+$/.test(name) || /^(process|nodejs)_[a-z0-9_]+$/.test(name);
      if (!ok) throw new Error(`unexpected metric name ${name}`);
      if (name.startsWith("rtae_")) {
        if (fam.type === "counter") expect(name).toEndWith("_total");
        if (name.includes("duration") || name.includes("lag_seconds") || name.includes("freshness")) expect(name).toEndWith("_seconds");
        if (name.endsWith("_total")) expect(fam.type).toBe("counter");
      }
    }
    for (const name of [
      "rtae_ingest_events_total",
      "rtae_ingest_requests_total",
      "rtae_events_processed_total",
      "rtae_duplicates_total",
      "rtae_dead_letters_total",
      "rtae_late_events_total",
      "rtae_watermark_seconds",
      "rtae_event_time_lag_seconds",
      "rtae_consumer_lag_records",
      "rtae_freshness_seconds",
      "rtae_window_flush_duration_seconds",
      "rtae_checkpoints_total",
      "rtae_store_operation_duration_seconds",
      "rtae_circuit_state",
      "rtae_stream_clients",
      "rtae_stream_resyncs_total",
      "rtae_stream_drops_total",
      "rtae_ring_used_records",
      "rtae_open_sessions",
      "rtae_dictionary_ids",
      "rtae_live_panes",
      "process_cpu_user_seconds_total",
      "nodejs_heap_size_used_bytes",
    ])
      expect(f.has(name)).toBe(true);
    expect(value(f, "rtae_consumer_lag_records", { partition: "3" })).toBe(0);
    expect(value(f, "rtae_circuit_state", { store: "history" })).toBe(0);
    expect(value(f, "rtae_stream_clients", { transport: "sse" })).toBe(0);
  });

  it("counts a known batch as accepted, rejected, requests by status and processed events", async () => {
    const before = parseProm((await scrape()).text);
    const n = 37;
    const m = 5;
    const now = Date.now();
    const lines: string[] = [];
    for (let i = 0; i < n; i++)
      lines.push(JSON.stringify({ eventId: `ok-${i}`, type: "page_view", timestamp: now - i * 10, userId: `u${i % 7}`, sessionId: `s${i % 11}`, page: "/" }));
    for (let i = 0; i < m; i++) lines.push(JSON.stringify({ eventId: `bad-${i}`, type: "no_such_type", timestamp: now }));
    const r = await post(lines.join("\n"));
    expect(r.status).toBe(202);
    const body = (await r.json()) as { accepted: number; rejected: number };
    expect([body.accepted, body.rejected]).toEqual([n, m]);
    const none = await post(JSON.stringify({ eventId: "x", type: "nope" }));
    expect(none.status).toBe(400);

    const base = (name: string, labels: Record<string, string> = {}) => value(before, name, labels) ?? 0;
    const deadline = Date.now() + 10_000;
    let f = parseProm((await scrape()).text);
    // workers report progress about once a second: poll the scrape until it shows all n, with a deadline
    await t.engine.caughtUp(5000);
    while ((value(f, "rtae_events_processed_total") ?? 0) - base("rtae_events_processed_total") < n && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      f = parseProm((await scrape()).text);
    }
    expect(value(f, "rtae_ingest_events_total", { result: "accepted" })! - base("rtae_ingest_events_total", { result: "accepted" })).toBe(n);
    expect(value(f, "rtae_ingest_events_total", { result: "rejected" })! - base("rtae_ingest_events_total", { result: "rejected" })).toBe(m + 1);
    expect(value(f, "rtae_ingest_rejected_total", { reason: "unknown_type" })! - base("rtae_ingest_rejected_total", { reason: "unknown_type" })).toBe(m + 1);
    expect(value(f, "rtae_ingest_rejected_total", { reason: "malformed" })! - base("rtae_ingest_rejected_total", { reason: "malformed" })).toBe(0);
    expect(value(f, "rtae_ingest_requests_total", { status: "202" })! - base("rtae_ingest_requests_total", { status: "202" })).toBe(1);
    expect(value(f, "rtae_ingest_requests_total", { status: "400" })! - base("rtae_ingest_requests_total", { status: "400" })).toBe(1);
    expect(value(f, "rtae_events_processed_total")! - base("rtae_events_processed_total")).toBe(n);
    expect(value(f, "rtae_duplicates_total")).toBe(0);
    expect(value(f, "rtae_events_counted_total", { type: "page_view" })! - base("rtae_events_counted_total", { type: "page_view" })).toBe(n);
    expect(value(f, "rtae_events_counted_total", { type: "purchase" })! - base("rtae_events_counted_total", { type: "purchase" })).toBe(0);
    expect(value(f, "rtae_orders_total")! - base("rtae_orders_total")).toBe(0);
    expect(value(f, "rtae_revenue_total", { currency: "USD" })! - base("rtae_revenue_total", { currency: "USD" })).toBe(0); // no purchase in the batch
    // watermark = min over active partitions of (newest event time - 5 s); NaN until every partition has spoken
    const wm = value(f, "rtae_watermark_seconds")!;
    const engineWm = t.engine.aggregator.watermark.value;
    if (Number.isFinite(engineWm)) {
      expect(wm).toBeLessThanOrEqual((now - 5000) / 1000);
      expect(wm).toBe(engineWm / 1000);
    } else expect(wm).toBeNaN();
    let lag = 0;
    for (let p = 0; p < 4; p++) lag += value(f, "rtae_consumer_lag_records", { partition: String(p) })!;
    expect(lag).toBe(0);
  });

  it("records checkpoints, store commits and freshness as histograms with +Inf buckets", async () => {
    await t.engine.checkpoint();
    const f = parseProm((await scrape()).text);
    expect(value(f, "rtae_checkpoints_total")!).toBeGreaterThanOrEqual(1);
    for (const [name, labels] of [
      ["rtae_window_flush_duration_seconds", {}],
      ["rtae_store_operation_duration_seconds", { store: "history", op: "commit" }],
    ] as const) {
      const fam = f.get(name)!;
      expect(fam.type).toBe("histogram");
      const inf = value(f, `${name}_bucket`, { ...labels, le: "+Inf" });
      const count = value(f, `${name}_count`, labels);
      expect(count).toBeGreaterThanOrEqual(1);
      expect(inf).toBe(count!);
      expect(value(f, `${name}_sum`, labels)).toBeGreaterThanOrEqual(0);
      // buckets are cumulative
      const buckets = fam.samples.filter((s) => s.name === `${name}_bucket` && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
      for (let i = 1; i < buckets.length; i++) expect(buckets[i].value).toBeGreaterThanOrEqual(buckets[i - 1].value);
    }
    const fresh = f.get("rtae_freshness_seconds")!;
    expect(fresh.samples.some((s) => s.name === "rtae_freshness_seconds_bucket" && s.labels.le === "0.005")).toBe(true);
    expect(fresh.samples.some((s) => s.name === "rtae_freshness_seconds_bucket" && s.labels.le === "5")).toBe(true);
    // the earlier ingest has been applied and the engine's live view published a delta since
    const deadline = Date.now() + 5000;
    let count = value(f, "rtae_freshness_seconds_count")!;
    while (count < 1 && Date.now() < deadline) {
      const { promise, resolve } = Promise.withResolvers<void>();
      const off = t.engine.hot.subscribe("deltas", () => resolve());
      await Promise.race([promise, new Promise((r) => setTimeout(r, 500))]);
      off();
      count = value(parseProm((await scrape()).text), "rtae_freshness_seconds_count")!;
    }
    // one accepted ingest so far, observed once
    expect(count).toBe(1);
    const sum = value(f, "rtae_freshness_seconds_sum");
    expect(sum).toBeGreaterThanOrEqual(0);
  });

  it("never lets a counter decrease across scrapes", async () => {
    const a = parseProm((await scrape()).text);
    await post(JSON.stringify({ eventId: "later-1", type: "page_view", timestamp: Date.now(), userId: "u", sessionId: "s", page: "/" }));
    await t.engine.caughtUp(5000);
    await t.engine.checkpoint();
    const b = parseProm((await scrape()).text);
    let compared = 0;
    for (const [name, fam] of a) {
      if (fam.type !== "counter") continue;
      for (const s of fam.samples) {
        const after = value(b, s.name, s.labels);
        expect(after).toBeDefined();
        expect(after!).toBeGreaterThanOrEqual(s.value);
        compared++;
      }
      expect(b.get(name)?.type).toBe("counter");
    }
    expect(compared).toBeGreaterThan(10);
  });

  it("passes promtool check metrics when promtool is installed", async () => {
    const which = spawnSync("which", ["promtool"]);
    if (which.status !== 0) {
      // not required yet: CI does not install Debian's prometheus package
      console.warn("promtool not installed; skipping `promtool check metrics`");
      return;
    }
    const { text } = await scrape();
    const dir = mkdtempSync(join(tmpdir(), "rtae-prom-"));
    try {
      const file = join(dir, "metrics.txt");
      writeFileSync(file, text);
      const r = spawnSync("sh", ["-c", `promtool check metrics < ${file}`], { encoding: "utf8" });
      expect(`${r.stdout}${r.stderr}`.trim()).toBe("");
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("rtae_ingest_requests_total", () => {
  const KEY = "metrics-ingest-key-0123456789";
  let t: Awaited<ReturnType<typeof startTestEngine>>;
  let app: ReturnType<typeof createApp>;

  beforeAll(async () => {
    t = await startTestEngine(["--ingest-keys", KEY]);
    app = createApp(t.engine, { plugins: [metricsPlugin(t.engine, { registry: new Registry(), defaultMetrics: false })] });
  });
  afterAll(async () => {
    await t.stop();
  });

  it("counts answers of the guard and of the route registered before the plugin, by status", async () => {
    const send = (headers: Record<string, string>, body: string) =>
      app.handle(new Request("http://rtae.test/api/events", { method: "POST", body, headers }));
    const event = JSON.stringify({ eventId: "k1", type: "page_view", timestamp: Date.now(), userId: "u", sessionId: "s", page: "/" });
    const statuses = [
      (await send({ "content-type": "application/json" }, event)).status, // no key: the guard answers
      (await send({ "content-type": "application/json", authorization: `Bearer ${KEY}` }, event)).status,
      (await send({ "content-type": "text/csv", authorization: `Bearer ${KEY}` }, "a,b")).status,
      (await send({ "content-type": "application/json", authorization: `Bearer ${KEY}` }, event)).status, // duplicate id: still 202
    ];
    expect(statuses).toEqual([401, 202, 415, 202]);
    const expected = new Map<string, number>();
    for (const s of statuses) expected.set(String(s), (expected.get(String(s)) ?? 0) + 1);
    // GET /metrics is a read route; ingest is keyed but reads are open here
    const f = parseProm(await (await app.handle(new Request("http://rtae.test/metrics"))).text());
    const got = new Map<string, number>();
    for (const s of f.get("rtae_ingest_requests_total")!.samples) got.set(s.labels.status, s.value);
    expect(got).toEqual(expected);
    expect(f.has("process_cpu_user_seconds_total")).toBe(false);
  });
});

describe("rtae_late_events_total", () => {
  let t: Awaited<ReturnType<typeof startTestEngine>>;
  let app: ReturnType<typeof createApp>;

  beforeAll(async () => {
    t = await startTestEngine(["--partitions", "1", "--workers", "1"]);
    app = createApp(t.engine, { plugins: [metricsPlugin(t.engine, { registry: new Registry(), defaultMetrics: false })] });
  });
  afterAll(async () => {
    await t.stop();
  });

  it("counts one merged and one dropped late event once they are checkpointed", async () => {
    // one partition, out-of-orderness 5 s, allowed lateness 60 s: after an event at T+100 s the
    // watermark is T+95 s, so an event at T+60 s is merged and one at T is dropped
    const T = Math.floor((Date.now() - 300_000) / 1000) * 1000;
    const ev = (id: string, dt: number) => JSON.stringify({ eventId: id, type: "page_view", timestamp: T + dt, userId: "u", sessionId: "s", page: "/" });
    for (const [id, dt] of [["a", 0], ["b", 100_000], ["merged", 60_000], ["dropped", 500], ["c", 200_000]] as const) {
      const r = await app.handle(new Request("http://rtae.test/api/events", { method: "POST", body: ev(id, dt), headers: { "content-type": "application/json" } }));
      expect(r.status).toBe(202);
      expect(await t.engine.caughtUp(5000)).toBe(true);
    }
    // the watermark (T+195 s) has passed the merged event's window plus lateness: its pane is final
    await t.engine.checkpoint();
    const f = parseProm(await (await app.handle(new Request("http://rtae.test/metrics"))).text());
    expect(value(f, "rtae_late_events_total", { kind: "merged" })).toBe(1);
    expect(value(f, "rtae_late_events_total", { kind: "dropped" })).toBe(1);
    expect(value(f, "rtae_watermark_seconds")).toBe((T + 195_000) / 1000);
    expect(value(f, "rtae_dead_letters_total")).toBe(0);
  });
});
