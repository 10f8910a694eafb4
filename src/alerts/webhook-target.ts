// Where alert webhooks may go (SSRF): never to loopback, link-local (cloud metadata), private, unspecified or
// other non-public addresses, in any spelling, unless --alert-allow-private. Checked on the URL as written when a
// rule is made, and after DNS resolution at every delivery, which then connects to the address it checked (a
// name that resolves elsewhere a moment later, DNS rebinding, never gets a request).

import { lookup as dnsLookup } from "node:dns/promises";
import { isIP } from "node:net";

/** Why an address is not a public one. */
export type AddressClass = "loopback" | "link-local" | "private" | "shared" | "unspecified" | "multicast" | "reserved";

const DESCRIBE: Record<AddressClass, string> = {
  loopback: "a loopback address",
  "link-local": "a link-local address",
  private: "a private network address",
  shared: "a shared (carrier-grade NAT) address",
  unspecified: "an unspecified address",
  multicast: "a multicast address",
  reserved: "a reserved address",
};

/** Resolves a host name to every address it has (the notifier's default is the system resolver). */
export type Lookup = (host: string) => Promise<Array<{ address: string; family: number }>>;
export const systemLookup: Lookup = (host) => dnsLookup(host, { all: true, verbatim: true });

/** What the refusal adds, so an operator who means it knows the switch. */
export const ALLOW_HINT = "alert webhooks may not target loopback, link-local or private networks (start rtae with --alert-allow-private to allow them)";

function v4Class(b: readonly number[]): AddressClass | null {
  const [a, c] = [b[0], b[1]];
  if (a === 0) return "unspecified"; // 0.0.0.0/8 ("this network"; 0.0.0.0 reaches the local host)
  if (a === 127) return "loopback";
  if (a === 10 || (a === 172 && c >= 16 && c <= 31) || (a === 192 && c === 168)) return "private";
  if (a === 169 && c === 254) return "link-local"; // 169.254.169.254: cloud instance metadata
  if (a === 100 && c >= 64 && c <= 127) return "shared"; // 100.64.0.0/10, also where some clouds keep metadata
  if (a === 192 && c === 0 && b[2] === 0) return "reserved"; // 192.0.0.0/24, IETF protocol assignments
  if (a === 198 && (c === 18 || c === 19)) return "reserved"; // benchmarking
  if (a >= 224 && a <= 239) return "multicast";
  if (a >= 240) return "reserved"; // 240.0.0.0/4 and the broadcast address
  return null;
}

function parseV4(s: string): number[] | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (m === null) return null;
  const b = m.slice(1).map(Number);
  return b.every((x) => x <= 255) ? b : null;
}

/** The 16 bytes of an IPv6 address (an embedded dotted IPv4 tail and a %zone allowed), or null. */
function parseV6(s: string): number[] | null {
  const addr = s.replace(/%.*$/, "");
  if (isIP(addr) !== 6) return null;
  let head = addr;
  const tail: number[] = [];
  const dotted = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(addr);
  if (dotted !== null) {
    const v4 = parseV4(dotted[1]);
    if (v4 === null) return null;
    tail.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    head = addr.slice(0, dotted.index); // "::ffff:", "::" or "1:2:3:4:5:6:"
    if (!head.endsWith("::")) head = head.slice(0, -1);
  }
  const [l, r] = head.includes("::") ? head.split("::") : [head, null];
  const words = (part: string) => (part === "" ? [] : part.split(":").map((w) => parseInt(w, 16)));
  const left = words(l);
  const right = r === null ? [] : words(r);
  const fill = 8 - tail.length - left.length - right.length;
  if (fill < 0 || (r === null && fill !== 0)) return null;
  const w = [...left, ...new Array<number>(r === null ? 0 : fill).fill(0), ...right, ...tail];
  if (w.length !== 8 || w.some((x) => !(x >= 0 && x <= 0xffff))) return null;
  return w.flatMap((x) => [x >> 8, x & 0xff]);
}

/** An IPv4 address hidden in an IPv6 one (mapped, compatible, translated, NAT64, 6to4), or null. */
function embeddedV4(b: readonly number[]): number[] | null {
  const zero = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return b.slice(12, 16); // ::ffff:a.b.c.d
  if (zero(0, 8) && b[8] === 0xff && b[9] === 0xff && zero(10, 12)) return b.slice(12, 16); // ::ffff:0:a.b.c.d
  if (zero(0, 12) && !(zero(12, 15) && b[15] <= 1)) return b.slice(12, 16); // ::a.b.c.d (deprecated compatible)
  if (b[0] === 0 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return b.slice(12, 16); // 64:ff9b::/96
  if (b[0] === 0x20 && b[1] === 0x02) return b.slice(2, 6); // 2002::/16, 6to4
  return null;
}

/** Why `ip` (a literal IPv4 or IPv6 address) is not public, with its IPv4 form when it hides one; null if public. */
export function classify(ip: string): { class: AddressClass; v4?: string } | null {
  const v4 = parseV4(ip);
  if (v4 !== null) {
    const c = v4Class(v4);
    return c === null ? null : { class: c };
  }
  const b = parseV6(ip);
  if (b === null) return null;
  const inner = embeddedV4(b);
  if (inner !== null) {
    const c = v4Class(inner);
    return c === null ? null : { class: c, v4: inner.join(".") };
  }
  if (b.every((x) => x === 0)) return { class: "unspecified" };
  if (b.slice(0, 15).every((x) => x === 0) && b[15] === 1) return { class: "loopback" };
  if (b[0] === 0xfe && (b[1] & 0xc0) === 0x80) return { class: "link-local" }; // fe80::/10
  if (b[0] === 0xfe && (b[1] & 0xc0) === 0xc0) return { class: "private" }; // fec0::/10, deprecated site-local
  if ((b[0] & 0xfe) === 0xfc) return { class: "private" }; // fc00::/7 unique local (fd00:ec2::254: metadata)
  if (b[0] === 0xff) return { class: "multicast" };
  if (b[0] === 0 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && b[4] === 0 && b[5] === 1) return { class: "private" }; // 64:ff9b:1::/48
  return null;
}

/** "127.0.0.1, a loopback address" or "::ffff:7f00:1 (IPv4 127.0.0.1), a loopback address". */
function describe(ip: string, c: { class: AddressClass; v4?: string }): string {
  const metadata = ip === "169.254.169.254" || c.v4 === "169.254.169.254" ? " (cloud instance metadata)" : "";
  return `${ip}${c.v4 === undefined ? "" : ` (IPv4 ${c.v4})`}, ${DESCRIBE[c.class]}${metadata}`;
}

/** `localhost` and any name under it (RFC 6761: they are the local host whatever DNS says). */
export function isLocalhostName(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, "");
  return h === "localhost" || h.endsWith(".localhost");
}

const bare = (hostname: string) => (hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname);

/**
 * The problem of a webhook URL's host as written, without resolving it: a non-public literal address in any
 * spelling the URL parser accepts (2130706433, 0x7f.1, 0177.0.0.1, [::ffff:127.0.0.1] all normalise to one), or
 * a localhost name. Reads after "webhook.url"; null when the host may be used.
 */
export function literalHostProblem(url: URL): string | null {
  const host = bare(url.hostname);
  if (isLocalhostName(host)) return `targets ${host}, the local host; ${ALLOW_HINT}`;
  const c = isIP(host) === 0 ? null : classify(host);
  return c === null ? null : `targets ${describe(host, c)}; ${ALLOW_HINT}`;
}

/** The refusal for a host whose resolved addresses include a non-public one, or null when all are public. */
export function resolvedProblem(host: string, addresses: ReadonlyArray<{ address: string }>): string | null {
  for (const { address } of addresses) {
    const c = classify(address);
    if (c !== null) return `host ${host} resolves to ${describe(address, c)}; ${ALLOW_HINT}`;
  }
  return null;
}

/** Where one delivery attempt connects: the URL to fetch and what keeps the original name (Host, TLS name). */
export type Target =
  | { ok: true; url: string; headers: Record<string, string>; serverName?: string }
  | { ok: false; reason: string; retriable: boolean };

/**
 * Resolves a webhook URL for one attempt. With allowPrivate the URL is used as it is. Otherwise every address
 * the host resolves to must be public, and the attempt connects to the first of them by address, keeping the
 * name in the Host header and as the TLS server name, so the checked address is the one connected to.
 */
export async function resolveTarget(raw: string, opts: { allowPrivate: boolean; lookup: Lookup; signal?: AbortSignal }): Promise<Target> {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return { ok: false, reason: "the webhook URL is not a URL", retriable: false };
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return { ok: false, reason: `the webhook URL's scheme ${u.protocol} is not http or https`, retriable: false };
  if (opts.allowPrivate) return { ok: true, url: raw, headers: {} };
  const host = bare(u.hostname);
  if (isIP(host) !== 0) {
    const p = literalHostProblem(u);
    return p === null ? { ok: true, url: raw, headers: {} } : { ok: false, reason: `refused: webhook ${p}`, retriable: false };
  }
  let addresses: Array<{ address: string; family: number }>;
  try {
    const abort = new Promise<never>((_, reject) => {
      if (opts.signal?.aborted) reject(opts.signal.reason);
      opts.signal?.addEventListener("abort", () => reject(opts.signal!.reason), { once: true });
    });
    addresses = await Promise.race([opts.lookup(host), abort]);
  } catch (err) {
    if (isLocalhostName(host)) return { ok: false, reason: `refused: webhook targets ${host}, the local host; ${ALLOW_HINT}`, retriable: false };
    const e = err as { code?: string; message?: string; name?: string };
    if (e?.name === "TimeoutError" || e?.name === "AbortError") throw err;
    return { ok: false, reason: `cannot resolve ${host} (${e?.code ?? e?.message ?? String(err)})`, retriable: true };
  }
  if (addresses.length === 0) return { ok: false, reason: `cannot resolve ${host} (no address)`, retriable: true };
  const p = resolvedProblem(host, addresses) ?? (isLocalhostName(host) ? `targets ${host}, the local host; ${ALLOW_HINT}` : null);
  if (p !== null) return { ok: false, reason: `refused: webhook ${p}`, retriable: false };
  const pinned = new URL(u);
  const a = addresses[0];
  pinned.hostname = a.family === 6 || isIP(a.address) === 6 ? `[${a.address}]` : a.address;
  return { ok: true, url: pinned.href, headers: { host: u.host }, serverName: u.protocol === "https:" ? host : undefined };
}
