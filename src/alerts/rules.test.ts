// Rule validation: defaults, every kind, and clear messages for hostile or mistaken input, in the API and the rules file.

import { afterAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AlertError } from "./errors.ts";
import { loadRulesFile, parseRule } from "./rules.ts";

function problems(input: unknown): string[] {
  try {
    parseRule(input);
  } catch (e) {
    if (e instanceof AlertError) return [...e.issues];
    throw e;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be refused`);
}

const ok = { id: "busy", kind: "threshold", window: "1m", metric: "events.total", op: ">", value: 10 };

describe("parseRule", () => {
  it("fills the documented defaults", () => {
    expect(parseRule(ok)).toEqual({ ...ok, name: "busy", forWindows: 1, severity: "warning", webhook: null, labels: {} } as never);
    const a = parseRule({ id: "a", kind: "anomaly", window: "5m", metric: "revenue" });
    expect(a).toMatchObject({ alpha: 0.3, zScore: 3, minWindows: 5, direction: "any" });
    const c = parseRule({ id: "c", kind: "conversion_drop", window: "1h", fromStep: "add_to_cart", toStep: "purchase", maxDropPercent: 20 });
    expect(c).toMatchObject({ minSessions: 1 });
    expect(parseRule({ ...ok, webhook: "https://h.example/x" }).webhook).toEqual({ url: "https://h.example/x" });
  });

  it("names each wrong field and what it expects", () => {
    expect(problems({ ...ok, window: "2m" })).toEqual(['window must be one of 1m, 5m, 1h, got "2m"']);
    expect(problems({ ...ok, value: "10" })).toEqual(['value must be a finite number, got "10"']);
    expect(problems({ ...ok, metric: "events.bogus" })[0]).toStartWith('metric is not a known metric, got "events.bogus"');
    expect(problems({ ...ok, op: "=" })[0]).toContain("op must be one of >, <, >=, <=");
    expect(problems({ ...ok, forWindows: 0 })).toEqual(["forWindows must be a whole number 1-1000, got 0"]);
    expect(problems({ ...ok, treshold: 5 })[0]).toStartWith("treshold is not a field of a threshold rule");
    expect(problems({ ...ok, id: "../etc" })[0]).toStartWith("id must be 1-64 letters");
    expect(problems({ ...ok, webhook: "ftp://x" })).toEqual(["webhook.url is not an http:// or https:// URL"]);
    expect(problems({ kind: "threshold" })).toEqual(expect.arrayContaining(["id is required", "window is required (one of 1m, 5m, 1h)", "metric is required"]));
    expect(problems({ ...ok, kind: "nope" })[0]).toContain("kind must be one of threshold, change, conversion_drop, anomaly");
    expect(problems({ id: "c", kind: "conversion_drop", window: "1m", fromStep: "purchase", toStep: "checkout", maxDropPercent: 10 })[0]).toContain(
      "toStep must come after fromStep",
    );
  });

  it("refuses non-objects and oversized parts", () => {
    expect(problems([ok])).toEqual(["a rule must be a JSON object, got an array"]);
    expect(problems(null)).toEqual(["a rule must be a JSON object, got null"]);
    expect(problems({ ...ok, name: "x".repeat(300) })).toEqual(["name is longer than 256 characters"]);
    const labels = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`l${i}`, "v"]));
    expect(problems({ ...ok, labels })).toEqual(["labels has 40 entries (at most 32)"]);
    expect(problems({ ...ok, labels: { team: 5 } })).toEqual(["labels.team must be a string of at most 256 characters"]);
    expect(problems({ ...ok, value: Infinity })[0]).toStartWith("value must be a finite number");
  });
});

describe("loadRulesFile", () => {
  const dir = mkdtempSync(join(tmpdir(), "rtae-rules-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it("reads an array or {rules: [...]}", () => {
    expect(loadRulesFile(file("a.json", JSON.stringify([ok]))).map((r) => r.id)).toEqual(["busy"]);
    expect(loadRulesFile(file("b.json", JSON.stringify({ rules: [ok, { ...ok, id: "b" }] }))).map((r) => r.id)).toEqual(["busy", "b"]);
  });

  it("names the file, the rule and the field of every problem", () => {
    const p = file("bad.json", JSON.stringify([ok, { ...ok, id: "two", window: "2m" }, ok]));
    let err: unknown;
    try {
      loadRulesFile(p);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AlertError);
    expect((err as AlertError).issues).toEqual([`${p}: rules[1] ("two"): window must be one of 1m, 5m, 1h, got "2m"`, `${p}: rules[2] ("busy"): id is used by an earlier rule`]);
    expect(() => loadRulesFile(file("j.json", "{nope"))).toThrow(/j\.json: is not valid JSON/);
    expect(() => loadRulesFile(join(dir, "missing.json"))).toThrow(/missing\.json: cannot be read \(ENOENT\)/);
    expect(() => loadRulesFile(file("o.json", '{"x": 1}'))).toThrow(/expected an array of rules/);
  });
});
