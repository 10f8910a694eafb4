// Circuit breaker state machine with an injected clock: no timers, no sleeps.

import { describe, expect, it } from "bun:test";
import { createCircuitBreaker, type BreakerState } from "./circuit-breaker.ts";

function setup(halfOpenMax?: number) {
  let now = 1_000;
  const breaker = createCircuitBreaker({ failureThreshold: 3, resetTimeoutMs: 500, halfOpenMax, clock: () => now });
  const changes: string[] = [];
  breaker.onStateChange((to, from) => changes.push(`${from}->${to}`));
  let calls = 0;
  const ok = () => breaker.run(async () => (calls++, "real"), () => "fallback");
  const bad = () => breaker.run(async () => { calls++; throw new Error("down"); }, () => "fallback");
  return { breaker, changes, ok, bad, advance: (ms: number) => (now += ms), calls: () => calls };
}

describe("circuit breaker", () => {
  it("answers with fn while closed and with the fallback when fn fails", async () => {
    const t = setup();
    expect(await t.ok()).toBe("real");
    expect(await t.bad()).toBe("fallback");
    expect(t.breaker.state).toBe("closed");
  });

  it("opens after the threshold of consecutive failures, and a success in between resets the count", async () => {
    const t = setup();
    await t.bad();
    await t.bad();
    await t.ok();
    await t.bad();
    await t.bad();
    expect(t.breaker.state).toBe("closed");
    await t.bad();
    expect(t.breaker.state).toBe("open");
    expect(t.changes).toEqual(["closed->open"]);
  });

  it("goes straight to the fallback while open, without calling fn", async () => {
    const t = setup();
    for (let i = 0; i < 3; i++) await t.bad();
    const before = t.calls();
    t.advance(499);
    expect(await t.ok()).toBe("fallback");
    expect(t.calls()).toBe(before);
    expect(t.breaker.state).toBe("open");
  });

  it("lets a probe through after the reset timeout and closes on its success", async () => {
    const t = setup();
    for (let i = 0; i < 3; i++) await t.bad();
    t.advance(500);
    expect(await t.ok()).toBe("real");
    expect(t.breaker.state).toBe("closed");
    expect(t.changes).toEqual(["closed->open", "open->half-open", "half-open->closed"]);
    // closed again with a fresh count: two failures do not reopen it
    await t.bad();
    await t.bad();
    expect(t.breaker.state).toBe("closed");
  });

  it("reopens when the probe fails and waits a full reset timeout again", async () => {
    const t = setup();
    for (let i = 0; i < 3; i++) await t.bad();
    t.advance(600);
    expect(await t.bad()).toBe("fallback");
    expect(t.breaker.state).toBe("open");
    t.advance(499);
    const before = t.calls();
    await t.ok();
    expect(t.calls()).toBe(before);
    t.advance(1);
    expect(await t.ok()).toBe("real");
    expect(t.changes).toEqual(["closed->open", "open->half-open", "half-open->open", "open->half-open", "half-open->closed"]);
  });

  it("admits at most halfOpenMax probes at once; the others get the fallback", async () => {
    const t = setup(2);
    for (let i = 0; i < 3; i++) await t.bad();
    t.advance(500);
    const gates: Array<() => void> = [];
    let started = 0;
    const slow = () =>
      t.breaker.run(
        () => {
          started++;
          const { promise, resolve } = Promise.withResolvers<string>();
          gates.push(() => resolve("real"));
          return promise;
        },
        () => "fallback",
      );
    const a = slow();
    const b = slow();
    const c = slow();
    expect(await c).toBe("fallback");
    expect(started).toBe(2);
    expect(t.breaker.state).toBe("half-open");
    for (const g of gates) g();
    expect(await Promise.all([a, b])).toEqual(["real", "real"]);
    expect(t.breaker.state).toBe("closed");
  });

  it("a call started while closed that succeeds after the circuit opened does not close it", async () => {
    const t = setup();
    const { promise, resolve } = Promise.withResolvers<string>();
    const late = t.breaker.run(() => promise, () => "fallback");
    for (let i = 0; i < 3; i++) await t.bad();
    resolve("real");
    expect(await late).toBe("real");
    expect(t.breaker.state).toBe("open");
  });

  it("counts a synchronous throw as a failure and propagates only the fallback's own error", async () => {
    const t = setup();
    const syncThrow = () => t.breaker.run<string>(() => { throw new Error("sync"); }, () => "fallback");
    for (let i = 0; i < 3; i++) expect(await syncThrow()).toBe("fallback");
    expect(t.breaker.state).toBe("open");
    await expect(t.breaker.run(async () => "x", () => { throw new Error("fallback failed"); })).rejects.toThrow("fallback failed");
  });

  it("removes a listener and survives a throwing one", async () => {
    const t = setup();
    const seen: BreakerState[] = [];
    const off = t.breaker.onStateChange((to) => seen.push(to));
    t.breaker.onStateChange(() => { throw new Error("listener"); });
    for (let i = 0; i < 3; i++) await t.bad();
    off();
    t.advance(500);
    await t.ok();
    expect(seen).toEqual(["open"]);
    expect(t.breaker.state).toBe("closed");
  });

  it("refuses nonsensical options", () => {
    expect(() => createCircuitBreaker({ failureThreshold: 0, resetTimeoutMs: 1 })).toThrow(RangeError);
    expect(() => createCircuitBreaker({ failureThreshold: 1, resetTimeoutMs: -1 })).toThrow(RangeError);
    expect(() => createCircuitBreaker({ failureThreshold: 1, resetTimeoutMs: 1, halfOpenMax: 0 })).toThrow(RangeError);
  });
});
