// `rtae serve` against Kafka, Cassandra or Redis addresses where nothing listens: one clear line naming the
// service, the address and the option to fix, a non-zero exit within a bound, and no stack trace or driver noise.

import { afterAll, describe, expect, it } from "bun:test";
import { rmSync } from "node:fs";
import { StartError } from "../../src/errors.ts";
import { freePort, startTestEngine, tempDir } from "../helpers.ts";
import { runRtae } from "../rtae-process.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Starts serve with `args` on a fresh data dir and a free port; returns the exit code, output and duration. */
async function serve(args: string[]) {
  const dir = tempDir("rtae-unreachable-");
  dirs.push(dir);
  const started = Date.now();
  const r = await runRtae(["serve", "--host", "127.0.0.1", "--port", String(freePort()), "--data-dir", dir, "--partitions", "1", "--workers", "1", ...args], {
    timeoutMs: 60_000,
  });
  return { ...r, ms: Date.now() - started };
}

function expectOneClearLine(r: { code: number; output: string; ms: number }, line: string) {
  expect(r.output).not.toContain("    at "); // no stack frame
  expect(r.output.trim()).toBe(line); // and nothing else: no driver retries, no JSON log lines
  expect(r.code).toBe(1);
  expect(r.ms).toBeLessThan(30_000);
}

describe("rtae serve with a service unreachable at start", () => {
  it("Cassandra: names the contact points and --cassandra-contact-points", async () => {
    const port = freePort(); // bound and released: connections are refused
    const r = await serve(["--cassandra-contact-points", `127.0.0.1:${port}`]);
    expectOneClearLine(r, `rtae: cannot start: Cassandra at 127.0.0.1:${port} is unreachable (connect ECONNREFUSED); start it or fix --cassandra-contact-points`);
  }, 60_000);

  it("Kafka: names the brokers and --kafka-brokers", async () => {
    const port = freePort();
    const r = await serve(["--kafka-brokers", `127.0.0.1:${port}`]);
    expectOneClearLine(r, `rtae: cannot start: Kafka at 127.0.0.1:${port} is unreachable (connect ECONNREFUSED); start it or fix --kafka-brokers`);
  }, 60_000);

  it("Redis: names the address without the URL's password, and --redis-url", async () => {
    const port = freePort();
    const r = await serve(["--redis-url", `redis://rtae:s3cret-pass@127.0.0.1:${port}/0`]);
    expectOneClearLine(r, `rtae: cannot start: Redis at 127.0.0.1:${port} is unreachable (connect ECONNREFUSED); start it or fix --redis-url`);
    expect(r.output).not.toContain("s3cret-pass");
  }, 60_000);

  it("all three: the first one tried (Kafka) is reported, on one line", async () => {
    const [k, c, rd] = [freePort(), freePort(), freePort()];
    const r = await serve(["--kafka-brokers", `127.0.0.1:${k}`, "--cassandra-contact-points", `127.0.0.1:${c}`, "--redis-url", `redis://127.0.0.1:${rd}`]);
    expectOneClearLine(r, `rtae: cannot start: Kafka at 127.0.0.1:${k} is unreachable (connect ECONNREFUSED); start it or fix --kafka-brokers`);
  }, 60_000);

  it("in process: startEngine throws a StartError and leaves the data dir free for the next start", async () => {
    const dir = tempDir("rtae-unreachable-");
    dirs.push(dir);
    const port = freePort();
    let err: unknown = null;
    await startTestEngine(["--cassandra-contact-points", `127.0.0.1:${port}`], dir).catch((e: unknown) => (err = e));
    expect(err).toBeInstanceOf(StartError);
    expect(err).toMatchObject({ code: "service_unavailable", service: "Cassandra", retriable: true });
    const t = await startTestEngine([], dir); // what the failed start opened (lock, log) is closed again
    expect(t.engine.health().status).toBe("ready");
    await t.stop(false);
  }, 60_000);
});
