// Webhook delivery: POST JSON with a timeout, retries with bounded exponential backoff, and an
// Idempotency-Key that stays the same across retries so receivers can drop repeats. Deliveries of
// one alert run in order (a resolve never overtakes its firing); nothing here blocks evaluation.
// Each attempt resolves the receiver's name, refuses non-public addresses and connects to the address it
// checked (webhook-target.ts); redirects are never followed, so they cannot lead anywhere else.

import { logger } from "../log.ts";
import { resolveTarget, systemLookup, type Lookup } from "./webhook-target.ts";

const log = logger("Alerts");

export interface WebhookOptions {
  /** per attempt, default 5 s */
  timeoutMs?: number;
  /** attempts in total, default 5 */
  maxAttempts?: number;
  /** first backoff, doubled per retry, default 500 ms */
  baseDelayMs?: number;
  /** backoff cap, default 30 s */
  maxDelayMs?: number;
  /** most deliveries waiting or in flight; beyond it new ones fail at once, default 1000 */
  maxQueued?: number;
  userAgent?: string;
  /** --alert-allow-private: deliver to loopback, link-local and private addresses too; default false */
  allowPrivate?: boolean;
  /** name resolution (tests inject one); default the system resolver */
  lookup?: Lookup;
}

export interface Delivery {
  url: string;
  /** the idempotency key: identical for every attempt of this message */
  key: string;
  /** deliveries with the same chain run one after another */
  chain: string;
  body: unknown;
}

export type DeliveryResult = { ok: true; attempts: number; status: number } | { ok: false; attempts: number; reason: string };

export interface Notifier {
  /** queues a delivery; `done` gets the outcome. A key already delivered or queued is skipped (returns false). */
  send(d: Delivery, done?: (r: DeliveryResult) => void): boolean;
  /** resolves when nothing is queued or in flight */
  idle(): Promise<void>;
  /** waits up to graceMs for deliveries, then aborts the rest */
  stop(graceMs?: number): Promise<void>;
}

const REMEMBERED_KEYS = 10_000;

/** The host a redirect points to, for the failure reason (its path and query may carry secrets). */
function redirectHost(location: string | null, base: string): string {
  if (location === null) return "nowhere";
  try {
    return new URL(location, base).host || "an unknown host";
  } catch {
    return "an invalid location";
  }
}

export function createNotifier(opts: WebhookOptions = {}): Notifier {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const maxAttempts = opts.maxAttempts ?? 5;
  const base = opts.baseDelayMs ?? 500;
  const cap = opts.maxDelayMs ?? 30_000;
  const maxQueued = opts.maxQueued ?? 1000;
  const allowPrivate = opts.allowPrivate ?? false;
  const lookup = opts.lookup ?? systemLookup;
  const stopping = new AbortController();
  const chains = new Map<string, Promise<void>>();
  const seen = new Set<string>(); // keys delivered or queued, oldest first
  let pending = 0;
  let idleWaiters: Array<() => void> = [];

  const remember = (key: string) => {
    seen.add(key);
    if (seen.size > REMEMBERED_KEYS) seen.delete(seen.values().next().value as string);
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (stopping.signal.aborted) return resolve();
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        stopping.signal.removeEventListener("abort", done);
        resolve();
      }
      stopping.signal.addEventListener("abort", done, { once: true });
    });

  async function deliver(d: Delivery): Promise<DeliveryResult> {
    const body = JSON.stringify(d.body);
    let reason = "not attempted";
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      if (stopping.signal.aborted) return { ok: false, attempts: attempt - 1, reason: "stopped" };
      try {
        const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), stopping.signal]);
        // resolved again for every attempt: the address checked is the address connected to
        const target = await resolveTarget(d.url, { allowPrivate, lookup, signal });
        if (!target.ok) {
          if (!target.retriable) return { ok: false, attempts: attempt, reason: target.reason };
          throw new Error(target.reason);
        }
        const res = await fetch(target.url, {
          method: "POST",
          body,
          redirect: "manual",
          headers: {
            ...target.headers,
            "content-type": "application/json",
            "idempotency-key": d.key,
            "x-rtae-delivery-attempt": String(attempt),
            "user-agent": opts.userAgent ?? "rtae-alerts",
          },
          ...(target.serverName === undefined ? {} : { tls: { serverName: target.serverName } }),
          signal,
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return { ok: true, attempts: attempt, status: res.status };
        if (res.status >= 300 && res.status < 400) {
          // never followed: a redirect could point at an address the check above refuses
          return { ok: false, attempts: attempt, reason: `HTTP ${res.status} redirect not followed (to ${redirectHost(res.headers.get("location"), d.url)})` };
        }
        reason = `HTTP ${res.status}`;
        // the receiver refused this message itself (or redirects it): repeating it cannot help
        if (res.status < 500 && res.status !== 408 && res.status !== 429) return { ok: false, attempts: attempt, reason };
      } catch (err) {
        if (stopping.signal.aborted) return { ok: false, attempts: attempt, reason: "stopped" };
        reason = (err as Error).name === "TimeoutError" ? `timed out after ${timeoutMs} ms` : (err as Error).message;
      }
      if (attempt < maxAttempts) {
        const delay = Math.min(cap, base * 2 ** (attempt - 1));
        await sleep(delay * (0.8 + Math.random() * 0.4));
      }
    }
    return { ok: false, attempts: maxAttempts, reason };
  }

  const settle = () => {
    if (--pending === 0) {
      const w = idleWaiters;
      idleWaiters = [];
      for (const f of w) f();
    }
  };

  return {
    send(d, done) {
      if (seen.has(d.key)) return false;
      if (pending >= maxQueued || stopping.signal.aborted) {
        log.warn("webhook queue full; notification dropped", { key: d.key, pending });
        done?.({ ok: false, attempts: 0, reason: "queue full" });
        return true;
      }
      remember(d.key);
      pending++;
      const prev = chains.get(d.chain) ?? Promise.resolve();
      const run = prev.then(async () => {
        const r = await deliver(d);
        if (r.ok) log.info("webhook delivered", { key: d.key, attempts: r.attempts });
        else {
          // forget a failed key so the same message may be queued again
          seen.delete(d.key);
          log.warn("webhook delivery failed", { key: d.key, attempts: r.attempts, reason: r.reason });
        }
        try {
          done?.(r);
        } catch (err) {
          log.warn("webhook result handler failed", { message: String(err) });
        }
      });
      const tail = run.finally(settle);
      chains.set(d.chain, tail);
      void tail.then(() => {
        if (chains.get(d.chain) === tail) chains.delete(d.chain);
      });
      return true;
    },
    idle() {
      return pending === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
    async stop(graceMs = 2000) {
      if (pending > 0) {
        let t: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([this.idle(), new Promise<void>((r) => (t = setTimeout(r, graceMs)))]);
        clearTimeout(t);
      }
      stopping.abort();
      await this.idle();
    },
  };
}
