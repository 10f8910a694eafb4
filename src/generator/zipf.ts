// Zipf(s) sampling over ranks 0..n-1 by inverse CDF: one Float64Array table and a binary search per draw.
// A table (rather than rejection-inversion) keeps draws exact and cheap for catalogs up to a few million items.

import type { Prng } from "./prng.ts";

/** A sampler of ranks where rank k (0-based) has probability proportional to 1 / (k + 1)^s. */
export interface Zipf {
  readonly n: number;
  readonly s: number;
  /** A rank in [0, n), 0 being the most popular. */
  sample(rng: Prng): number;
  /** The exact probability of a rank. */
  probability(rank: number): number;
}

/** Builds the cumulative table for n ranks with exponent s (s = 0 is uniform). */
export function createZipf(n: number, s: number): Zipf {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`zipf: n must be a positive integer, got ${n}`);
  if (!Number.isFinite(s) || s < 0) throw new RangeError(`zipf: s must be a finite number >= 0, got ${s}`);
  const cdf = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) {
    total += 1 / Math.pow(k + 1, s);
    cdf[k] = total;
  }
  return {
    n,
    s,
    sample(rng) {
      const u = rng.next() * total;
      let lo = 0;
      let hi = n - 1;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (cdf[mid] > u) hi = mid;
        else lo = mid + 1;
      }
      return lo;
    },
    probability: (rank) => (rank < 0 || rank >= n ? 0 : 1 / Math.pow(rank + 1, s) / total),
  };
}
