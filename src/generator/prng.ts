// Seeded pseudo-random streams for the traffic generator: sfc32, seeded through splitmix32.
// Streams fork by label, so extra draws in one part (say, inventory) never shift another part's sequence.

/** A deterministic random stream; every method draws from the same underlying sequence. */
export interface Prng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [0, n). */
  int(n: number): number;
  /** Integer in [lo, hi], both inclusive. */
  between(lo: number, hi: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  /** Standard normal deviate. */
  normal(): number;
  /** Log-normal with the given median and log-space standard deviation. */
  logNormal(median: number, sigma: number): number;
  /** Exponential with the given mean. */
  exponential(mean: number): number;
  /** An independent stream derived from this stream's seed and a label (not from its current state). */
  fork(label: string): Prng;
}

const TWO_32 = 4_294_967_296;

/** Mixes an arbitrary number and a label into a 32-bit seed (FNV-1a over the label, folded with the number's two halves). */
export function hashSeed(seed: number, label = ""): number {
  const whole = Number.isFinite(seed) ? Math.trunc(seed) : 0;
  const lo = whole >>> 0;
  const hi = Math.floor(whole / TWO_32) >>> 0;
  let h = 0x811c9dc5 ^ lo;
  h = Math.imul(h ^ hi, 0x01000193) >>> 0;
  for (let i = 0; i < label.length; i++) {
    h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Creates a stream from a numeric seed and an optional label naming its purpose. */
export function createPrng(seed: number, label = ""): Prng {
  let x = hashSeed(seed, label);
  const splitmix = (): number => {
    x = (x + 0x9e3779b9) | 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  let spare = Number.NaN;

  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / TWO_32;
  };
  for (let i = 0; i < 12; i++) next();

  const normal = (): number => {
    if (!Number.isNaN(spare)) {
      const s = spare;
      spare = Number.NaN;
      return s;
    }
    // 1 - next() keeps the logarithm's argument in (0, 1].
    const r = Math.sqrt(-2 * Math.log(1 - next()));
    const theta = 2 * Math.PI * next();
    spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  };

  return {
    next,
    int: (n) => Math.floor(next() * n),
    between: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: (p) => next() < p,
    normal,
    logNormal: (median, sigma) => median * Math.exp(sigma * normal()),
    exponential: (mean) => -mean * Math.log(1 - next()),
    fork: (sub) => createPrng(seed, label === "" ? sub : `${label}/${sub}`),
  };
}
