// Packaging checked as far as a machine without a Docker engine or a Kubernetes API allows: the Dockerfile,
// docker-compose.yml and k8s/ are parsed and cross-checked against rtae itself (its option table and
// configuration parser, its shutdown bound, its routes on a running engine), and the scripts are syntax-checked
// and run against a real rtae.

import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listOptions, parseCli } from "../../src/config.ts";
import { metricsPlugin } from "../../src/server/metrics.ts";
import { createApp } from "../../src/server/app.ts";
import { startTestEngine } from "../helpers.ts";

const ROOT = join(import.meta.dir, "../..");
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");
const yaml = (p: string): any => Bun.YAML.parse(read(p));
const RTAE_ENV = new Set(listOptions().map((o) => o.env));
// the configuration parser picks worker defaults from the CPU count: a fixed one keeps warnings deterministic
const CTX = { cpuCount: 4 };

// ------------------------------------------------------------------------------------------- Dockerfile

interface Instr { op: string; args: string }
/** Dockerfile instructions per stage: continuation lines joined, comments and parser directives dropped. */
function dockerStages(text: string): Instr[][] {
  const logical = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
  const stages: Instr[][] = [];
  for (const line of logical) {
    const m = /^([A-Za-z]+)\s+(.*)$/.exec(line);
    if (m === null) throw new Error(`Dockerfile line is not an instruction: ${line}`);
    const instr = { op: m[1].toUpperCase(), args: m[2].replace(/\s+/g, " ") };
    if (instr.op === "FROM") stages.push([]);
    if (stages.length === 0) throw new Error(`Dockerfile instruction before FROM: ${line}`);
    stages.at(-1)!.push(instr);
  }
  return stages;
}
/** ENV instructions in `k=v k2=v2` form. */
function dockerEnv(stage: Instr[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of stage.filter((x) => x.op === "ENV")) for (const m of i.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)) env[m[1]] = m[2].replace(/^"|"$/g, "");
  return env;
}

const stages = dockerStages(read("Dockerfile"));
const runtime = stages.at(-1)!;
const imageEnv = dockerEnv(runtime);
/** The settings an rtae container sees: the image's ENV, then the orchestrator's. */
function rtaeConfig(command: string, env: Record<string, string>) {
  return parseCli([command], { ...imageEnv, ...env }, CTX);
}
// rtae's own bound on a graceful stop, read from the source so the manifests follow it
const SHUTDOWN_BOUND_S = Number(/shutdown took too long[\s\S]{0,80}?\},\s*([\d_]+)\)/.exec(read("src/main.ts"))![1].replace(/_/g, "")) / 1000;

describe("Dockerfile", () => {
  it("builds with npm ci and npm run build in a node stage and ships only dist/rtae in a second stage", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const build = stages[0];
    expect(build[0].args).toMatch(/^node:20-bookworm-slim AS build$/i);
    const runs = build.filter((i) => i.op === "RUN").map((i) => i.args).join("\n");
    expect(runs).toContain("npm ci");
    expect(runs).toContain("npm run build");
    const copies = runtime.filter((i) => i.op === "COPY");
    expect(copies.length).toBe(1);
    expect(copies[0].args).toMatch(/--from=build\b.*\/src\/dist\/rtae \/usr\/local\/bin\/rtae$/);
    expect(build.some((i) => i.op === "WORKDIR" && i.args === "/src")).toBe(true);
  });

  it("copies into the build context only files that exist and .dockerignore lets through", () => {
    const ignore = read(".dockerignore").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
    for (const copy of stages[0].filter((i) => i.op === "COPY" && !i.args.includes("--from"))) {
      const sources = copy.args.split(" ").filter((a) => !a.startsWith("--")).slice(0, -1);
      for (const s of sources) {
        expect(existsSync(join(ROOT, s))).toBe(true);
        expect(ignore.filter((p) => s === p || s.startsWith(`${p}/`))).toEqual([]);
      }
    }
  });

  it("runs as a non-root user with a health check, the data volume, port and entry point rtae expects", () => {
    const one = (op: string) => runtime.filter((i) => i.op === op).map((i) => i.args);
    const user = one("USER").at(-1)!;
    expect(user).toBeDefined();
    expect(user.split(":")[0]).not.toMatch(/^(root|0)$/);
    expect(one("HEALTHCHECK").join(" ")).toMatch(/CMD .*\/health/);
    expect(one("VOLUME")).toEqual(["/data"]);
    expect(one("ENTRYPOINT")).toEqual(['["/usr/local/bin/rtae"]']);
    expect(one("CMD")).toEqual(['["serve"]']);
    expect(imageEnv.RTAE_DATA_DIR).toBe("/data");
    for (const k of Object.keys(imageEnv).filter((k) => k.startsWith("RTAE_"))) expect(RTAE_ENV.has(k)).toBe(true);
    const { config, warnings } = rtaeConfig("serve", {});
    expect(warnings).toEqual([]);
    expect(one("EXPOSE")).toEqual([String(config.port)]);
  });
});

// ------------------------------------------------------------------------------------------- compose

const compose = yaml("docker-compose.yml");
const services: Record<string, any> = compose.services;
const isRtae = (s: any) => s.image === "rtae:local" || s.build !== undefined;
/** `${VAR:-default}` as compose would see it with VAR unset. */
const interpolate = (v: unknown) => String(v).replace(/\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}/g, (_, d: string | undefined) => d ?? "");
const composeEnv = (s: any): Record<string, string> =>
  Object.fromEntries(Object.entries((s.environment ?? {}) as Record<string, unknown>).map(([k, v]) => [k, interpolate(v)]));

describe("docker-compose.yml", () => {
  it("has Kafka, Cassandra, Redis, the migration, two rtae instances, Prometheus and Grafana", () => {
    expect(Object.keys(services).sort()).toEqual(["cassandra", "grafana", "kafka", "prometheus", "redis", "rtae-a", "rtae-b", "rtae-migrate"]);
    expect(services.cassandra.image).toMatch(/^cassandra:5\.0/);
    expect(services.redis.image).toMatch(/^redis:7/);
    expect(services.kafka.image).toMatch(/^apache\/kafka:/);
    expect(services.kafka.environment.KAFKA_PROCESS_ROLES).toBe("broker,controller");
  });

  it("gives rtae only RTAE_* variables it knows, with values its parser accepts", () => {
    for (const [name, s] of Object.entries(services).filter(([, s]) => isRtae(s))) {
      const env = composeEnv(s);
      const unknown = Object.keys(env).filter((k) => k.startsWith("RTAE_") && !RTAE_ENV.has(k));
      expect({ name, unknown }).toEqual({ name, unknown: [] });
      const { command, config, warnings } = rtaeConfig(s.command[0], env);
      expect({ name, command, warnings }).toEqual({ name, command: s.command[0], warnings: [] });
      if (command === "serve") {
        expect(config.kafkaBrokers).not.toBeNull();
        expect(config.cassandraContactPoints).not.toBeNull();
        expect(config.redisUrl).not.toBeNull();
        // the instances share one topic, group, keyspace and prefix, and the migration's keyspace
        expect(config.cassandraKeyspace).toBe(composeEnv(services["rtae-migrate"]).RTAE_CASSANDRA_KEYSPACE);
        // published container port, health check port and rtae's port agree
        for (const p of s.ports) expect(String(p).split(":").at(-1)).toBe(String(config.port));
        expect(s.healthcheck.test.join(" ")).toContain(`:${config.port}/`);
        expect(parseDuration(s.stop_grace_period)).toBeGreaterThan(SHUTDOWN_BOUND_S);
      }
    }
    expect(composeEnv(services["rtae-a"])).toEqual(composeEnv(services["rtae-b"]));
  });

  it("has a health check on every long-running service and depends only on healthy or completed services", () => {
    for (const [name, s] of Object.entries(services)) {
      const oneShot = s.restart === "no";
      if (!oneShot) expect({ name, healthcheck: s.healthcheck?.test !== undefined && s.healthcheck?.disable !== true }).toEqual({ name, healthcheck: true });
      for (const [target, dep] of Object.entries((s.depends_on ?? {}) as Record<string, { condition: string }>)) {
        expect(services[target]).toBeDefined();
        if (dep.condition === "service_healthy") expect(services[target].healthcheck?.test).toBeDefined();
        else expect({ name, target, condition: dep.condition, oneShot: services[target].restart }).toEqual({ name, target, condition: "service_completed_successfully", oneShot: "no" });
      }
    }
  });

  it("declares every named volume and mounts monitoring files that exist", () => {
    const declared = new Set(Object.keys(compose.volumes ?? {}));
    const binds: string[] = [];
    for (const s of Object.values(services)) {
      for (const v of (s.volumes ?? []) as string[]) {
        const src = v.split(":")[0];
        if (src.startsWith(".") || src.startsWith("/")) binds.push(src);
        else expect(declared.has(src)).toBe(true);
      }
    }
    expect(binds.length).toBeGreaterThan(0);
    if (!existsSync(join(ROOT, "monitoring"))) {
      console.warn("packaging: monitoring/ is not in the tree yet; the compose bind mounts are not checked");
      return;
    }
    for (const b of binds) expect({ bind: b, exists: existsSync(join(ROOT, b)) }).toEqual({ bind: b, exists: true });
  });

  it("points Prometheus at the rtae services and mounted rule files, and Grafana at mounted dashboards", () => {
    const mounts = (svc: string) => ((services[svc].volumes ?? []) as string[]).map((v) => v.split(":")).map(([src, dst]) => ({ src, dst }));
    if (!existsSync(join(ROOT, "monitoring/prometheus.yml"))) {
      console.warn("packaging: monitoring/prometheus.yml is not in the tree yet; scrape targets are not checked");
      return;
    }
    const prom = yaml("monitoring/prometheus.yml");
    const promMounts = mounts("prometheus");
    const configDir = promMounts.find((m) => m.src === "./monitoring/prometheus.yml")!.dst.replace(/\/[^/]+$/, "");
    for (const rule of (prom.rule_files ?? []) as string[]) {
      const inContainer = rule.startsWith("/") ? rule : `${configDir}/${rule}`;
      expect({ rule, mounted: promMounts.some((m) => m.dst === inContainer && existsSync(join(ROOT, m.src))) }).toEqual({ rule, mounted: true });
    }
    const targets = (prom.scrape_configs as any[]).filter((c) => c.static_configs).flatMap((c) => c.static_configs.flatMap((s: any) => s.targets as string[]));
    const rtaeTargets = Object.entries(services).filter(([, s]) => isRtae(s) && s.command[0] === "serve").map(([n, s]) => `${n}:${rtaeConfig("serve", composeEnv(s)).config.port}`);
    expect(targets.sort()).toEqual(rtaeTargets.sort());

    const provisioning = join(ROOT, "monitoring/grafana/provisioning");
    if (!existsSync(provisioning)) return console.warn("packaging: monitoring/grafana/provisioning is not in the tree yet");
    const grafanaDst = mounts("grafana").map((m) => m.dst);
    for (const sub of ["dashboards", "datasources"]) {
      const dir = join(provisioning, sub);
      if (!existsSync(dir)) continue;
      for (const f of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))) {
        const doc: any = Bun.YAML.parse(readFileSync(join(dir, f), "utf8"));
        for (const p of doc.providers ?? []) expect({ f, path: p.options?.path, mounted: grafanaDst.some((d) => p.options?.path?.startsWith(d)) }).toEqual({ f, path: p.options?.path, mounted: true });
        for (const d of doc.datasources ?? []) if (d.url) expect(services[new URL(d.url).hostname]).toBeDefined();
      }
    }
  });
});

function parseDuration(s: string): number {
  const m = /^(\d+)(s|m)$/.exec(s);
  if (m === null) throw new Error(`unexpected duration ${s}`);
  return Number(m[1]) * (m[2] === "m" ? 60 : 1);
}

// ------------------------------------------------------------------------------------------- Kubernetes

const k8sFiles = readdirSync(join(ROOT, "k8s")).filter((f) => f.endsWith(".yaml"));
const k8s = Object.fromEntries(k8sFiles.map((f) => [f, yaml(`k8s/${f}`)]));
const byKind = (kind: string) => Object.values(k8s).filter((d: any) => d.kind === kind) as any[];
const [cm] = byKind("ConfigMap");
const [secret] = byKind("Secret");
const [deploy] = byKind("Deployment");
const [svc] = byKind("Service");
const [hpa] = byKind("HorizontalPodAutoscaler");
const [pdb] = byKind("PodDisruptionBudget");
const pod = deploy.spec.template.spec;
const container = pod.containers[0];
const k8sEnv: Record<string, string> = {
  ...cm.data,
  ...secret.stringData,
  ...Object.fromEntries((container.env ?? []).filter((e: any) => e.value !== undefined).map((e: any) => [e.name, e.value])),
};
const k8sConfig = rtaeConfig(container.args[0], k8sEnv);

describe("k8s manifests", () => {
  it("parse, carry no namespace, and are all listed in kustomization.yaml", () => {
    expect(k8sFiles.length).toBe(7);
    const listed = k8s["kustomization.yaml"].resources as string[];
    expect(listed.sort()).toEqual(k8sFiles.filter((f) => f !== "kustomization.yaml").sort());
    for (const d of Object.values(k8s) as any[]) expect(d.metadata?.namespace).toBeUndefined();
  });

  it("configure rtae only with RTAE_* variables it knows, and its parser accepts the ConfigMap with the Secret", () => {
    const names = [...Object.keys(cm.data), ...Object.keys(secret.stringData), ...(container.env ?? []).map((e: any) => e.name)];
    expect(names.filter((n) => !RTAE_ENV.has(n))).toEqual([]);
    expect(k8sConfig.command).toBe("serve");
    expect(k8sConfig.warnings).toEqual([]);
    expect(k8sConfig.config.kafkaBrokers).not.toBeNull();
    expect(k8sConfig.config.cassandraContactPoints).not.toBeNull();
    // secrets belong in the Secret, not the ConfigMap
    const secretEnv = new Set(listOptions().filter((o) => o.secret).map((o) => o.env));
    expect(Object.keys(cm.data).filter((k) => secretEnv.has(k) || k === "RTAE_REDIS_URL")).toEqual([]);
    for (const v of Object.values(secret.stringData) as string[]) if (!v.startsWith("redis")) expect(v).toContain("PLACEHOLDER");
    const refs = container.envFrom.map((e: any) => e.configMapRef?.name ?? e.secretRef?.name).sort();
    expect(refs).toEqual([cm.metadata.name, secret.metadata.name].sort());
  });

  it("agree on the port: container, Service target, probes and RTAE_PORT", () => {
    const port = container.ports.find((p: any) => p.name === "http");
    expect(port.containerPort).toBe(k8sConfig.config.port);
    const target = svc.spec.ports[0].targetPort;
    expect(typeof target === "string" ? container.ports.find((p: any) => p.name === target)?.containerPort : target).toBe(k8sConfig.config.port);
    for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) expect([probe, container[probe].httpGet.port]).toEqual([probe, "http"]);
    expect(container.livenessProbe.httpGet.path).toBe("/health");
    expect(container.readinessProbe.httpGet.path).toBe("/ready");
  });

  it("select the Deployment's pods from the Service, HPA and PDB, within the partition count", () => {
    const labels = deploy.spec.template.metadata.labels;
    expect(deploy.spec.selector.matchLabels).toEqual(Object.fromEntries(Object.keys(deploy.spec.selector.matchLabels).map((k) => [k, labels[k]])));
    expect(svc.spec.selector).toEqual(deploy.spec.selector.matchLabels);
    expect(pdb.spec.selector.matchLabels).toEqual(deploy.spec.selector.matchLabels);
    expect(pdb.spec.minAvailable).toBe(1);
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: deploy.metadata.name });
    expect(deploy.spec.replicas).toBe(2);
    expect(hpa.spec.minReplicas).toBe(2);
    // every Worker of every pod is a consumer-group member; more members than partitions would idle
    expect(hpa.spec.maxReplicas * k8sConfig.config.workers).toBeLessThanOrEqual(k8sConfig.config.partitions);
    expect(container.resources.requests.cpu).toBeDefined();
  });

  it("run non-root on a read-only root with /data on an emptyDir and a grace period above rtae's shutdown bound", () => {
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(container.securityContext.allowPrivilegeEscalation).toBe(false);
    const dataMount = container.volumeMounts.find((m: any) => m.mountPath === k8sConfig.config.dataDir);
    expect(pod.volumes.find((v: any) => v.name === dataMount?.name)?.emptyDir).toBeDefined();
    const preStop = Number(container.lifecycle.preStop.exec.command[1]);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(SHUTDOWN_BOUND_S + preStop);
  });

  it.skipIf(Bun.which("kubectl") === null)("render with kubectl kustomize (offline; no API server for schema checks)", () => {
    const r = Bun.spawnSync(["kubectl", "kustomize", join(ROOT, "k8s")], { stderr: "pipe" });
    expect(r.exitCode).toBe(0);
    const kinds = (Bun.YAML.parse(r.stdout.toString()) as any[]).map((d) => d.kind).sort();
    expect(kinds).toEqual(["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Secret", "Service"]);
  });
});

// ------------------------------------------------------------------------------------------- a running rtae

describe("against a running rtae", () => {
  let t: Awaited<ReturnType<typeof startTestEngine>>;
  let server: ReturnType<typeof Bun.serve>;
  beforeAll(async () => {
    t = await startTestEngine();
    const app = createApp(t.engine, { plugins: [metricsPlugin(t.engine)] });
    server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (r) => app.handle(r) });
  });
  afterAll(async () => {
    server?.stop(true);
    await t?.stop();
  });

  it("answers 200 on every path a probe or health check uses, and 404 on one it does not serve", async () => {
    const paths = new Set<string>();
    for (const p of ["startupProbe", "livenessProbe", "readinessProbe"]) paths.add(container[p].httpGet.path);
    for (const s of Object.values(services).filter((s) => isRtae(s) && s.healthcheck?.test)) paths.add(new URL(s.healthcheck.test.find((a: string) => a.startsWith("http"))).pathname);
    for (const h of runtime.filter((i) => i.op === "HEALTHCHECK")) paths.add(/(\/[a-z]+)"/.exec(h.args)![1]);
    expect([...paths].sort()).toEqual(["/health", "/ready"]);
    for (const p of [...paths, "/healthz"]) {
      const res = await t.app.handle(new Request(`http://rtae.test${p}`));
      expect([p, res.status]).toEqual([p, p === "/healthz" ? 404 : 200]);
    }
  });

  it("health-check.sh passes against it and fails against a closed port", async () => {
    // async spawn: the server answering the script runs on this thread
    const run = async (url: string) => {
      const p = Bun.spawn(["bash", join(ROOT, "scripts/health-check.sh"), url], { env: { ...process.env, TIMEOUT_S: "5" }, stdout: "pipe" });
      const out = await new Response(p.stdout).text();
      return { out, code: await p.exited };
    };
    const ok = await run(`http://127.0.0.1:${server.port}`);
    expect(ok.out).toMatch(/^health +ok .*\nready +ok .*\nmetrics +ok .*\n$/);
    expect(ok.code).toBe(0);
    server.stop(true);
    const closed = await run(`http://127.0.0.1:${server.port}`);
    expect(closed.out.match(/ FAIL /g)?.length).toBe(3);
    expect(closed.code).toBe(1);
  }, 30_000);
});

// ------------------------------------------------------------------------------------------- scripts

describe("scripts", () => {
  const scripts = readdirSync(join(ROOT, "scripts")).filter((f) => f.endsWith(".sh"));

  it("are valid bash (bash -n)", () => {
    expect(scripts).toEqual(expect.arrayContaining(["e2e.sh", "health-check.sh", "perf-validate.sh"]));
    for (const s of scripts) {
      const r = Bun.spawnSync(["bash", "-n", join(ROOT, "scripts", s)], { stderr: "pipe" });
      expect([s, r.exitCode, r.stderr.toString()]).toEqual([s, 0, ""]);
    }
  });

  it("perf-validate.sh reports met and missed targets from a results file, and --strict fails on a miss", () => {
    const dir = mkdtempSync(join(tmpdir(), "rtae-perf-"));
    try {
      const file = join(dir, "latest.json");
      writeFileSync(file, JSON.stringify({
        machine: { date: "2026-01-01T00:00:00Z", cpuModel: "test", cores: 2 },
        window: { medianRecordsPerSec: 6e6, contention: { foreignShare: 0 } },
        http: { ingest: { acceptedPerSec: 250e3, rejected: 0 }, memory: { rssSettledMB: 140, stable: true } },
      }));
      const run = (...args: string[]) =>
        Bun.spawnSync(["bash", join(ROOT, "scripts/perf-validate.sh"), "--no-run", "--json", file, ...args], { env: { ...process.env, PERF_SKIP_READY: "1" }, stderr: "pipe" });
      const report = run();
      const out = report.stdout.toString();
      expect(report.exitCode).toBe(0);
      expect(out).toMatch(/^met +window core/m);
      expect(out).toMatch(/^MISSED +HTTP ingest/m);
      expect(out).toMatch(/^met +resident memory .* goal reached/m);
      expect(out).toMatch(/^NOT MEASURED +freshness/m);
      expect(out).toContain("2 met, 1 missed, 5 not measured");
      expect(run("--strict").exitCode).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
