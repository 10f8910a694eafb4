// Alerting end to end on a real engine (workers, sqlite) with REAL local webhook receivers: a crafted event
// stream closes 1-minute windows as the watermark moves; a threshold rule fires exactly once and resolves
// exactly once; a receiver failing twice still gets the message once; the rules API with its auth; the
// Alerts view; and `rtae serve --alert-rules` refusing a broken file and serving a good one. Without
// --alert-allow-private, webhooks to loopback, link-local and private addresses are refused when a rule is
// saved and again at delivery, after resolution (a name rebound to 127.0.0.1 never reaches the receiver).

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { alertsPlugin, createAlerting, loadAlertRules, startAlerting, type Alerting, type Lookup, type WindowSample } from "../../src/alerts/index.ts";
import { createApp } from "../../src/server/index.ts";
import { dashboardPlugin } from "../../src/views/index.ts";
import { startTestEngine, tempDir } from "../helpers.ts";
import { runRtae, spawnRtae } from "../rtae-process.ts";

const ADMIN = "adm_alerts_0123456789abcdef";
const READ = "rd_alerts_0123456789abcdef";
const MIN = 60_000;

interface Attempt {
  key: string;
  attempt: string | null;
  body: any;
}

/** A webhook receiver on a free port that answers 503 to the first `failFirst` attempts of each message. */
function startReceiver(failFirst = 0) {
  const attempts: Attempt[] = [];
  // what a careful receiver keeps: one entry per Idempotency-Key, whichever attempt brought it first
  const stored = new Map<string, any>();
  const waiters: Array<{ pred: () => boolean; resolve: () => void }> = [];
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const key = req.headers.get("idempotency-key") ?? "";
      const body = await req.json();
      attempts.push({ key, attempt: req.headers.get("x-rtae-delivery-attempt"), body });
      if (!stored.has(key)) stored.set(key, body);
      const n = attempts.filter((a) => a.key === key).length;
      const res = n <= failFirst ? new Response("down", { status: 503 }) : new Response("ok");
      for (const w of waiters.splice(0)) (w.pred() ? w.resolve : () => waiters.push(w))();
      return res;
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}/hook`,
    attempts,
    stored,
    until(pred: () => boolean): Promise<void> {
      if (pred()) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waiters.push({ pred, resolve });
      return promise;
    },
    stop: () => server.stop(true),
  };
}

const receiver = startReceiver();
const flaky = startReceiver(2);
const dir = tempDir("rtae-alerts-");
const rulesFile = join(dir, "rules.json");
writeFileSync(
  rulesFile,
  JSON.stringify({
    rules: [
      { id: "busy", name: "Busy minute", kind: "threshold", metric: "events.total", op: ">", value: 5, window: "1m", severity: "critical", labels: { team: "shop" } },
      { id: "flaky", kind: "threshold", metric: "events.total", op: ">", value: 5, window: "1m", webhook: { url: flaky.url } },
    ],
  }),
);

let t: Awaited<ReturnType<typeof startTestEngine>>;
let alerts: ReturnType<typeof startAlerting>;
let app: ReturnType<typeof createApp>;
// windows A..E: 20 minutes ago, well inside the 1 s retention and the ingest window
const A = Math.floor(Date.now() / MIN) * MIN - 20 * MIN;
let seq = 0;

const req = (method: string, path: string, opts: { token?: string; body?: string; type?: string } = {}) => {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers["content-type"] = opts.type ?? "application/json";
  return app.handle(new Request(`http://rtae.test${path}`, { method, headers, body: opts.body }));
};
const getJ = async (path: string, token = READ) => {
  const res = await req("GET", path, { token });
  return { status: res.status, body: (await res.json()) as any };
};

/** Sends `n` page views one second apart from `start`, waits until they are applied, and runs one evaluation. */
async function events(start: number, n: number) {
  const lines = Array.from({ length: n }, (_, i) =>
    JSON.stringify({ eventId: `e${seq++}`, type: "page_view", timestamp: start + i * 1000, userId: "u1", sessionId: `s${seq}`, page: "/" }),
  );
  const res = await req("POST", "/api/events", { token: ADMIN, body: lines.join("\n"), type: "application/x-ndjson" });
  expect(res.status).toBe(202);
  expect(await t.engine.caughtUp()).toBe(true);
  await alerts.alerting.tick();
}

const statuses = (r: ReturnType<typeof startReceiver>, rule: string) =>
  [...r.stored.values()].filter((b) => b.rule.id === rule).map((b) => b.status);

beforeAll(async () => {
  t = await startTestEngine(
    ["--partitions", "1", "--workers", "1", "--out-of-orderness", "0s", "--admin-token", ADMIN, "--read-tokens", READ,
      // the receivers listen on 127.0.0.1, which webhooks may only target with --alert-allow-private
      "--alert-rules", rulesFile, "--alert-webhook-url", receiver.url, "--alert-allow-private"],
    join(dir, "data"),
  );
  alerts = startAlerting(t.engine, loadAlertRules(t.engine.config), { pollMs: 50, webhook: { baseDelayMs: 20, timeoutMs: 2000 } });
  app = createApp(t.engine, { plugins: [dashboardPlugin(t.engine), alerts.plugin] });
}, 60_000);

afterAll(async () => {
  await alerts?.stop();
  await t?.stop(false);
  receiver.stop();
  flaky.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("threshold rule on a crafted stream", () => {
  it("starts with the windows that close after it first sees the stream", async () => {
    await events(A + 5_000, 10); // window A: 10 events; the watermark sits inside A
    const { body } = await getJ("/api/alerts/rules/busy");
    expect(body.state).toMatchObject({ firing: false, lastWindowEnd: new Date(A).toISOString() });
    expect(receiver.attempts.length).toBe(0);
  }, 30_000);

  it("fires once when window A closes above the threshold", async () => {
    await events(A + MIN, 8); // window B: 8 events; the watermark passes the end of A
    await alerts.alerting.idle();
    expect(statuses(receiver, "busy")).toEqual(["firing"]);
    const fire = [...receiver.stored.values()].find((b) => b.rule.id === "busy");
    expect(fire).toMatchObject({
      status: "firing",
      value: 10,
      threshold: 5,
      severity: "critical",
      window: { from: new Date(A).toISOString(), to: new Date(A + MIN).toISOString() },
      startsAt: new Date(A).toISOString(),
      labels: { team: "shop" },
      rule: { id: "busy", name: "Busy minute", kind: "threshold", metric: "events.total", window: "1m", op: ">", value: 5 },
    });
    expect(fire.endsAt).toBeUndefined();
    expect(fire.fingerprint).toMatch(/^[0-9a-f]{32}$/);
    const active = await getJ("/api/alerts");
    expect(active.body.items.map((a: { ruleId: string }) => a.ruleId).sort()).toEqual(["busy", "flaky"]);
  }, 30_000);

  it("gets a message to a receiver that fails its first two attempts exactly once, under one idempotency key", async () => {
    await flaky.until(() => flaky.attempts.length >= 3);
    await alerts.alerting.idle();
    expect(flaky.attempts.map((a) => a.attempt)).toEqual(["1", "2", "3"]);
    expect(new Set(flaky.attempts.map((a) => a.key)).size).toBe(1);
    expect(flaky.stored.size).toBe(1);
    expect(statuses(flaky, "flaky")).toEqual(["firing"]);
    const hist = await getJ("/api/alerts/history?limit=10");
    const entry = hist.body.items.find((e: { ruleId: string; status: string }) => e.ruleId === "flaky" && e.status === "firing");
    expect(entry.delivery).toBe("delivered");
  }, 30_000);

  it("stays silent while still breached, then resolves exactly once", async () => {
    await events(A + 2 * MIN, 2); // closes B (8 > 5): still firing, nothing sent
    await alerts.alerting.idle();
    expect(statuses(receiver, "busy")).toEqual(["firing"]);
    await events(A + 3 * MIN, 1); // closes C (2): resolved
    await events(A + 4 * MIN, 1); // closes D (1): nothing more
    await alerts.alerting.idle();
    expect(statuses(receiver, "busy")).toEqual(["firing", "resolved"]);
    expect(receiver.attempts.filter((a) => a.body.rule.id === "busy").length).toBe(2); // no retries were needed
    const [fire, resolve] = [...receiver.stored.values()].filter((b) => b.rule.id === "busy");
    expect(resolve).toMatchObject({ status: "resolved", value: 2, fingerprint: fire.fingerprint, endsAt: new Date(A + 3 * MIN).toISOString() });
    expect((await getJ("/api/alerts")).body.items).toEqual([]);
    const hist = (await getJ("/api/alerts/history")).body.items.filter((e: { ruleId: string }) => e.ruleId === "busy");
    expect(hist.map((e: { status: string }) => e.status)).toEqual(["resolved", "firing"]);
  }, 30_000);
});

describe("rules API", () => {
  const rule = { id: "api-orders", kind: "change", metric: "orders", percent: 50, direction: "down", window: "5m", webhook: "https://hooks.example.com/secret-path" };

  it("needs the admin token to change rules: 401 without a credential, 403 with a read token", async () => {
    expect((await req("POST", "/api/alerts/rules", { body: JSON.stringify(rule) })).status).toBe(401);
    const r = await req("POST", "/api/alerts/rules", { token: READ, body: JSON.stringify(rule) });
    expect(r.status).toBe(403);
    expect(((await r.json()) as any).error.code).toBe("forbidden");
    expect((await req("DELETE", "/api/alerts/rules/busy", { token: READ })).status).toBe(403);
    expect((await req("GET", "/api/alerts/rules")).status).toBe(401);
  });

  it("creates, reads, replaces and deletes a rule with the admin token", async () => {
    const created = await req("POST", "/api/alerts/rules", { token: ADMIN, body: JSON.stringify(rule) });
    expect(created.status).toBe(201);
    expect(created.headers.get("location")).toBe("/api/alerts/rules/api-orders");
    expect(((await created.json()) as any)).toMatchObject({ id: "api-orders", source: "api", forWindows: 1, severity: "warning" });
    // read tokens see the rule but not the secret part of its webhook
    const seen = await getJ("/api/alerts/rules/api-orders");
    expect(seen.body.webhook.url).toBe("https://hooks.example.com/…");
    expect((await getJ("/api/alerts/rules/api-orders", ADMIN)).body.webhook.url).toBe(rule.webhook);
    const list = await getJ("/api/alerts/rules");
    expect(list.body.items.map((r: { id: string; source: string }) => `${r.id}:${r.source}`)).toEqual(["busy:file", "flaky:file", "api-orders:api"]);
    const put = await req("PUT", "/api/alerts/rules/api-orders", { token: ADMIN, body: JSON.stringify({ ...rule, percent: 80 }) });
    expect(put.status).toBe(200);
    expect((await getJ("/api/alerts/rules/api-orders")).body.percent).toBe(80);
    expect((await req("DELETE", "/api/alerts/rules/api-orders", { token: ADMIN })).status).toBe(204);
    expect((await getJ("/api/alerts/rules/api-orders")).status).toBe(404);
    expect((await req("DELETE", "/api/alerts/rules/api-orders", { token: ADMIN })).status).toBe(404);
  });

  it("answers hostile input with 4xx and a clear message", async () => {
    const post = async (body: string, type?: string) => {
      const r = await req("POST", "/api/alerts/rules", { token: ADMIN, body, type });
      return { status: r.status, error: ((await r.json()) as any).error };
    };
    expect(await post("{nope")).toMatchObject({ status: 400, error: { code: "malformed_json" } });
    expect(await post(JSON.stringify({ ...rule, percent: "lots" }))).toEqual({ status: 400, error: { code: "invalid_rule", message: 'percent must be a finite number, got "lots"' } });
    const unknown = await post(JSON.stringify({ ...rule, metric: "profit" }));
    expect(unknown.status).toBe(400);
    expect(unknown.error.message).toStartWith('metric is not a known metric, got "profit"');
    expect(await post(JSON.stringify([rule]))).toMatchObject({ status: 400, error: { message: "a rule must be a JSON object, got an array" } });
    expect(await post(JSON.stringify({ ...rule, name: "x".repeat(70_000) }))).toMatchObject({ status: 413, error: { code: "body_too_large" } });
    expect(await post(JSON.stringify({ ...rule, labels: { a: "x".repeat(300) } }))).toMatchObject({ status: 400 });
    expect(await post("id=x", "application/x-www-form-urlencoded")).toMatchObject({ status: 415 });
    expect(await post(JSON.stringify({ ...rule, id: "busy" }))).toMatchObject({ status: 409, error: { code: "rule_exists" } });
    const fileRule = await req("PUT", "/api/alerts/rules/busy", { token: ADMIN, body: JSON.stringify({ ...rule, id: "busy" }) });
    expect(fileRule.status).toBe(409);
    expect((await getJ("/api/alerts/history?limit=0")).status).toBe(400);
  });

  it("keeps API rules across a restart of the alerting service", async () => {
    expect((await req("POST", "/api/alerts/rules", { token: ADMIN, body: JSON.stringify({ ...rule, id: "kept" }) })).status).toBe(201);
    await alerts.stop();
    alerts = startAlerting(t.engine, loadAlertRules(t.engine.config), { pollMs: 50 });
    app = createApp(t.engine, { plugins: [dashboardPlugin(t.engine), alerts.plugin] });
    const list = await getJ("/api/alerts/rules");
    expect(list.body.items.map((r: { id: string }) => r.id)).toEqual(["busy", "flaky", "kept"]);
    // the history and the evaluation position survive too: nothing re-fires for windows already evaluated
    expect((await getJ("/api/alerts/rules/busy")).body.state.lastWindowEnd).toBe(new Date(A + 4 * MIN).toISOString());
    // busy and flaky each fired (window A) and resolved (window C)
    expect((await getJ("/api/alerts/history")).body.items.length).toBe(4);
  });
});

describe("Alerts view", () => {
  it("renders firing and resolved history and the rules, and the nav links to it", async () => {
    const part = await req("GET", "/ui/alerts", { token: READ });
    expect(part.status).toBe(200);
    const html = await part.text();
    expect(html).toContain('<main id="view" class="view" data-view="alerts"');
    expect(html).toContain("<h2>Active alerts (0)</h2>");
    expect(html.match(/<tr class="alert resolved"/g)?.length).toBe(2);
    expect(html.match(/<tr class="alert firing"/g)?.length).toBe(2);
    expect(html).toContain("<td>Busy minute</td>");
    expect(html).toContain('hx-get="/ui/alerts/body" hx-trigger="every 5s"');
    const page = await (await req("GET", "/alerts", { token: READ })).text();
    expect(page).toContain("<title>rtae · Alerts</title>");
    expect(page).toContain('aria-current="page">Alerts</a>');
    const home = await (await req("GET", "/", { token: READ })).text();
    expect(home).toContain('href="/alerts" hx-get="/ui/alerts"');
    expect((await req("GET", "/ui/alerts")).status).toBe(401);
  });

  it("is documented in the OpenAPI spec", async () => {
    const spec = (await getJ("/swagger/json")).body;
    for (const [p, m] of [["/api/alerts", "get"], ["/api/alerts/history", "get"], ["/api/alerts/rules", "get"], ["/api/alerts/rules", "post"], ["/api/alerts/rules/{id}", "put"], ["/api/alerts/rules/{id}", "delete"], ["/alerts", "get"]])
      expect([p, m, typeof spec.paths[p]?.[m]?.summary]).toEqual([p, m, "string"]);
  });
});

describe("rtae serve --alert-rules", () => {
  it("refuses to start with a broken rules file, naming the option, the rule and the field", async () => {
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify([{ id: "x", kind: "threshold", metric: "events.total", op: ">", value: 1, window: "2m" }]));
    const r = await runRtae(["serve", "--data-dir", join(dir, "bad-data"), "--alert-rules", bad]);
    expect(r.code).toBe(2);
    expect(r.output).toContain(`rtae: --alert-rules (RTAE_ALERT_RULES): ${bad}: rules[0] ("x"): window must be one of 1m, 5m, 1h, got "2m"`);
  }, 60_000);

  it("serves the file's rules and stops cleanly", async () => {
    const p = spawnRtae(["--alert-rules", rulesFile, "--alert-allow-private", "--partitions", "1", "--workers", "1"]);
    try {
      await p.ready(60_000);
      const res = await fetch(`${p.url}/api/alerts/rules`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as any).items.map((r: { id: string }) => r.id)).toEqual(["busy", "flaky"]);
      expect(await p.stop(30_000)).toBe(0);
    } finally {
      p.removeDataDir();
    }
  }, 90_000);
});

describe("webhook targets without --alert-allow-private (SSRF guard)", () => {
  // standalone alerting services over a crafted source (10 events in every window) and an injected resolver,
  // so a name can resolve to a public address when the rule is saved and to 127.0.0.1 when it fires
  const names: Record<string, string[]> = {};
  const looked: string[] = [];
  const lookup: Lookup = async (host) => {
    looked.push(host);
    const list = names[host];
    if (list === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
    return list.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  const ten: WindowSample = {
    summary: { events: { total: 10, page_view: 10 }, revenue: 0, orders: 0, units: 0, aov: 0, uniqueUsers: 0, uniqueSessions: 0, late: { merged: 0, dropped: 0 }, duplicates: 0 },
    funnel: null,
  };
  const T0 = Math.floor(Date.now() / MIN) * MIN - 60 * MIN;
  const services: Array<{ alerting: Alerting; dir: string }> = [];
  function service(allowPrivate: boolean) {
    let wm = -Infinity;
    const sdir = tempDir("rtae-alerts-guard-");
    const alerting = createAlerting({
      dataDir: sdir, fileRules: [], defaultWebhookUrl: null, source: { read: async () => ten }, watermark: () => wm, pollMs: 0,
      allowPrivateWebhooks: allowPrivate, webhook: { lookup, baseDelayMs: 10, maxAttempts: 3, timeoutMs: 2000 },
    });
    services.push({ alerting, dir: sdir });
    const plugin = alertsPlugin(alerting, { config: { ingestKeys: [], readTokens: [], adminToken: ADMIN, currency: "USD" } });
    const send = async (method: string, path: string, body: unknown) => {
      const r = await plugin.handle(new Request(`http://rtae.test${path}`, { method, headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" }, body: JSON.stringify(body) }));
      return { status: r.status, body: (await r.json()) as any };
    };
    return {
      alerting,
      create: (rule: unknown) => send("POST", "/api/alerts/rules", rule),
      replace: (id: string, rule: unknown) => send("PUT", `/api/alerts/rules/${id}`, rule),
      /** the rule sees the stream, then window [T0, T0 + 1m) closes: a threshold rule above 5 fires */
      async fire() {
        wm = T0 + 30_000;
        await alerting.tick();
        wm = T0 + MIN + 30_000;
        await alerting.tick();
        await alerting.idle();
      },
    };
  }
  afterAll(async () => {
    for (const s of services) {
      await s.alerting.stop();
      rmSync(s.dir, { recursive: true, force: true });
    }
  });
  const rule = (id: string, webhook: string) => ({ id, kind: "threshold", metric: "events.total", op: ">", value: 5, window: "1m", webhook });

  it("refuses every non-public address class with a 400 naming the rule and the reason, on create and update", async () => {
    const guard = service(false);
    names["rebound.example.com"] = ["127.0.0.1"];
    const cases: Array<[string, string]> = [
      ["http://127.0.0.1:9/hook", "127.0.0.1, a loopback address"],
      ["http://[::1]:9/hook", "::1, a loopback address"],
      ["http://169.254.169.254/latest/meta-data/", "169.254.169.254, a link-local address (cloud instance metadata)"],
      ["http://[fe80::1]/hook", "fe80::1, a link-local address"],
      ["http://10.1.2.3/hook", "10.1.2.3, a private network address"],
      ["http://172.20.0.1/hook", "172.20.0.1, a private network address"],
      ["http://192.168.0.10/hook", "192.168.0.10, a private network address"],
      ["http://[fd12:3456::1]/hook", "fd12:3456::1, a private network address"],
      ["http://0.0.0.0:9/hook", "0.0.0.0, an unspecified address"],
      ["http://[::]:9/hook", "::, an unspecified address"],
      ["http://[::ffff:127.0.0.1]/hook", "::ffff:7f00:1 (IPv4 127.0.0.1), a loopback address"],
      ["http://2130706433/hook", "127.0.0.1, a loopback address"],
      ["http://0x7f.1/hook", "127.0.0.1, a loopback address"],
      ["http://0177.0.0.1/hook", "127.0.0.1, a loopback address"],
      ["http://localhost:9/hook", "localhost, the local host"],
      ["https://hooks.localhost/hook", "hooks.localhost, the local host"],
      ["https://rebound.example.com/hook", "rebound.example.com resolves to 127.0.0.1, a loopback address"],
    ];
    for (const [i, [url, reason]] of cases.entries()) {
      const r = await guard.create(rule(`r${i}`, url));
      expect([url, r.status, r.body.error?.code]).toEqual([url, 400, "invalid_rule"]);
      expect(r.body.error.message).toStartWith(`webhook.url of rule "r${i}"`);
      expect(r.body.error.message).toContain(reason);
      expect(r.body.error.message).toContain("--alert-allow-private");
    }
    expect((await guard.create(rule("scheme", "ftp://hooks.example.com/x"))).body.error.message).toBe("webhook.url is not an http:// or https:// URL");
    expect(guard.alerting.rules()).toEqual([]);
    // a public receiver is fine, and cannot be moved to a private one by an update
    names["hooks.example.com"] = ["93.184.215.14"];
    expect((await guard.create(rule("public", "https://hooks.example.com/rtae"))).status).toBe(201);
    const moved = await guard.replace("public", rule("public", "http://169.254.169.254/"));
    expect(moved.status).toBe(400);
    expect(moved.body.error.message).toContain("169.254.169.254, a link-local address");
    expect(guard.alerting.rule("public")!.rule.webhook).toEqual({ url: "https://hooks.example.com/rtae" });
  });

  it("delivers nothing to a name that resolves to 127.0.0.1 at delivery time (DNS rebinding)", async () => {
    const target = startReceiver();
    try {
      const port = new URL(target.url).port;
      // control: allowed, the same receiver gets the firing through the real resolver's localhost
      const open = service(true);
      expect((await open.create(rule("open", `http://localhost:${port}/hook`))).status).toBe(201);
      await open.fire();
      expect(target.attempts.map((a) => `${a.body.rule.id}:${a.body.status}`)).toEqual(["open:firing"]);

      const guard = service(false);
      names["flip.example.com"] = ["93.184.215.14"]; // public when the rule is saved
      expect((await guard.create(rule("flip", `http://flip.example.com:${port}/hook`))).status).toBe(201);
      names["flip.example.com"] = ["127.0.0.1"]; // rebound before it fires
      looked.length = 0;
      await guard.fire();
      expect(looked).toEqual(["flip.example.com"]); // resolved at delivery, refused, not retried
      expect(target.attempts.length).toBe(1); // only the control's
      const h = guard.alerting.history(10);
      expect(h.map((e) => `${e.ruleId}:${e.status}:${e.delivery}`)).toEqual(["flip:firing:failed"]);
    } finally {
      target.stop();
    }
  });

  it("never follows a redirect, even where private targets are allowed", async () => {
    let hits = 0;
    const redirecting = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () => {
        hits++;
        return new Response(null, { status: 307, headers: { location: "http://169.254.169.254/latest/meta-data/" } });
      },
    });
    try {
      const open = service(true);
      expect((await open.create(rule("redirected", `http://127.0.0.1:${redirecting.port}/hook`))).status).toBe(201);
      await open.fire();
      expect(hits).toBe(1); // one attempt: a redirect is a final answer, not followed and not retried
      expect(open.alerting.history(10).map((e) => `${e.ruleId}:${e.delivery}`)).toEqual(["redirected:failed"]);
    } finally {
      redirecting.stop(true);
    }
  });

  it("makes rtae serve refuse --alert-webhook-url and rules files that target private addresses", async () => {
    const d = tempDir("rtae-alerts-guard-");
    try {
      const hook = await runRtae(["serve", "--data-dir", join(d, "data"), "--alert-webhook-url", "http://169.254.169.254/hook?token=sekrit"]);
      expect(hook.code).toBe(2);
      expect(hook.output).toContain("rtae: --alert-webhook-url (RTAE_ALERT_WEBHOOK_URL): targets 169.254.169.254, a link-local address (cloud instance metadata);");
      expect(hook.output).not.toContain("sekrit");
      const file = join(d, "rules.json");
      writeFileSync(file, JSON.stringify([rule("local", "http://[::ffff:127.0.0.1]:9/hook")]));
      const rules = await runRtae(["serve", "--data-dir", join(d, "data"), "--alert-rules", file]);
      expect(rules.code).toBe(2);
      expect(rules.output).toContain(`rtae: --alert-rules (RTAE_ALERT_RULES): ${file}: rules[0] ("local"): webhook.url targets ::ffff:7f00:1 (IPv4 127.0.0.1), a loopback address;`);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  }, 60_000);
});
