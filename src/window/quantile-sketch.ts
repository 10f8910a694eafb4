// Mergeable quantile sketch for page-load times (DDSketch, relative accuracy 1 %).
// Log-gamma buckets in one dense Float64Array that grows around the values seen, plus a zero
// bucket for values below 1e-3 ms; min, max, count and sum are kept exactly.

/** Relative accuracy: a returned quantile is within this fraction of the true value. */
export const QUANTILE_ALPHA = 0.01;
/** Values below this (ms) share the zero bucket; quantiles landing there return the exact min. */
export const QUANTILE_MIN_INDEXABLE = 1e-3;

const GAMMA = (1 + QUANTILE_ALPHA) / (1 - QUANTILE_ALPHA);
const LN_GAMMA = Math.log(GAMMA);
const INV_LN_GAMMA = 1 / LN_GAMMA;
const INITIAL_BUCKETS = 64; // a factor gamma^64 ≈ 3.6 around the first value
const ENCODING_VERSION = 1;
const EMPTY = new Float64Array(0);
const MIN_BUCKET = bucketOf(QUANTILE_MIN_INDEXABLE);
const MAX_BUCKET = bucketOf(Number.MAX_VALUE);

/** A mergeable quantile sketch over values >= 0. */
export interface QuantileSketch {
  /** Adds `value` (finite, >= 0) `count` times (a positive integer); throws RangeError otherwise. */
  add(value: number, count?: number): void;
  /** Adds every value of `other` into this sketch, in place. */
  merge(other: QuantileSketch): void;
  /**
   * The value at rank max(1, ceil(q * count)) of the sorted values, within relative error
   * QUANTILE_ALPHA (values below 1e-3 ms: absolute error below 1e-3). NaN when empty.
   */
  quantile(q: number): number;
  readonly count: number;
  /** Sum of the added values (floating-point, in the order added or merged). */
  readonly sum: number;
  /** Smallest value added, NaN when empty. */
  readonly min: number;
  /** Largest value added, NaN when empty. */
  readonly max: number;
  clone(): QuantileSketch;
  /** Compact binary form: version, zero count, sum, min, max, then (gap, count) varint pairs. */
  encode(): Uint8Array;
}

/** Bucket i holds (gamma^(i-1), gamma^i]. */
function bucketOf(value: number): number {
  return Math.ceil(Math.log(value) * INV_LN_GAMMA);
}

/** The point of bucket i whose relative distance to both bucket ends is alpha. */
function representative(i: number): number {
  return (2 * Math.exp(i * LN_GAMMA)) / (GAMMA + 1);
}

// A class, not closures: many pane sketches live at once and share one prototype.
class DdSketch implements QuantileSketch {
  /** counts[i] is bucket offset + i. */
  counts: Float64Array = EMPTY;
  offset = 0;
  zero = 0;
  n = 0;
  total = 0;
  lo = Infinity;
  hi = -Infinity;

  add(value: number, count = 1): void {
    if (!(value >= 0 && value < Infinity)) throw new RangeError(`QuantileSketch: invalid value ${value}`);
    if (count !== 1 && !(Number.isSafeInteger(count) && count > 0))
      throw new RangeError(`QuantileSketch: invalid count ${count}`);
    this.n += count;
    this.total += value * count;
    if (value < this.lo) this.lo = value;
    if (value > this.hi) this.hi = value;
    if (value < QUANTILE_MIN_INDEXABLE) {
      this.zero += count;
      return;
    }
    const b = bucketOf(value);
    let i = b - this.offset;
    // one unsigned compare covers both ends of the array
    if (i >>> 0 >= this.counts.length) i = this.cover(b, b);
    this.counts[i] += count;
  }

  /** Grows the array to cover buckets [from, to] and returns the position of `from`. */
  cover(from: number, to: number): number {
    const old = this.counts;
    const oldLen = old.length;
    let lo: number;
    let len: number;
    if (oldLen === 0) {
      len = Math.max(INITIAL_BUCKETS, to - from + 1);
      lo = from - ((len - (to - from + 1)) >> 1);
    } else {
      const oldHi = this.offset + oldLen - 1;
      const need = Math.max(oldHi, to) - Math.min(this.offset, from) + 1;
      if (need <= oldLen) return from - this.offset;
      len = Math.max(need, oldLen * 2);
      // the slack goes on the side that grew
      lo = from < this.offset ? Math.max(oldHi, to) - len + 1 : this.offset;
    }
    const counts = new Float64Array(len);
    if (oldLen > 0) counts.set(old, this.offset - lo);
    this.counts = counts;
    this.offset = lo;
    return from - lo;
  }

  merge(other: QuantileSketch): void {
    if (!(other instanceof DdSketch)) throw new TypeError("QuantileSketch.merge: unsupported sketch implementation");
    if (other.n === 0) return;
    const oc = other.counts;
    let first = 0;
    while (first < oc.length && oc[first] === 0) first++;
    let last = oc.length - 1;
    while (last >= first && oc[last] === 0) last--;
    if (first <= last) {
      const at = this.cover(other.offset + first, other.offset + last);
      const c = this.counts;
      for (let i = first; i <= last; i++) c[at + i - first] += oc[i];
    }
    this.zero += other.zero;
    this.n += other.n;
    this.total += other.total;
    if (other.lo < this.lo) this.lo = other.lo;
    if (other.hi > this.hi) this.hi = other.hi;
  }

  quantile(q: number): number {
    if (!(q >= 0 && q <= 1)) throw new RangeError(`QuantileSketch: quantile ${q} outside [0, 1]`);
    if (this.n === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.n));
    if (rank <= this.zero) return this.lo;
    let seen = this.zero;
    const c = this.counts;
    let i = 0;
    for (; i < c.length; i++) {
      seen += c[i];
      if (seen >= rank) break;
    }
    if (i === c.length) return this.hi; // unreachable while counts and n agree
    // Clamping to [min, max] can only move the answer closer to the true value.
    const v = representative(this.offset + i);
    return v < this.lo ? this.lo : v > this.hi ? this.hi : v;
  }

  get count(): number {
    return this.n;
  }

  get sum(): number {
    return this.total;
  }

  get min(): number {
    return this.n === 0 ? NaN : this.lo;
  }

  get max(): number {
    return this.n === 0 ? NaN : this.hi;
  }

  clone(): QuantileSketch {
    const c = new DdSketch();
    c.counts = this.counts.length > 0 ? this.counts.slice() : EMPTY;
    c.offset = this.offset;
    c.zero = this.zero;
    c.n = this.n;
    c.total = this.total;
    c.lo = this.lo;
    c.hi = this.hi;
    return c;
  }

  encode(): Uint8Array {
    const c = this.counts;
    let nonZero = 0;
    for (let i = 0; i < c.length; i++) if (c[i] !== 0) nonZero++;
    const w = createWriter(1 + 3 * 8 + 8 + 8 + nonZero * 16);
    w.byte(ENCODING_VERSION);
    w.f64(this.total);
    w.f64(this.lo);
    w.f64(this.hi);
    w.varint(this.zero);
    w.varint(nonZero);
    // Bucket indexes are small signed numbers (-345..666 for 1e-3..6e5 ms): the first is
    // zigzagged, the rest are positive gaps.
    let prev = NaN;
    for (let i = 0; i < c.length; i++) {
      if (c[i] === 0) continue;
      const b = this.offset + i;
      w.varint(Number.isNaN(prev) ? zigzag(b) : b - prev);
      w.varint(c[i]);
      prev = b;
    }
    return w.done();
  }
}

function zigzag(v: number): number {
  return v >= 0 ? 2 * v : -2 * v - 1;
}

function unzigzag(v: number): number {
  return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
}

interface Writer {
  byte(b: number): void;
  f64(v: number): void;
  varint(v: number): void;
  done(): Uint8Array;
}

function createWriter(capacity: number): Writer {
  const buf = new Uint8Array(capacity);
  const view = new DataView(buf.buffer);
  let o = 0;
  return {
    byte(b) {
      buf[o++] = b;
    },
    f64(v) {
      view.setFloat64(o, v, true);
      o += 8;
    },
    // Arithmetic, not bit ops: counts may pass 2^32.
    varint(v) {
      while (v >= 128) {
        buf[o++] = (v % 128) + 128;
        v = Math.floor(v / 128);
      }
      buf[o++] = v;
    },
    done() {
      return buf.slice(0, o);
    },
  };
}

/** Creates an empty sketch; its bucket array is allocated on the first add. */
export function createQuantileSketch(): QuantileSketch {
  return new DdSketch();
}

/** Decodes `encode()` output; throws RangeError on a malformed or foreign encoding. */
export function decodeQuantileSketch(bytes: Uint8Array): QuantileSketch {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  const need = (k: number): void => {
    if (o + k > bytes.length) throw new RangeError("QuantileSketch: truncated encoding");
  };
  const f64 = (): number => {
    need(8);
    const v = view.getFloat64(o, true);
    o += 8;
    return v;
  };
  const varint = (): number => {
    let v = 0;
    let scale = 1;
    for (let k = 0; k < 8; k++) {
      need(1);
      const b = bytes[o++];
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      scale *= 128;
    }
    throw new RangeError("QuantileSketch: varint too long");
  };
  need(1);
  if (bytes[o++] !== ENCODING_VERSION) throw new RangeError(`QuantileSketch: unknown encoding version ${bytes[0]}`);
  const s = new DdSketch();
  s.total = f64();
  s.lo = f64();
  s.hi = f64();
  s.zero = varint();
  const pairs = varint();
  let n = s.zero;
  let b = 0;
  for (let k = 0; k < pairs; k++) {
    const gap = varint();
    if (k === 0) b = unzigzag(gap);
    else if (gap === 0) throw new RangeError("QuantileSketch: buckets out of order");
    else b += gap;
    if (b < MIN_BUCKET || b > MAX_BUCKET) throw new RangeError("QuantileSketch: bucket out of range");
    const count = varint();
    if (count === 0) throw new RangeError("QuantileSketch: empty bucket in encoding");
    const at = s.cover(b, b); // may replace s.counts: index only after it
    s.counts[at] += count;
    n += count;
  }
  if (o !== bytes.length) throw new RangeError("QuantileSketch: trailing bytes");
  s.n = n;
  if (n > 0 && !(s.lo >= 0 && s.lo <= s.hi)) throw new RangeError("QuantileSketch: inconsistent min/max");
  return s;
}
