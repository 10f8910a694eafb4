// The monitoring/ assets against the real thing: promtool checks and rule unit tests, a real
// Prometheus scraping a real rtae process (with our alert rules loaded and every dashboard query
// evaluated), and the Grafana files' and alert rules' PromQL naming only metrics rtae exports.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import * as N from "../../src/server/metric-names.ts";
import { freePort, tempDir } from "../helpers.ts";

const ROOT = join(import.meta.dir, "../..");
const MON = join(ROOT, "monitoring");
const DASHBOARDS = join(MON, "grafana/dashboards");
const DATASOURCE_UID = "prometheus";

// a missing binary skips locally but fails in CI, where .ci/run installs it
const promtool = Bun.which("promtool");
const prometheus = Bun.which("prometheus");
const skipPromtool = !promtool && !process.env.CI;
const skipPrometheus = !prometheus && !process.env.CI;

// ---------------------------------------------------------------------------------------------
// A small PromQL scanner: enough to list metric names and label names an expression refers to.

interface PromqlRefs {
  metrics: string[];
  /** label names in selector matchers, per selector metric ("" for a bare `{...}`) */
  matchers: Array<{ metric: string; labels: string[] }>;
  /** label names in by/without/on/ignoring/group_* clauses */
  grouping: string[];
}

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "atan2"]);

/** Grafana's variables as Prometheus would see them once Grafana interpolated them. */
function interpolate(expr: string): string {
  return expr.replaceAll("$__rate_interval", "1m").replaceAll("$__interval", "15s").replaceAll("$__range", "5m").replace(/\$\{?instance\}?/g, ".*");
}

function promqlRefs(expr: string): PromqlRefs {
  let s = interpolate(expr).replace(/#.*$/gm, "").replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
  const matchers: PromqlRefs["matchers"] = [];
  for (const m of s.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}/g))
    matchers.push({ metric: m[1] ?? "", labels: [...m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]) });
  s = s.replace(/\{[^}]*\}/g, " ").replace(/\[[^\]]*\]/g, " ");
  const grouping: string[] = [];
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_, _k: string, list: string) => {
    for (const l of list.split(",")) if (l.trim()) grouping.push(l.trim());
    return " ";
  });
  const metrics: string[] = [];
  for (const m of s.matchAll(/(?<![0-9.a-zA-Z_:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![a-zA-Z0-9_:])(?!\s*\()/g)) {
    if (!KEYWORDS.has(m[1].toLowerCase())) metrics.push(m[1]);
  }
  return { metrics, matchers, grouping };
}

// ---------------------------------------------------------------------------------------------
// What rtae exports: the names module, typed and labelled by a scrape of a real process.

const exportedNames: string[] = (Object.values(N) as unknown[]).filter((v): v is string => typeof v === "string" && v !== N.METRIC_PREFIX);

interface Exposition {
  types: Map<string, string>;
  labels: Map<string, Set<string>>;
}

function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const labels = new Map<string, Set<string>>();
  for (const line of text.split("\n")) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1], t[2]);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} /.exec(line);
    if (!m) continue;
    let set = labels.get(m[1]);
    if (!set) labels.set(m[1], (set = new Set()));
    for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) set.add(l[1]);
  }
  return { types, labels };
}

/** Names a query may use: the exported names, histogram series suffixes, and Prometheus's `up`. */
function allowedNames(expo: Exposition): Set<string> {
  const allowed = new Set<string>(["up"]);
  for (const name of exportedNames) {
    allowed.add(name);
    if (expo.types.get(name) === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) allowed.add(name + suffix);
  }
  return allowed;
}

/** Problems with one expression: unknown metrics, labels no rtae series carries, or no metric at all. */
function checkExpr(expr: string, allowed: Set<string>, expo: Exposition): string[] {
  const refs = promqlRefs(expr);
  const problems: string[] = [];
  if (refs.metrics.length === 0) problems.push(`names no metric: ${expr}`);
  for (const m of refs.metrics) if (!allowed.has(m)) problems.push(`unknown metric ${m} in: ${expr}`);
  const target = new Set(["instance", "job", "__name__"]);
  const anyLabel = new Set([...target, "le"]);
  for (const set of expo.labels.values()) for (const l of set) if (l !== "le") anyLabel.add(l);
  for (const { metric, labels } of refs.matchers) {
    // a labelled metric with no series yet (e.g. a histogram never observed) cannot be checked per metric
    const own = metric === "up" ? target : expo.labels.get(metric);
    for (const l of labels) if (!(own ? own.has(l) || target.has(l) : anyLabel.has(l))) problems.push(`label ${l} not on ${metric} in: ${expr}`);
  }
  for (const l of refs.grouping) if (!anyLabel.has(l)) problems.push(`grouping label ${l} on no rtae series in: ${expr}`);
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Files

interface Panel {
  id?: number;
  type?: string;
  title?: string;
  gridPos?: { h: number; w: number; x: number; y: number };
  datasource?: { type?: string; uid?: string } | string | null;
  targets?: Array<{ expr?: string; refId?: string; datasource?: { uid?: string } }>;
  panels?: Panel[];
}
interface Dashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: Array<{ name: string; type: string; datasource?: { uid?: string }; query?: unknown; definition?: string }> };
}

const dashboardFiles = readdirSync(DASHBOARDS).filter((f) => f.endsWith(".json")).sort();
const dashboards = dashboardFiles.map((f) => ({ file: f, json: JSON.parse(readFileSync(join(DASHBOARDS, f), "utf8")) as Dashboard }));
const allPanels = (d: Dashboard): Panel[] => (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);

/** Every PromQL expression of a dashboard: panel targets and query variables. */
function dashboardExprs(d: Dashboard): string[] {
  const out: string[] = [];
  for (const p of allPanels(d)) for (const t of p.targets ?? []) if (t.expr) out.push(t.expr);
  for (const v of d.templating?.list ?? []) {
    if (v.type !== "query") continue;
    const q = typeof v.query === "string" ? v.query : (v.query as { query?: string }).query ?? "";
    // label_values(selector, label): the selector is PromQL
    const lv = /^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$/.exec(q.trim());
    out.push(lv ? lv[1] : q);
  }
  return out;
}

const alertRules = (Bun.YAML.parse(readFileSync(join(MON, "alerts.yml"), "utf8")) as { groups: Array<{ rules: Array<{ alert?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }> }> }).groups.flatMap((g) => g.rules);

// ---------------------------------------------------------------------------------------------
// One real rtae process for the whole file: its exposition defines what exists, and Prometheus scrapes it.

const dataDir = tempDir("rtae-monitoring-");
const rtaePort = freePort();
const rtaeUrl = `http://127.0.0.1:${rtaePort}`;
let rtae: ReturnType<typeof Bun.spawn> | null = null;
let expo: Exposition = { types: new Map(), labels: new Map() };
let allowed = new Set<string>();
const ACCEPTED = 23;
const REJECTED = 4;

async function waitFor<T>(what: string, probe: () => Promise<T | null>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== null) return v;
    } catch (err) {
      last = err;
    }
    await Bun.sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

beforeAll(async () => {
  rtae = Bun.spawn(
    [process.execPath, "src/main.ts", "serve", "--data-dir", dataDir, "--port", String(rtaePort), "--host", "127.0.0.1",
      "--partitions", "2", "--workers", "1", "--log-level", "error", "--checkpoint-interval", "200ms"],
    { stdout: "ignore", stderr: "inherit", cwd: ROOT },
  );
  await waitFor("rtae /ready", async () => ((await fetch(`${rtaeUrl}/ready`)).status === 200 ? true : null), 20_000);
  const now = Date.now();
  const lines: string[] = [];
  for (let i = 0; i < ACCEPTED; i++)
    lines.push(JSON.stringify({ eventId: `mon-${i}`, type: "page_view", timestamp: now - i * 10, userId: `u${i % 5}`, sessionId: `s${i % 3}`, page: "/" }));
  for (let i = 0; i < REJECTED; i++) lines.push(JSON.stringify({ eventId: `bad-${i}`, type: "no_such_type", timestamp: now }));
  const res = await fetch(`${rtaeUrl}/api/events`, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body: lines.join("\n") });
  expect(res.status).toBe(202);
  expect(await res.json()).toMatchObject({ accepted: ACCEPTED, rejected: REJECTED });
  expo = parseExposition(await (await fetch(`${rtaeUrl}/metrics`)).text());
  allowed = allowedNames(expo);
}, 30_000);

afterAll(async () => {
  if (rtae) {
    rtae.kill("SIGTERM");
    await rtae.exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
});

describe("rtae's exported names", () => {
  it("the names module lists exactly the rtae_ families a real process exposes", () => {
    const exposed = [...expo.types.keys()].filter((n) => n.startsWith(N.METRIC_PREFIX)).sort();
    expect(exposed).toEqual([...exportedNames].sort());
    expect([N.FRESHNESS_SECONDS, N.WINDOW_FLUSH_DURATION_SECONDS, N.STORE_OPERATION_DURATION_SECONDS].map((n) => expo.types.get(n))).toEqual(["histogram", "histogram", "histogram"]);
  });

  it("the PromQL check rejects unknown metrics, wrong labels and metric-free expressions", () => {
    expect(checkExpr('sum by (result) (rate(rtae_ingest_events_total{result="rejected", instance=~"$instance"}[$__rate_interval]))', allowed, expo)).toEqual([]);
    expect(checkExpr("histogram_quantile(0.99, sum by (le) (rate(rtae_freshness_seconds_bucket[5m]))) > 0.1", allowed, expo)).toEqual([]);
    expect(checkExpr("rate(rtae_no_such_total[5m])", allowed, expo).join()).toContain("unknown metric rtae_no_such_total");
    expect(checkExpr("rate(rtae_processed_seconds_bucket[5m])", allowed, expo).join()).toContain("unknown metric");
    expect(checkExpr('rate(rtae_ingest_events_total{outcome="rejected"}[5m])', allowed, expo).join()).toContain("label outcome");
    expect(checkExpr("sum by (tenant) (rtae_open_sessions)", allowed, expo).join()).toContain("grouping label tenant");
    expect(checkExpr("vector(1) > 0", allowed, expo).join()).toContain("names no metric");
  });
});

describe("alert rules", () => {
  it("every alert has for, severity and summary/description, and names only exported metrics", () => {
    const names = alertRules.map((r) => r.alert);
    expect(names).toEqual(["RtaeInstanceDown", "RtaeConsumerLagGrowing", "RtaeFreshnessP99High", "RtaeIngestErrorRate", "RtaeCircuitOpen", "RtaeLateDropRate"]);
    const problems: string[] = [];
    for (const r of alertRules) {
      if (!r.for) problems.push(`${r.alert}: no for`);
      if (!["critical", "warning"].includes(r.labels?.severity ?? "")) problems.push(`${r.alert}: severity`);
      if (!r.annotations?.summary || !r.annotations?.description) problems.push(`${r.alert}: annotations`);
      problems.push(...checkExpr(r.expr, allowed, expo).map((p) => `${r.alert}: ${p}`));
    }
    expect(problems).toEqual([]);
  });
});

describe.skipIf(skipPromtool)("promtool", () => {
  const run = (...args: string[]) => {
    if (!promtool) throw new Error("promtool is not installed (apt-get install -y prometheus)");
    const p = Bun.spawnSync([promtool, ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    return { code: p.exitCode, out: `${p.stdout.toString()}${p.stderr.toString()}` };
  };

  it("accepts the scrape config and the rule file it points at", () => {
    const r = run("check", "config", "monitoring/prometheus.yml");
    expect(r.out).toContain("SUCCESS: 1 rule files found");
    expect(r.code).toBe(0);
  });

  it("accepts the alert rules", () => {
    const r = run("check", "rules", "monitoring/alerts.yml");
    expect(r.out).toContain(`SUCCESS: ${alertRules.length} rules found`);
    expect(r.code).toBe(0);
  });

  it("passes the alert unit tests (each alert fires for its case and stays quiet for the others)", () => {
    const r = run("test", "rules", "monitoring/tests/alerts.test.yml");
    if (r.code !== 0) console.error(r.out);
    expect(r.code).toBe(0);
    // the unit tests must cover every alert, or a new rule would pass untested
    const tests = readFileSync(join(MON, "tests/alerts.test.yml"), "utf8");
    for (const r of alertRules) expect(tests).toContain(`alertname: ${r.alert}`);
  });
});

describe("grafana provisioning", () => {
  it("provisions the Prometheus datasource by uid and a file provider for the dashboards", () => {
    const ds = Bun.YAML.parse(readFileSync(join(MON, "grafana/provisioning/datasources/prometheus.yml"), "utf8")) as { apiVersion: number; datasources: Array<Record<string, unknown>> };
    expect(ds.apiVersion).toBe(1);
    expect(ds.datasources).toHaveLength(1);
    expect(ds.datasources[0]).toMatchObject({ type: "prometheus", uid: DATASOURCE_UID, url: "http://prometheus:9090", access: "proxy" });
    const prov = Bun.YAML.parse(readFileSync(join(MON, "grafana/provisioning/dashboards/rtae.yml"), "utf8")) as { apiVersion: number; providers: Array<Record<string, unknown>> };
    expect(prov.apiVersion).toBe(1);
    expect(prov.providers[0]).toMatchObject({ type: "file", options: { path: "/var/lib/grafana/dashboards" } });
  });

  it("ships the engine-health and business-KPI dashboards", () => {
    expect(dashboardFiles).toEqual(["rtae-business-kpis.json", "rtae-engine-health.json"]);
  });

  for (const { file, json: d } of dashboards) {
    it(`${file}: schema 39, unique panel ids, panels on a non-overlapping 24-column grid, datasource by uid`, () => {
      expect(d.schemaVersion).toBe(39);
      expect(d.uid ?? "").toBe(basename(file, ".json"));
      expect(d.title).toBeTruthy();
      const panels = allPanels(d);
      expect(panels.length).toBeGreaterThan(5);
      const ids = panels.map((p) => p.id);
      for (const id of ids) expect(Number.isInteger(id)).toBe(true);
      expect(new Set(ids).size).toBe(ids.length);
      const taken = new Set<string>();
      for (const p of panels) {
        const g = p.gridPos!;
        expect([g.h, g.w, g.x, g.y].every((n) => Number.isInteger(n) && n >= 0)).toBe(true);
        expect(g.w).toBeGreaterThan(0);
        expect(g.x + g.w).toBeLessThanOrEqual(24);
        for (let y = g.y; y < g.y + g.h; y++)
          for (let x = g.x; x < g.x + g.w; x++) {
            const cell = `${x},${y}`;
            if (taken.has(cell)) throw new Error(`panel ${p.id} (${p.title}) overlaps another at ${cell}`);
            taken.add(cell);
          }
        if (p.targets) {
          expect(p.targets.length).toBeGreaterThan(0);
          expect(p.datasource).toEqual({ type: "prometheus", uid: DATASOURCE_UID });
          for (const t of p.targets) {
            expect(t.expr).toBeTruthy();
            expect(t.datasource?.uid ?? DATASOURCE_UID).toBe(DATASOURCE_UID);
          }
        } else expect(["row", "text"]).toContain(p.type ?? "");
      }
      for (const v of d.templating?.list ?? []) if (v.type === "query") expect(v.datasource?.uid).toBe(DATASOURCE_UID);
    });

    it(`${file}: every query names only metrics and labels rtae exports`, () => {
      const exprs = dashboardExprs(d);
      expect(exprs.length).toBeGreaterThan(5);
      expect(exprs.flatMap((e) => checkExpr(e, allowed, expo))).toEqual([]);
    });
  }

  it("the engine-health dashboard covers the operational metrics the issue asks for", () => {
    const health = dashboards.find((x) => x.file === "rtae-engine-health.json")!.json;
    const used = new Set(dashboardExprs(health).flatMap((e) => promqlRefs(e).metrics));
    for (const name of [N.INGEST_EVENTS_TOTAL, N.EVENTS_PROCESSED_TOTAL, N.CONSUMER_LAG_RECORDS, N.FRESHNESS_SECONDS + "_bucket", N.WINDOW_FLUSH_DURATION_SECONDS + "_bucket",
      N.STORE_OPERATION_DURATION_SECONDS + "_bucket", N.CIRCUIT_STATE, N.STREAM_CLIENTS, N.RING_USED_RECORDS, N.LATE_EVENTS_TOTAL, N.DUPLICATES_TOTAL])
      expect(used.has(name) ? name : `missing ${name}`).toBe(name);
  });
});

describe.skipIf(skipPrometheus)("a real Prometheus scraping a real rtae", () => {
  let promDir = ""; // made in beforeAll, so a skipped suite leaves nothing behind
  const promPort = freePort();
  const promUrl = `http://127.0.0.1:${promPort}`;
  let prom: ReturnType<typeof Bun.spawn> | null = null;

  const query = async (q: string) => {
    const r = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = (await r.json()) as { status: string; error?: string; data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    return body;
  };
  const scalar = async (q: string): Promise<number | null> => {
    const b = await query(q);
    const v = b.data?.result[0]?.value[1];
    return v === undefined ? null : Number(v);
  };

  beforeAll(async () => {
    if (!prometheus) throw new Error("prometheus is not installed (apt-get install -y prometheus)");
    promDir = tempDir("rtae-prometheus-");
    const config = join(promDir, "prometheus.yml");
    writeFileSync(config, [
      "global:",
      "  scrape_interval: 1s",
      "  evaluation_interval: 1s",
      "rule_files:",
      `  - ${JSON.stringify(join(MON, "alerts.yml"))}`,
      "scrape_configs:",
      "  - job_name: rtae",
      "    metrics_path: /metrics",
      "    static_configs:",
      `      - targets: ["127.0.0.1:${rtaePort}"]`,
      "",
    ].join("\n"));
    prom = Bun.spawn([prometheus, `--config.file=${config}`, `--storage.tsdb.path=${join(promDir, "data")}`, `--web.listen-address=127.0.0.1:${promPort}`, "--log.level=warn"],
      { stdout: "ignore", stderr: "inherit" });
    await waitFor("prometheus /-/ready", async () => ((await fetch(`${promUrl}/-/ready`)).status === 200 ? true : null), 20_000);
  }, 30_000);

  afterAll(async () => {
    if (prom) {
      prom.kill("SIGTERM");
      await prom.exited;
    }
    if (promDir) rmSync(promDir, { recursive: true, force: true });
  });

  it("scrapes rtae: up is 1 and the ingest counters hold the posted batch", async () => {
    await waitFor('up{job="rtae"} == 1', async () => ((await scalar('up{job="rtae"}')) === 1 ? true : null), 20_000);
    const accepted = await waitFor("accepted events in Prometheus", () => scalar('sum(rtae_ingest_events_total{job="rtae", result="accepted"})'), 20_000);
    expect(accepted).toBe(ACCEPTED);
    expect(await scalar('sum(rtae_ingest_events_total{job="rtae", result="rejected"})')).toBe(REJECTED);
    expect(await scalar('sum(rtae_ingest_requests_total{job="rtae", status="202"})')).toBe(1);
  }, 45_000);

  it("loads the alert rules, evaluates them healthily, and nothing fires for a healthy rtae", async () => {
    type Rules = { data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string; state: string; lastEvaluation: string }> }> } };
    const rules = await waitFor("all rules evaluated", async () => {
      const b = (await (await fetch(`${promUrl}/api/v1/rules?type=alert`)).json()) as Rules;
      const all = b.data.groups.flatMap((g) => g.rules);
      return all.length > 0 && all.every((r) => !r.lastEvaluation.startsWith("0001")) ? all : null;
    }, 20_000);
    expect(rules.map((r) => r.name).sort()).toEqual(alertRules.map((r) => r.alert!).sort());
    for (const r of rules) {
      expect(`${r.name}: ${r.health} ${r.lastError ?? ""}`.trim()).toBe(`${r.name}: ok`);
      expect(`${r.name}: ${r.state}`).toBe(`${r.name}: inactive`);
    }
  }, 30_000);

  it("evaluates every dashboard query without error", async () => {
    const errors: string[] = [];
    for (const { file, json } of dashboards)
      for (const e of dashboardExprs(json)) {
        const b = await query(interpolate(e));
        if (b.status !== "success") errors.push(`${file}: ${e}: ${b.error}`);
      }
    expect(errors).toEqual([]);
    // and the dashboards' core series have data from this one scrape target (rate needs two scrapes)
    const rate = await waitFor("two scrapes for rate()", () => scalar('sum(rate(rtae_ingest_events_total{instance=~".*"}[1m]))'), 20_000);
    expect(rate).toBeGreaterThanOrEqual(0);
    expect(await scalar('count(rtae_consumer_lag_records{job="rtae"})')).toBe(2);
  }, 30_000);
});
