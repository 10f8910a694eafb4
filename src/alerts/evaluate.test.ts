// Rule evaluation over crafted window values: each kind fires and resolves, forWindows, warm-up and
// baselines. Expected outcomes are worked out by hand from the rule definitions.

import { describe, expect, it } from "bun:test";
import { evaluateWindow, fingerprintOf, initialState, type RuleState, type Transition } from "./evaluate.ts";
import type { WindowSample } from "./metrics.ts";
import { parseRule, type AlertRule } from "./rules.ts";

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 29, 12, 0);

function summary(total: number, extra: Partial<{ revenue: number; orders: number }> = {}): WindowSample {
  return {
    summary: {
      events: { total, page_view: total },
      revenue: extra.revenue ?? 0,
      orders: extra.orders ?? 0,
      units: 0,
      aov: 0,
      uniqueUsers: 0,
      uniqueSessions: 0,
      late: { merged: 0, dropped: 0 },
      duplicates: 0,
    },
    funnel: null,
  };
}

function funnel(view: number, cart: number): WindowSample {
  return {
    summary: null,
    funnel: {
      sessions: view,
      steps: [
        { step: "product_view", sessions: view, conversion: 1 },
        { step: "add_to_cart", sessions: cart, conversion: view > 0 ? cart / view : 0 },
        { step: "checkout", sessions: 0, conversion: 0 },
        { step: "purchase", sessions: 0, conversion: 0 },
      ],
      cartAbandonment: { sessions: 0, rate: 0 },
    },
  };
}

/** Runs a rule over consecutive 1-minute windows; returns every transition with its window index. */
function run(rule: AlertRule, samples: WindowSample[], start: RuleState = initialState("d")) {
  let state = start;
  const out: Array<{ i: number; t: Transition }> = [];
  const breached: boolean[] = [];
  samples.forEach((s, i) => {
    const r = evaluateWindow(rule, state, T0 + i * MIN, T0 + (i + 1) * MIN, s);
    state = r.state;
    breached.push(r.obs.breached);
    if (r.transition) out.push({ i, t: r.transition });
  });
  return { out, state, breached, statuses: out.map((x) => `${x.i}:${x.t.status}`) };
}

const rule = (r: Record<string, unknown>) => parseRule({ id: "r1", window: "1m", ...r });

describe("threshold", () => {
  const r = rule({ kind: "threshold", metric: "events.total", op: ">", value: 100 });

  it("fires once when the value crosses, stays silent while breached, and resolves once", () => {
    const { statuses, out } = run(r, [50, 150, 200, 180, 90, 80].map((n) => summary(n)));
    expect(statuses).toEqual(["1:firing", "4:resolved"]);
    const [fire, resolve] = out;
    expect(fire.t.alert.value).toBe(150);
    expect(fire.t.alert.reference).toBe(100);
    expect(fire.t.alert.startsAt).toBe(T0 + MIN);
    // the resolve carries the same fingerprint as the firing and the healthy window's value
    expect(resolve.t.alert.fingerprint).toBe(fire.t.alert.fingerprint);
    expect(resolve.t.alert.value).toBe(90);
    expect(resolve.t.endsAt).toBe(T0 + 5 * MIN);
    expect(fire.t.alert.fingerprint).toBe(fingerprintOf("r1", "1m", T0 + MIN));
  });

  it("does not breach at the threshold itself with >, but does with >=", () => {
    expect(run(r, [summary(100)]).breached).toEqual([false]);
    const ge = rule({ kind: "threshold", metric: "events.total", op: ">=", value: 100 });
    expect(run(ge, [summary(100)]).breached).toEqual([true]);
    const lt = rule({ kind: "threshold", metric: "revenue", op: "<", value: 10 });
    expect(run(lt, [summary(0, { revenue: 9.99 }), summary(0, { revenue: 10 })]).statuses).toEqual(["0:firing", "1:resolved"]);
  });

  it("waits for forWindows consecutive breaches and starts the alert at the first of them", () => {
    const r3 = rule({ kind: "threshold", metric: "events.total", op: ">", value: 100, forWindows: 3 });
    // breaches at 1, 2 (reset by 3), then 4, 5, 6 -> fires at 6; healthy 7 resolves
    const { statuses, out } = run(r3, [0, 200, 200, 0, 200, 200, 200, 0].map((n) => summary(n)));
    expect(statuses).toEqual(["6:firing", "7:resolved"]);
    expect(out[0].t.alert.startsAt).toBe(T0 + 4 * MIN);
  });

  it("fires again as a new alert, with a new fingerprint, after resolving", () => {
    const { out } = run(r, [200, 0, 200, 0].map((n) => summary(n)));
    expect(out.map((x) => x.t.status)).toEqual(["firing", "resolved", "firing", "resolved"]);
    expect(out[0].t.alert.fingerprint).not.toBe(out[2].t.alert.fingerprint);
  });
});

describe("change versus the previous window", () => {
  it("fires on a rise of at least percent and resolves when the next change is small", () => {
    const r = rule({ kind: "change", metric: "events.total", percent: 50, direction: "up" });
    // 100 -> 160 (+60 %) fires; 160 -> 170 (+6 %) resolves; 170 -> 60 (-65 %) is a fall, ignored
    const { statuses, out } = run(r, [100, 160, 170, 60].map((n) => summary(n)));
    expect(statuses).toEqual(["1:firing", "2:resolved"]);
    expect(out[0].t.alert.reference).toBe(100);
  });

  it("has no baseline in its first window or after a zero", () => {
    const r = rule({ kind: "change", metric: "events.total", percent: 10, direction: "any" });
    expect(run(r, [0, 500, 1000, 400].map((n) => summary(n))).breached).toEqual([false, false, true, true]);
  });

  it("watches falls with direction down", () => {
    const r = rule({ kind: "change", metric: "orders", percent: 30, direction: "down" });
    expect(run(r, [10, 20, 13, 10].map((n) => summary(0, { orders: n }))).breached).toEqual([false, false, true, false]);
  });
});

describe("conversion drop", () => {
  const r = rule({ kind: "conversion_drop", fromStep: "product_view", toStep: "add_to_cart", maxDropPercent: 25, minSessions: 10 });

  it("fires when conversion falls by more than maxDropPercent against the previous window, then resolves", () => {
    // 40 % -> 28 % is a 30 % drop (fires); 28 % -> 27 % is 3.6 % (resolves)
    const { statuses, out } = run(r, [funnel(100, 40), funnel(100, 28), funnel(100, 27)]);
    expect(statuses).toEqual(["1:firing", "2:resolved"]);
    expect(out[0].t.alert.value).toBe(0.28);
    expect(out[0].t.alert.reference).toBe(0.4);
  });

  it("skips windows with fewer than minSessions at the first step and compares with the last one that had enough", () => {
    // window 1 has 5 sessions: no data; window 2 (20 %) compares with window 0 (40 %): a 50 % drop
    const { breached } = run(r, [funnel(100, 40), funnel(5, 0), funnel(50, 10)]);
    expect(breached).toEqual([false, false, true]);
  });
});

describe("anomaly against an EWMA baseline", () => {
  const r = rule({ kind: "anomaly", metric: "events.total", alpha: 0.5, zScore: 3, minWindows: 4 });

  it("never fires while warming up, however odd the values", () => {
    expect(run(r, [10, 1000, 5, 900].map((n) => summary(n))).breached).toEqual([false, false, false, false]);
  });

  it("fires on a spike after warm-up and resolves when values return to normal", () => {
    const values = [100, 102, 98, 101, 99, 100, 400, 101];
    const { statuses, out } = run(r, values.map((n) => summary(n)));
    expect(statuses).toEqual(["6:firing", "7:resolved"]);
    // the baseline the spike was compared with is the EWMA mean of the first six windows, computed here by hand
    let mean = 100;
    for (const v of values.slice(1, 6)) mean += 0.5 * (v - mean);
    expect(out[0].t.alert.reference).toBeCloseTo(mean, 6);
  });

  it("honours direction: a drop does not fire an up-only rule", () => {
    const up = rule({ kind: "anomaly", metric: "events.total", alpha: 0.5, zScore: 3, minWindows: 4, direction: "up" });
    expect(run(up, [100, 102, 98, 101, 99, 0].map((n) => summary(n))).breached.at(-1)).toBe(false);
    const down = rule({ kind: "anomaly", metric: "events.total", alpha: 0.5, zScore: 3, minWindows: 4, direction: "down" });
    expect(run(down, [100, 102, 98, 101, 99, 0].map((n) => summary(n))).breached.at(-1)).toBe(true);
  });

  it("does not fire on a 0.5 % wiggle after a perfectly flat history", () => {
    expect(run(r, [1000, 1000, 1000, 1000, 1000, 1005].map((n) => summary(n))).breached.at(-1)).toBe(false);
  });
});

it("treats a window without the rule's data as healthy", () => {
  const r = rule({ kind: "threshold", metric: "funnel.checkout.sessions", op: ">", value: 1 });
  const st = run(r, [funnel(10, 5)]).state; // checkout = 0
  expect(st.active).toBeNull();
  const { statuses } = run(r, [summary(5)]); // no funnel part at all
  expect(statuses).toEqual([]);
});
