// Time-varying traffic intensity: a sinusoidal day (peak 20:00 UTC) times occasional 10–30 s bursts at 3–5×.
// Normalised so the long-run mean factor is 1, keeping the configured rate the true average rate.

import type { Prng } from "./prng.ts";

export const DAY_MS = 86_400_000;
const PEAK_MS = 20 * 3_600_000;
const BURST_MIN_MS = 10_000;
const BURST_MAX_MS = 30_000;
const BURST_MIN_X = 3;
const BURST_MAX_X = 5;

export interface RateShapeOptions {
  rng: Prng;
  /** time from which bursts are scheduled */
  start: number;
  diurnal: boolean;
  bursts: boolean;
  /** diurnal amplitude, default 0.5 (trough 0.5×, peak 1.5×) */
  amplitude?: number;
  /** mean quiet time between bursts, default 5 min */
  burstEveryMs?: number;
}

export interface RateShape {
  /** Multiplier of the base rate at time t; t must not decrease between calls. */
  factor(t: number): number;
  /** Burst multiplier in force at the last factor() time (1 outside bursts). */
  readonly burst: number;
}

/** Creates the intensity curve; bursts are drawn lazily from rng as time advances. */
export function createRateShape(opts: RateShapeOptions): RateShape {
  const amp = opts.diurnal ? (opts.amplitude ?? 0.5) : 0;
  const every = opts.burstEveryMs ?? 300_000;
  const meanLen = (BURST_MIN_MS + BURST_MAX_MS) / 2;
  const meanX = (BURST_MIN_X + BURST_MAX_X) / 2;
  // Renewal argument: a cycle is one quiet gap plus one burst, so bursts fill meanLen / (every + meanLen) of time.
  const norm = opts.bursts ? 1 / (1 + (meanLen / (every + meanLen)) * (meanX - 1)) : 1;
  const rng = opts.rng;
  let burstStart = opts.bursts ? opts.start + rng.exponential(every) : Infinity;
  let burstEnd = burstStart + BURST_MIN_MS + rng.next() * (BURST_MAX_MS - BURST_MIN_MS);
  let burstX = BURST_MIN_X + rng.next() * (BURST_MAX_X - BURST_MIN_X);
  let current = 1;

  return {
    factor(t) {
      while (t >= burstEnd) {
        burstStart = burstEnd + rng.exponential(every);
        burstEnd = burstStart + BURST_MIN_MS + rng.next() * (BURST_MAX_MS - BURST_MIN_MS);
        burstX = BURST_MIN_X + rng.next() * (BURST_MAX_X - BURST_MIN_X);
      }
      current = t >= burstStart ? burstX : 1;
      let f = norm * current;
      if (amp !== 0) {
        const phase = (((t - PEAK_MS) % DAY_MS) + DAY_MS) % DAY_MS;
        f *= 1 + amp * Math.cos((2 * Math.PI * phase) / DAY_MS);
      }
      return f;
    },
    get burst() {
      return current;
    },
  };
}
