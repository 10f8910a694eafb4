// HyperLogLog distinct counter (p = 14, 64-bit hashes) for uniqueUsers / uniqueSessions.
// Sparse: open-addressing table of packed (index25 << 6 | rho) at precision 25 (HLL++ style, so
// small counts are near exact) until it would pass 1/4 of the dense registers, then dense p = 14;
// Ertl's improved raw estimator (arXiv 1702.01284) in both, no bias tables.

/** Precision: 2^14 registers, standard error 1.04 / sqrt(m) ≈ 0.81 %. */
export const HLL_PRECISION = 14;
/** Number of registers. */
export const HLL_REGISTERS = 1 << HLL_PRECISION;
/** Largest register value: 64 - p hash bits left for the rank, plus one. */
export const HLL_MAX_RANK = 64 - HLL_PRECISION + 1;

/**
 * Murmur3 seeds every producer must use for `add(lo, hi)`: sketches hashed with other seeds
 * cannot be merged with these (partitions and instances must agree).
 */
export const HLL_SEED_LO = 0x9747b28c;
export const HLL_SEED_HI = 0x5bd1e995;

const M = HLL_REGISTERS;
const Q = 64 - HLL_PRECISION; // rank bits
const INDEX_SHIFT = 32 - HLL_PRECISION;
const LOW_MASK = (1 << INDEX_SHIFT) - 1; // bits of `hi` below the index
// Sparse entries keep a 25-bit index (collisions ~n^2 / 2^26) and the rank of the 39 bits below.
const SP = 25;
const SM = 2 ** SP;
const SQ = 64 - SP;
const SP_SHIFT = 32 - SP;
const SP_LOW_MASK = (1 << SP_SHIFT) - 1;
const SP_EXTRA = SP - HLL_PRECISION; // index bits a sparse entry has beyond the dense index
const SP_EXTRA_MASK = (1 << SP_EXTRA) - 1;
const ALPHA_INF = 1 / (2 * Math.LN2);
// A sparse table of 1024 slots (4 KiB) is 1/4 of the dense array: growing past it goes dense.
const MAX_SPARSE_SLOTS = M >>> 4;
const FIRST_SPARSE_SLOTS = 8;
const OBJECT_OVERHEAD = 48; // rough: object header, fields, typed-array headers
const ENCODING_VERSION = 1;
const MODE_SPARSE = 0;
const MODE_DENSE = 1;

const EMPTY_TABLE = new Uint32Array(0);
// estimate() is not on the hot path, but thousands of pane sketches are read per query.
const histogram = new Float64Array(Math.max(Q, SQ) + 2);

/** A mergeable distinct-count sketch. */
export interface HyperLogLog {
  /** Adds one 64-bit hash given as its low and high unsigned 32-bit halves. */
  add(lo: number, hi: number): void;
  /** Estimated number of distinct hashes added (0 when empty). */
  estimate(): number;
  /** Register-wise max of `other` into this sketch, in place. */
  merge(other: HyperLogLog): void;
  clone(): HyperLogLog;
  isEmpty(): boolean;
  /** Approximate memory held, in bytes. */
  readonly size: number;
  readonly mode: "sparse" | "dense";
  /** A fresh dense copy of the 16384 registers (for tests and diagnostics, not hot paths). */
  registers(): Uint8Array;
  /** Compact binary form: version byte, mode byte, then sparse varint deltas or 6-bit packed registers. */
  encode(): Uint8Array;
}

/** Dense register index of a sparse entry. */
function denseIndexOf(e: number): number {
  return e >>> (6 + SP_EXTRA);
}

/** Dense rank of a sparse entry: the 11 extra index bits come first in the 50 rank bits. */
function denseRankOf(e: number): number {
  const mid = (e >>> 6) & SP_EXTRA_MASK;
  return mid !== 0 ? Math.clz32(mid) - (32 - SP_EXTRA) + 1 : SP_EXTRA + (e & 63);
}

function sigma(x: number): number {
  if (x === 1) return Infinity;
  let y = 1;
  let z = x;
  for (;;) {
    x *= x;
    const prev = z;
    z += x * y;
    y += y;
    if (z === prev) return z;
  }
}

function tau(x: number): number {
  if (x === 0 || x === 1) return 0;
  let y = 1;
  let z = 1 - x;
  for (;;) {
    x = Math.sqrt(x);
    const prev = z;
    y *= 0.5;
    z -= (1 - x) * (1 - x) * y;
    if (z === prev) return z / 3;
  }
}

/** Ertl's improved raw estimator over the register histogram c[0..q+1] of m registers. */
function estimateFromHistogram(c: Float64Array, m: number, q: number): number {
  if (c[0] === m) return 0;
  let z = m * tau(1 - c[q + 1] / m);
  for (let k = q; k >= 1; k--) z = 0.5 * (z + c[k]);
  z += m * sigma(c[0] / m);
  return (ALPHA_INF * m * m) / z;
}

function slotOf(index: number, mask: number): number {
  // Fibonacci mixing so slot order does not follow register order.
  return (Math.imul(index, 0x9e3779b1) >>> 16) & mask;
}

// A class, not closures: thousands of pane sketches live at once and share one prototype.
class Hll implements HyperLogLog {
  /** Sparse table of packed entries, 0 = free slot; unused once dense. */
  table: Uint32Array = EMPTY_TABLE;
  /** Entries in the sparse table. */
  entries = 0;
  /** Dense registers, or null while sparse. */
  dense: Uint8Array | null = null;

  add(lo: number, hi: number): void {
    const d = this.dense;
    if (d !== null) {
      const index = hi >>> INDEX_SHIFT;
      const w = hi & LOW_MASK;
      // rank of the 50 bits below the index; all zero gives 51
      const rho = w !== 0 ? Math.clz32(w) - (32 - INDEX_SHIFT) + 1 : INDEX_SHIFT + 1 + Math.clz32(lo);
      if (rho > d[index]) d[index] = rho;
      return;
    }
    const w = hi & SP_LOW_MASK;
    const rho = w !== 0 ? Math.clz32(w) - (32 - SP_SHIFT) + 1 : SP_SHIFT + 1 + Math.clz32(lo);
    this.sparseSet(hi >>> SP_SHIFT, rho);
  }

  /**
   * Keeps the max rho for a 25-bit sparse index; grows the table or turns dense when it would
   * be too full.
   */
  sparseSet(index: number, rho: number): void {
    for (;;) {
      const t = this.table;
      const mask = t.length - 1;
      if (mask >= 0) {
        let s = slotOf(index, mask);
        for (;;) {
          const e = t[s];
          if (e === 0) break;
          if (e >>> 6 === index) {
            if (rho > (e & 63)) t[s] = (index << 6) | rho;
            return;
          }
          s = (s + 1) & mask;
        }
        // Load factor 3/4 keeps linear probes short.
        if (this.entries < (t.length >>> 2) * 3) {
          t[s] = (index << 6) | rho;
          this.entries++;
          return;
        }
      }
      if (t.length >= MAX_SPARSE_SLOTS) {
        this.toDense();
        this.denseSet((index << 6) | rho);
        return;
      }
      this.rehash(t.length === 0 ? FIRST_SPARSE_SLOTS : t.length * 2);
    }
  }

  rehash(slots: number): void {
    const old = this.table;
    const t = new Uint32Array(slots);
    const mask = slots - 1;
    for (let i = 0; i < old.length; i++) {
      const e = old[i];
      if (e === 0) continue;
      let s = slotOf(e >>> 6, mask);
      while (t[s] !== 0) s = (s + 1) & mask;
      t[s] = e;
    }
    this.table = t;
  }

  toDense(): Uint8Array {
    let d = this.dense;
    if (d !== null) return d;
    d = new Uint8Array(M);
    const t = this.table;
    this.dense = d;
    for (let i = 0; i < t.length; i++) if (t[i] !== 0) this.denseSet(t[i]);
    this.table = EMPTY_TABLE;
    this.entries = 0;
    return d;
  }

  /** Folds a packed sparse entry into the dense registers. */
  denseSet(e: number): void {
    const d = this.dense as Uint8Array;
    const index = denseIndexOf(e);
    const rho = denseRankOf(e);
    if (rho > d[index]) d[index] = rho;
  }

  estimate(): number {
    const c = histogram;
    c.fill(0);
    const d = this.dense;
    if (d !== null) {
      for (let i = 0; i < M; i++) c[d[i]]++;
      return estimateFromHistogram(c, M, Q);
    }
    const t = this.table;
    for (let i = 0; i < t.length; i++) {
      const e = t[i];
      if (e !== 0) c[e & 63]++;
    }
    c[0] = SM - this.entries;
    return estimateFromHistogram(c, SM, SQ);
  }

  merge(other: HyperLogLog): void {
    if (!(other instanceof Hll)) throw new TypeError("HyperLogLog.merge: unsupported sketch implementation");
    const od = other.dense;
    if (od !== null) {
      const d = this.toDense();
      for (let i = 0; i < M; i++) if (od[i] > d[i]) d[i] = od[i];
      return;
    }
    const ot = other.table;
    for (let i = 0; i < ot.length; i++) {
      const e = ot[i];
      if (e === 0) continue;
      // re-read each time: the sparse table may turn dense part-way through
      if (this.dense === null) this.sparseSet(e >>> 6, e & 63);
      else this.denseSet(e);
    }
  }

  clone(): HyperLogLog {
    const c = new Hll();
    if (this.dense !== null) c.dense = this.dense.slice();
    else if (this.table.length > 0) {
      c.table = this.table.slice();
      c.entries = this.entries;
    }
    return c;
  }

  isEmpty(): boolean {
    const d = this.dense;
    if (d === null) return this.entries === 0;
    for (let i = 0; i < M; i++) if (d[i] !== 0) return false;
    return true;
  }

  get size(): number {
    return OBJECT_OVERHEAD + (this.dense !== null ? M : this.table.byteLength);
  }

  get mode(): "sparse" | "dense" {
    return this.dense !== null ? "dense" : "sparse";
  }

  registers(): Uint8Array {
    if (this.dense !== null) return this.dense.slice();
    const r = new Uint8Array(M);
    const t = this.table;
    for (let i = 0; i < t.length; i++) {
      const e = t[i];
      if (e === 0) continue;
      const index = denseIndexOf(e);
      const rho = denseRankOf(e);
      if (rho > r[index]) r[index] = rho;
    }
    return r;
  }

  encode(): Uint8Array {
    const d = this.dense;
    if (d !== null) {
      // 6 bits per register: 4 registers in 3 bytes.
      const out = new Uint8Array(2 + (M * 3) / 4);
      out[0] = ENCODING_VERSION;
      out[1] = MODE_DENSE;
      for (let i = 0, j = 2; i < M; i += 4, j += 3) {
        const v = d[i] | (d[i + 1] << 6) | (d[i + 2] << 12) | (d[i + 3] << 18);
        out[j] = v & 255;
        out[j + 1] = (v >>> 8) & 255;
        out[j + 2] = v >>> 16;
      }
      return out;
    }
    // Sorted packed entries as varint deltas: about 3 bytes each at 768 entries, 4 or 5 when few.
    const sorted = new Uint32Array(this.entries);
    const t = this.table;
    for (let i = 0, n = 0; i < t.length; i++) if (t[i] !== 0) sorted[n++] = t[i];
    sorted.sort();
    const out = new Uint8Array(2 + 5 + sorted.length * 5);
    out[0] = ENCODING_VERSION;
    out[1] = MODE_SPARSE;
    let o = writeVarint(out, 2, sorted.length);
    let prev = 0;
    for (let i = 0; i < sorted.length; i++) {
      o = writeVarint(out, o, sorted[i] - prev);
      prev = sorted[i];
    }
    return out.slice(0, o);
  }
}

function writeVarint(out: Uint8Array, o: number, v: number): number {
  while (v >= 0x80) {
    out[o++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[o++] = v;
  return o;
}

/** Creates an empty sketch (sparse, no table allocated until the first add). */
export function createHyperLogLog(): HyperLogLog {
  return new Hll();
}

/** Decodes `encode()` output; throws RangeError on a malformed or foreign encoding. */
export function decodeHyperLogLog(bytes: Uint8Array): HyperLogLog {
  if (bytes.length < 2) throw new RangeError("HyperLogLog: encoding too short");
  if (bytes[0] !== ENCODING_VERSION) throw new RangeError(`HyperLogLog: unknown encoding version ${bytes[0]}`);
  const h = new Hll();
  if (bytes[1] === MODE_DENSE) {
    if (bytes.length !== 2 + (M * 3) / 4) throw new RangeError("HyperLogLog: dense encoding has the wrong length");
    const d = new Uint8Array(M);
    for (let i = 0, j = 2; i < M; i += 4, j += 3) {
      const v = bytes[j] | (bytes[j + 1] << 8) | (bytes[j + 2] << 16);
      d[i] = v & 63;
      d[i + 1] = (v >>> 6) & 63;
      d[i + 2] = (v >>> 12) & 63;
      d[i + 3] = v >>> 18;
    }
    for (let i = 0; i < M; i++) if (d[i] > HLL_MAX_RANK) throw new RangeError("HyperLogLog: register out of range");
    h.dense = d;
    return h;
  }
  if (bytes[1] !== MODE_SPARSE) throw new RangeError(`HyperLogLog: unknown mode ${bytes[1]}`);
  const cursor = { o: 2 };
  const n = readVarint(bytes, cursor);
  if (n > M) throw new RangeError("HyperLogLog: too many sparse entries");
  let packed = 0;
  let prevIndex = -1;
  for (let i = 0; i < n; i++) {
    packed += readVarint(bytes, cursor);
    const index = Math.floor(packed / 64);
    const rho = packed % 64;
    if (index <= prevIndex || index >= SM || rho < 1 || rho > SQ + 1)
      throw new RangeError("HyperLogLog: malformed sparse entry");
    prevIndex = index;
    h.sparseSet(index, rho);
  }
  if (cursor.o !== bytes.length) throw new RangeError("HyperLogLog: trailing bytes");
  return h;
}

function readVarint(bytes: Uint8Array, cursor: { o: number }): number {
  let v = 0;
  let scale = 1;
  for (let k = 0; k < 5; k++) {
    if (cursor.o >= bytes.length) throw new RangeError("HyperLogLog: truncated encoding");
    const b = bytes[cursor.o++];
    v += (b & 0x7f) * scale;
    if (b < 0x80) return v;
    scale *= 128;
  }
  throw new RangeError("HyperLogLog: varint too long");
}
