// Webhook destinations (SSRF guard): every non-public address class in every spelling is refused as written
// and after resolution, the attempt is pinned to the address checked, and --alert-allow-private lifts it all.

import { describe, expect, it } from "bun:test";
import { AlertError } from "./errors.ts";
import { loadRulesFile, parseRule } from "./rules.ts";
import { classify, literalHostProblem, resolveTarget, systemLookup, type Lookup } from "./webhook-target.ts";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// address -> class, written out by hand from the ranges (RFC 6890 and friends), not from the code
const REFUSED: Array<[string, string]> = [
  ["127.0.0.1", "loopback"],
  ["127.255.255.254", "loopback"],
  ["::1", "loopback"],
  ["169.254.169.254", "link-local"],
  ["169.254.0.1", "link-local"],
  ["fe80::1", "link-local"],
  ["febf:ffff::1", "link-local"],
  ["fe80::1%eth0", "link-local"],
  ["10.0.0.1", "private"],
  ["10.255.255.255", "private"],
  ["172.16.0.1", "private"],
  ["172.31.255.255", "private"],
  ["192.168.1.1", "private"],
  ["fc00::1", "private"],
  ["fd00:ec2::254", "private"],
  ["0.0.0.0", "unspecified"],
  ["0.1.2.3", "unspecified"],
  ["::", "unspecified"],
  ["100.64.0.1", "shared"],
  ["100.100.100.200", "shared"],
  ["224.0.0.1", "multicast"],
  ["ff02::1", "multicast"],
  ["255.255.255.255", "reserved"],
  // IPv4 hidden in IPv6
  ["::ffff:127.0.0.1", "loopback"],
  ["::ffff:7f00:1", "loopback"],
  ["::ffff:a9fe:a9fe", "link-local"],
  ["::ffff:10.1.2.3", "private"],
  ["::ffff:0:7f00:1", "loopback"],
  ["::127.0.0.1", "loopback"],
  ["64:ff9b::169.254.169.254", "link-local"],
  ["2002:7f00:1::1", "loopback"],
];
const PUBLIC = ["8.8.8.8", "93.184.215.14", "172.15.255.255", "172.32.0.1", "192.169.0.1", "100.63.255.255", "169.253.0.1", "11.0.0.1",
  "2606:4700:4700::1111", "::ffff:8.8.8.8", "2001:4860:4860::8888", "1.1.1.1"];

const fixed = (map: Record<string, string[]>): Lookup => async (host) => {
  const list = map[host];
  if (list === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
  return list.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
};

describe("classify", () => {
  it("names the class of every non-public address", () => {
    for (const [ip, cls] of REFUSED) expect([ip, classify(ip)?.class]).toEqual([ip, cls as never]);
  });

  it("leaves public addresses alone, including next to the private ranges", () => {
    for (const ip of PUBLIC) expect([ip, classify(ip)]).toEqual([ip, null]);
  });
});

describe("webhook URLs as written (rule create and update, rules file)", () => {
  const refused = (url: string) => literalHostProblem(new URL(url));

  it("refuses every spelling of a non-public host the URL parser accepts", () => {
    for (const url of [
      "http://127.0.0.1/", "http://127.1/", "http://2130706433/", "http://0x7f.1/", "http://0x7f000001/", "http://0177.0.0.1/",
      "http://[::1]:8080/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://169.254.169.254/latest/meta-data/",
      "http://[fe80::1]/", "http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.0.1/", "http://[fc00::1]/", "http://0.0.0.0/",
      "http://0/", "http://[::]/", "https://localhost/", "https://LOCALHOST./x", "http://hooks.localhost:9000/", "http://a.b.localhost/",
    ])
      expect([url, refused(url)]).toEqual([url, expect.stringContaining("--alert-allow-private") as never]);
  });

  it("says what the host is and which switch allows it", () => {
    expect(refused("http://2130706433/")).toBe(
      "targets 127.0.0.1, a loopback address; alert webhooks may not target loopback, link-local or private networks (start rtae with --alert-allow-private to allow them)",
    );
    expect(refused("http://169.254.169.254/")).toStartWith("targets 169.254.169.254, a link-local address (cloud instance metadata);");
    expect(refused("http://[::ffff:127.0.0.1]/")).toStartWith("targets ::ffff:7f00:1 (IPv4 127.0.0.1), a loopback address;");
    expect(refused("http://x.localhost/")).toStartWith("targets x.localhost, the local host;");
  });

  it("accepts public hosts and names (names are resolved later)", () => {
    for (const url of ["https://hooks.example.com/rtae", "http://8.8.8.8/", "http://[2606:4700:4700::1111]/", "https://localhost.example.com/", "https://notlocalhost/"])
      expect([url, refused(url)]).toEqual([url, null]);
  });

  it("makes parseRule refuse the rule, naming the rule, unless allowPrivate", () => {
    const rule = { id: "to-metadata", kind: "threshold", window: "1m", metric: "events.total", op: ">", value: 1, webhook: "http://169.254.169.254/x" };
    let issues: readonly string[] = [];
    try {
      parseRule(rule);
    } catch (e) {
      if (!(e instanceof AlertError)) throw e;
      issues = e.issues;
    }
    expect(issues).toEqual([
      'webhook.url of rule "to-metadata" targets 169.254.169.254, a link-local address (cloud instance metadata); alert webhooks may not target loopback, link-local or private networks (start rtae with --alert-allow-private to allow them)',
    ]);
    expect(parseRule(rule, "", { allowPrivate: true }).webhook).toEqual({ url: "http://169.254.169.254/x" });
    expect(() => parseRule({ ...rule, webhook: "gopher://hooks.example.com/" })).toThrow("webhook.url is not an http:// or https:// URL");
  });

  it("makes a rules file a start error naming the file, the rule and the reason", () => {
    const dir = mkdtempSync(join(tmpdir(), "rtae-webhook-"));
    try {
      const file = join(dir, "rules.json");
      writeFileSync(file, JSON.stringify([{ id: "local", kind: "threshold", window: "1m", metric: "orders", op: "<", value: 1, webhook: { url: "http://0x7f.1:9/hook" } }]));
      expect(() => loadRulesFile(file)).toThrow(`${file}: rules[0] ("local"): webhook.url targets 127.0.0.1, a loopback address;`);
      expect(loadRulesFile(file, { allowPrivate: true }).length).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("resolveTarget (each delivery attempt)", () => {
  const opts = (map: Record<string, string[]>) => ({ allowPrivate: false, lookup: fixed(map) });

  it("connects to the address it checked, keeping the name in Host and as the TLS server name", async () => {
    expect(await resolveTarget("https://u:p@hooks.example.com:8443/a/b?t=1", opts({ "hooks.example.com": ["93.184.215.14", "2606:2800::1"] }))).toEqual({
      ok: true,
      url: "https://u:p@93.184.215.14:8443/a/b?t=1",
      headers: { host: "hooks.example.com:8443" },
      serverName: "hooks.example.com",
    });
    expect(await resolveTarget("http://v6.example.com/x", opts({ "v6.example.com": ["2606:2800::1"] }))).toEqual({
      ok: true,
      url: "http://[2606:2800::1]/x",
      headers: { host: "v6.example.com" },
      serverName: undefined,
    });
  });

  it("refuses a name when any of its addresses is not public (DNS rebinding, mixed answers), without retrying", async () => {
    for (const [addresses, shown] of [
      [["127.0.0.1"], "127.0.0.1, a loopback address"],
      [["93.184.215.14", "10.0.0.7"], "10.0.0.7, a private network address"],
      [["::ffff:169.254.169.254"], "::ffff:169.254.169.254 (IPv4 169.254.169.254), a link-local address (cloud instance metadata)"],
      [["fe80::1%eth0"], "fe80::1%eth0, a link-local address"],
    ] as const) {
      const t = await resolveTarget("https://rebind.example.com/hook", opts({ "rebind.example.com": [...addresses] }));
      expect(t).toEqual({
        ok: false,
        retriable: false,
        reason: `refused: webhook host rebind.example.com resolves to ${shown}; alert webhooks may not target loopback, link-local or private networks (start rtae with --alert-allow-private to allow them)`,
      });
    }
  });

  it("refuses localhost through the real resolver, and *.localhost even when no resolver knows it", async () => {
    const t = await resolveTarget("http://localhost:9/hook", { allowPrivate: false, lookup: systemLookup });
    expect(t.ok).toBe(false);
    expect(!t.ok && t.reason).toMatch(/^refused: webhook host localhost resolves to (127\.0\.0\.1, a loopback address|::1, a loopback address);/);
    const sub = await resolveTarget("http://hooks.localhost:9/hook", opts({}));
    expect(sub).toMatchObject({ ok: false, retriable: false, reason: expect.stringContaining("targets hooks.localhost, the local host") });
  });

  it("refuses literal non-public addresses without resolving, and passes public ones as they are", async () => {
    const never: Lookup = () => Promise.reject(new Error("must not resolve"));
    expect(await resolveTarget("http://[::ffff:7f00:1]:80/", { allowPrivate: false, lookup: never })).toMatchObject({ ok: false, retriable: false });
    expect(await resolveTarget("http://8.8.8.8/x", { allowPrivate: false, lookup: never })).toEqual({ ok: true, url: "http://8.8.8.8/x", headers: {} });
  });

  it("retries a name that does not resolve, and refuses what is not http or https", async () => {
    expect(await resolveTarget("https://gone.example.com/", opts({}))).toEqual({ ok: false, retriable: true, reason: "cannot resolve gone.example.com (ENOTFOUND)" });
    expect(await resolveTarget("file:///etc/passwd", opts({}))).toMatchObject({ ok: false, retriable: false });
  });

  it("uses the URL as it is with allowPrivate", async () => {
    const never: Lookup = () => Promise.reject(new Error("must not resolve"));
    expect(await resolveTarget("http://localhost:9/hook", { allowPrivate: true, lookup: never })).toEqual({ ok: true, url: "http://localhost:9/hook", headers: {} });
  });
});
