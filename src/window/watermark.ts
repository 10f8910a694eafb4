// Event-time watermark: min over active partitions of (max event time - out-of-orderness).
// Partitions silent for longer than the idle timeout (processing time) stop holding it back.

export interface Watermark {
  /** note an event of partition p at event time t */
  observe(p: number, t: number): void;
  /** recompute from the partitions' clocks; never moves backwards; returns the watermark */
  advance(): number;
  readonly value: number;
  maxTime(p: number): number;
  /** state for checkpoints */
  snapshot(): { value: number; maxTime: number[] };
  restore(s: { value: number; maxTime: number[] }): void;
  /** stop tracking partition p (revoked, or never owned): it no longer holds the watermark back */
  forget(p: number): void;
  /** start tracking partition p (newly owned) from the clock its checkpoint recorded; it counts as just heard */
  adopt(p: number, maxTime: number): void;
}

export function createWatermark(opts: {
  partitions: number;
  outOfOrdernessMs: number;
  idleTimeoutMs: number;
  clock: () => number;
}): Watermark {
  const maxT = new Float64Array(opts.partitions).fill(-Infinity);
  // a partition not heard from yet holds the watermark back until the idle timeout passes, so a
  // worker that starts a little later does not find its first events already behind the watermark
  const seenAt = new Float64Array(opts.partitions).fill(opts.clock());
  // observe() only flags the partition; advance() stamps the processing time once per batch
  const heard = new Uint8Array(opts.partitions);
  let value = -Infinity;
  return {
    observe(p, t) {
      if (t > maxT[p]) maxT[p] = t;
      heard[p] = 1;
    },
    advance() {
      const now = opts.clock();
      for (let p = 0; p < heard.length; p++) {
        if (heard[p] === 1) {
          seenAt[p] = now;
          heard[p] = 0;
        }
      }
      let minActive = Infinity;
      let maxAll = -Infinity;
      for (let p = 0; p < maxT.length; p++) {
        if (maxT[p] > maxAll) maxAll = maxT[p];
        if (now - seenAt[p] < opts.idleTimeoutMs && maxT[p] < minActive) minActive = maxT[p];
      }
      // with every partition idle, nothing is in flight: the furthest clock is the honest bound
      const candidate = (minActive === Infinity ? maxAll : minActive) - opts.outOfOrdernessMs;
      if (candidate > value) value = candidate;
      return value;
    },
    get value() {
      return value;
    },
    maxTime(p) {
      return maxT[p];
    },
    snapshot() {
      return { value, maxTime: Array.from(maxT, (x) => (x === -Infinity ? -1e300 : x)) };
    },
    restore(s) {
      value = s.value ?? -Infinity;
      if (value === null || value < -1e299) value = -Infinity;
      s.maxTime.forEach((x, p) => {
        if (p < maxT.length) maxT[p] = x < -1e299 ? -Infinity : x;
      });
    },
    forget(p) {
      maxT[p] = -Infinity;
      seenAt[p] = -Infinity;
      heard[p] = 0;
    },
    adopt(p, t) {
      if (t > maxT[p]) maxT[p] = t;
      seenAt[p] = opts.clock();
    },
  };
}
