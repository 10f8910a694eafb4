// Token-bucket rate limiting per client key (an ingest key's identity or a client IP). Memory is
// bounded: a bucket idle long enough to be full again equals a fresh one, so sweeps drop it.

export interface RateLimitOptions {
  /** Tokens (requests) added per second. */
  rate: number;
  /** Bucket capacity: the largest burst allowed after idling. */
  burst: number;
  /** Most buckets kept; past this, full buckets are swept, then the oldest are dropped. */
  maxBuckets?: number;
  /** Milliseconds clock; injectable for tests. */
  now?: () => number;
}

export interface RateLimiter {
  /** Takes one token for `key`: 0 when allowed, else the milliseconds until a token is available. */
  take(key: string): number;
  /** Buckets currently held (for tests and metrics). */
  size(): number;
}

interface Bucket {
  tokens: number;
  at: number; // time of the last refill
}

/** A token bucket per key with lazy refill; no timers, so nothing to stop. */
export function createRateLimiter(opts: RateLimitOptions): RateLimiter {
  const { rate, burst } = opts;
  if (!(rate > 0) || !(burst >= 1)) throw new Error(`rate limit: rate must be > 0 and burst >= 1 (got ${rate}, ${burst})`);
  const maxBuckets = opts.maxBuckets ?? 100_000;
  const now = opts.now ?? Date.now;
  const fullAfterMs = (burst / rate) * 1000;
  const buckets = new Map<string, Bucket>();
  let lastSweep = now();

  const sweep = (t: number): void => {
    lastSweep = t;
    for (const [k, b] of buckets) if (t - b.at >= fullAfterMs) buckets.delete(k);
    // Every bucket still active: drop the oldest-created ones. A client evicted this way gets a
    // fresh burst, the price of a hard memory bound.
    if (buckets.size >= maxBuckets) {
      let excess = buckets.size - Math.floor(maxBuckets * 0.9);
      for (const k of buckets.keys()) {
        if (excess-- <= 0) break;
        buckets.delete(k);
      }
    }
  };

  return {
    take(key) {
      const t = now();
      let b = buckets.get(key);
      if (b === undefined) {
        if (buckets.size >= maxBuckets || t - lastSweep >= Math.max(fullAfterMs, 60_000)) sweep(t);
        b = { tokens: burst, at: t };
        buckets.set(key, b);
      } else if (t > b.at) {
        b.tokens = Math.min(burst, b.tokens + ((t - b.at) * rate) / 1000);
        b.at = t;
      }
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return 0;
      }
      return Math.max(1, Math.ceil(((1 - b.tokens) * 1000) / rate));
    },
    size: () => buckets.size,
  };
}
