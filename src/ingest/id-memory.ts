// Compact exact memory of recently seen event ids for one partition: a recycled byte arena plus an
// open-addressing index, about 40 B per UUID id; expiry follows the partition clock (see dedupe.ts).

// ---------------------------------------------------------------------------------------------------------------------
// Compact exact id memory of one partition.
//
// Arena: segments of SEGMENT_BYTES, each entry `seen` (u32 delta from the segment's base, or f64 in a "wide" segment
// when a seen is not an integer) then the key. Appends follow the clock, so arena order is expiry order and expiry is a
// cursor moving through the arena: each expired entry is removed from the index, and a segment the cursor has left is
// recycled whole. An id recorded again after it expired gets a new entry; the index slot moves to it and the old entry
// is skipped when the cursor reaches it.
// Key: a header (1 byte; 3 or 5 with the length after it for payloads of 252 bytes or more), then the payload. A UUID
// (36 chars, one letter case) packs into 16 bytes; anything else is WTF-8 (UTF-8 that keeps lone surrogates), so the
// encoding is injective and equal bytes mean equal strings.
// Index: linear probing over Int32Array pairs [ref, hash]; ref = (segment seq mod 2^16) << 16 | entry offset, 0 = empty
// (offset 0 of a segment is never used). The stored hash rejects most candidates without touching the arena, and lets
// the table be resized without re-reading keys. Deletion shifts back, so there are no tombstones.
// ---------------------------------------------------------------------------------------------------------------------

/** Knobs of the id memory; tests shrink them to force hash collisions and segment turnover. */
export interface IdMemoryTuning {
  /** Arena segment size in bytes, 64..65536 (entry offsets are 16-bit). Default 65536. */
  segmentBytes?: number;
  /** Initial and smallest number of index slots, a power of two >= 2. Default 1024. */
  minSlots?: number;
  /** AND-ed into every key hash; a small mask makes many keys share a hash. Default all bits. */
  hashMask?: number;
}

/** The remembered ids of one partition and its clock. */
export interface IdMemory {
  /** Max event time of the ids recorded (duplicates do not move it). */
  readonly clock: number;
  /**
   * true when `id` is remembered and unexpired (seen + horizon >= clock); otherwise moves the clock to `eventTime` if
   * later, records `id` with seen = clock, and returns false.
   */
  check(id: string, eventTime: number): boolean;
  /** Record `id` with the given `seen`, replacing an earlier record of it; the clock does not move (restore). */
  put(id: string, seen: number): void;
  /** Move the clock forward to `t` (restore). */
  raiseClock(t: number): void;
  /** Forget the expired prefix of the arena now (otherwise done every SWEEP_EVERY records). */
  sweep(): void;
  /** Live ids (sweeps first). */
  size(): number;
  /** Bytes of arena segments and index held. */
  bytes(): number;
  /** Hand the segments back to the pool; the memory must not be used afterwards. */
  release(): void;
}

export interface Segment {
  buf: Uint8Array;
  dv: DataView;
  /** Entries hold `seen` as f64 (any number) rather than a u32 delta from `base`. */
  wide: boolean;
  base: number;
  /** Write position; entries start at 1 so that ref 0 can mean "empty". */
  end: number;
}

const SEGMENT_BYTES = 1 << 16;
const MIN_SLOTS = 1024;
const MAX_LOAD = 0.75;
/** Inserts between two expiry sweeps: amortises the sweep while keeping at most this many dead entries extra. */
const SWEEP_EVERY = 4096;
/** Recycled segments kept per deduper; a steady stream frees about as many as it fills, so a few suffice. */
const POOL_MAX = 32;
const MAX_SEGMENTS = 1 << 16;

/** Key headers: below H_UUID_LOWER the byte is the payload length. */
const H_UUID_LOWER = 0xfc;
const H_UUID_UPPER = 0xfd;
const H_LEN16 = 0xfe;
const H_LEN32 = 0xff;
/** Payload offset in the scratch buffer: room for the longest header in front of it. */
const PAYLOAD_AT = 5;

const HEX = new Int8Array(128).fill(-1);
/** 1 for a-f, 2 for A-F: a UUID mixing both stays raw so that each string has exactly one encoding. */
const LETTER_CASE = new Uint8Array(128);
for (let c = 0; c < 10; c++) HEX[48 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[97 + c] = 10 + c;
  HEX[65 + c] = 10 + c;
  LETTER_CASE[97 + c] = 1;
  LETTER_CASE[65 + c] = 2;
}

// Scratch key of the current call; one per thread is enough since calls never nest.
let kbuf = new Uint8Array(512);
let kStart = 0;
let kLen = 0;

function packUuid(s: string): boolean {
  const b = kbuf;
  let p = PAYLOAD_AT;
  let cases = 0;
  let i = 0;
  while (i < 36) {
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (s.charCodeAt(i) !== 45) return false;
      i++;
      continue;
    }
    const c1 = s.charCodeAt(i);
    const c2 = s.charCodeAt(i + 1);
    if ((c1 | c2) >= 128) return false;
    const v1 = HEX[c1];
    const v2 = HEX[c2];
    if ((v1 | v2) < 0) return false;
    cases |= LETTER_CASE[c1] | LETTER_CASE[c2];
    b[p++] = (v1 << 4) | v2;
    i += 2;
  }
  if (cases === 3) return false;
  b[PAYLOAD_AT - 1] = cases === 2 ? H_UUID_UPPER : H_UUID_LOWER;
  kStart = PAYLOAD_AT - 1;
  kLen = 17;
  return true;
}

/** Encode `s` into the scratch key (kbuf[kStart, kStart + kLen)). */
function encodeKey(s: string): void {
  const n = s.length;
  if (n === 36 && packUuid(s)) return;
  if (kbuf.length < PAYLOAD_AT + 3 * n) kbuf = new Uint8Array(2 * (PAYLOAD_AT + 3 * n));
  const b = kbuf;
  let p = PAYLOAD_AT;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      b[p++] = c;
    } else if (c < 0x800) {
      b[p++] = 0xc0 | (c >> 6);
      b[p++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c < 0xdc00 && i + 1 < n) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d < 0xe000) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          b[p++] = 0xf0 | (cp >> 18);
          b[p++] = 0x80 | ((cp >> 12) & 0x3f);
          b[p++] = 0x80 | ((cp >> 6) & 0x3f);
          b[p++] = 0x80 | (cp & 0x3f);
          i++;
          continue;
        }
      }
      // Lone surrogates too: WTF-8 writes them as 3 bytes where UTF-8 would replace them with U+FFFD.
      b[p++] = 0xe0 | (c >> 12);
      b[p++] = 0x80 | ((c >> 6) & 0x3f);
      b[p++] = 0x80 | (c & 0x3f);
    }
  }
  const len = p - PAYLOAD_AT;
  if (len < H_UUID_LOWER) {
    kStart = PAYLOAD_AT - 1;
    b[kStart] = len;
  } else if (len <= 0xffff) {
    kStart = PAYLOAD_AT - 3;
    b[kStart] = H_LEN16;
    b[kStart + 1] = len & 0xff;
    b[kStart + 2] = len >>> 8;
  } else {
    kStart = 0;
    b[0] = H_LEN32;
    b[1] = len & 0xff;
    b[2] = (len >>> 8) & 0xff;
    b[3] = (len >>> 16) & 0xff;
    b[4] = len >>> 24;
  }
  kLen = p - kStart;
}

/** Length of the key (header included) that starts at `k`. */
function keyLength(b: Uint8Array, k: number): number {
  const h = b[k];
  if (h < H_UUID_LOWER) return 1 + h;
  if (h <= H_UUID_UPPER) return 17;
  if (h === H_LEN16) return 3 + (b[k + 1] | (b[k + 2] << 8));
  return 5 + (b[k + 1] | (b[k + 2] << 8) | (b[k + 3] << 16)) + b[k + 4] * 0x1000000;
}

/** FNV-1a over the bytes, then murmur3's finaliser so that the low bits (the home slot) mix every byte. */
function hashBytes(b: Uint8Array, start: number, len: number): number {
  let h = 0x811c9dc5 ^ len;
  for (let i = start, end = start + len; i < end; i++) h = Math.imul(h ^ b[i], 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n >= 2 && (n & (n - 1)) === 0 && n <= 1 << 30;
}

/** A standalone id memory with its own segment pool; exported for tests and benchmarks. */
export function createIdMemory(horizonMs: number, tuning: IdMemoryTuning = {}): IdMemory {
  return idMemory(horizonMs, tuning, []);
}

/** An id memory drawing arena segments from (and returning them to) a pool shared by partitions. */
export function idMemory(horizon: number, tuning: IdMemoryTuning, pool: Segment[]): IdMemory {
  const segBytes = tuning.segmentBytes ?? SEGMENT_BYTES;
  const minSlots = tuning.minSlots ?? MIN_SLOTS;
  const hashMask = (tuning.hashMask ?? -1) | 0;
  if (!(Number.isInteger(segBytes) && segBytes >= 64 && segBytes <= SEGMENT_BYTES)) {
    throw new Error(`dedupe segment size must be an integer in 64..${SEGMENT_BYTES}, got ${segBytes}`);
  }
  if (!isPowerOfTwo(minSlots)) throw new Error(`dedupe index slots must be a power of two >= 2, got ${minSlots}`);

  let clock = -Infinity;
  let tab = new Int32Array(2 * minSlots);
  let mask = minSlots - 1;
  let maxCount = Math.floor(minSlots * MAX_LOAD);
  let count = 0;
  /** Live segments, oldest first; segs[0] has sequence number headSeq (mod 2^16). */
  const segs: Segment[] = [];
  let headSeq = 0;
  /** Entries of segs[0] before this offset are expired and out of the index. */
  let cursor = 1;
  let sinceSweep = 0;

  function segOf(ref: number): Segment {
    return segs[((ref >>> 16) - headSeq) & 0xffff];
  }

  function seenOf(ref: number): number {
    const seg = segOf(ref);
    const off = ref & 0xffff;
    return seg.wide ? seg.dv.getFloat64(off, true) : seg.base + seg.dv.getUint32(off, true);
  }

  function sameKey(ref: number): boolean {
    const seg = segOf(ref);
    const a = kbuf;
    const b = seg.buf;
    let p = (ref & 0xffff) + (seg.wide ? 8 : 4);
    // Headers compare first and encode the length, so a mismatch stops before reading past a shorter key.
    for (let j = kStart, e = kStart + kLen; j < e; j++, p++) if (a[j] !== b[p]) return false;
    return true;
  }

  /** Slot holding the scratch key, or the empty slot where it would go. */
  function find(h: number): number {
    let i = h & mask;
    for (;;) {
      const ref = tab[2 * i];
      if (ref === 0) return i;
      if (tab[2 * i + 1] === h && sameKey(ref)) return i;
      i = (i + 1) & mask;
    }
  }

  function resize(slots: number): void {
    const old = tab;
    tab = new Int32Array(2 * slots);
    mask = slots - 1;
    maxCount = Math.floor(slots * MAX_LOAD);
    for (let j = 0; j < old.length; j += 2) {
      const ref = old[j];
      if (ref === 0) continue;
      const h = old[j + 1];
      let i = h & mask;
      while (tab[2 * i] !== 0) i = (i + 1) & mask;
      tab[2 * i] = ref;
      tab[2 * i + 1] = h;
    }
  }

  function insertAt(i: number, ref: number, h: number): void {
    if (count >= maxCount) {
      resize(2 * (mask + 1));
      i = h & mask;
      while (tab[2 * i] !== 0) i = (i + 1) & mask;
    }
    tab[2 * i] = ref;
    tab[2 * i + 1] = h;
    count++;
  }

  /** Backward-shift deletion: pull later members of the probe run into the hole so lookups never stop early. */
  function removeAt(i: number): void {
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const ref = tab[2 * j];
      if (ref === 0) break;
      const home = tab[2 * j + 1] & mask;
      if (i <= j ? i < home && home <= j : i < home || home <= j) continue;
      tab[2 * i] = ref;
      tab[2 * i + 1] = tab[2 * j + 1];
      i = j;
    }
    tab[2 * i] = 0;
    tab[2 * i + 1] = 0;
    count--;
  }

  /** Drop the index slot of the entry `ref` (key at b[k, k + len)) if the slot still points at it. */
  function forget(b: Uint8Array, k: number, len: number, ref: number): void {
    const h = hashBytes(b, k, len) & hashMask;
    let i = h & mask;
    for (;;) {
      const r = tab[2 * i];
      if (r === 0) return; // recorded again later: the slot moved to the newer entry
      if (r === ref) return removeAt(i);
      i = (i + 1) & mask;
    }
  }

  function openSegment(seen: number, need: number): Segment {
    if (segs.length >= MAX_SEGMENTS) throw new Error(`dedupe arena of one partition exceeds ${MAX_SEGMENTS} segments`);
    let seg: Segment;
    const recycled = 1 + need <= segBytes ? pool.pop() : undefined;
    if (recycled !== undefined) seg = recycled;
    else {
      const buf = new Uint8Array(Math.max(segBytes, 1 + need));
      seg = { buf, dv: new DataView(buf.buffer), wide: false, base: 0, end: 1 };
    }
    seg.wide = !Number.isInteger(seen);
    seg.base = seg.wide ? 0 : seen;
    seg.end = 1;
    segs.push(seg);
    return seg;
  }

  function recycle(seg: Segment): void {
    if (seg.buf.length === segBytes && pool.length < POOL_MAX) pool.push(seg);
  }

  /** Append the scratch key with `seen`; returns its ref. */
  function append(seen: number): number {
    let seg: Segment | undefined = segs[segs.length - 1];
    if (seg !== undefined) {
      if (seg.wide) {
        if (seg.end + 8 + kLen > seg.buf.length) seg = undefined;
      } else {
        const d = seen - seg.base;
        const fits = d >= 0 && d <= 0xffffffff && Number.isInteger(d) && seg.base + d === seen;
        if (!fits || seg.end + 4 + kLen > seg.buf.length) seg = undefined;
      }
    }
    if (seg === undefined) seg = openSegment(seen, (Number.isInteger(seen) ? 4 : 8) + kLen);
    const off = seg.end;
    let p: number;
    if (seg.wide) {
      seg.dv.setFloat64(off, seen, true);
      p = off + 8;
    } else {
      seg.dv.setUint32(off, seen - seg.base, true);
      p = off + 4;
    }
    const a = kbuf;
    const b = seg.buf;
    for (let j = kStart, e = kStart + kLen; j < e; j++) b[p++] = a[j];
    seg.end = p;
    return (((headSeq + segs.length - 1) & 0xffff) << 16) | off;
  }

  function sweep(): void {
    sinceSweep = 0;
    while (segs.length > 0) {
      const seg = segs[0];
      const wide = seg.wide;
      let pos = cursor;
      while (pos < seg.end) {
        const seen = wide ? seg.dv.getFloat64(pos, true) : seg.base + seg.dv.getUint32(pos, true);
        if (seen + horizon >= clock) {
          cursor = pos;
          return shrinkIfSparse();
        }
        const k = pos + (wide ? 8 : 4);
        const len = keyLength(seg.buf, k);
        forget(seg.buf, k, len, (headSeq << 16) | pos);
        pos = k + len;
      }
      if (segs.length === 1) {
        // Everything expired and nothing in the index points here: write the tail again from its start.
        seg.end = 1;
        cursor = 1;
        break;
      }
      segs.shift();
      headSeq = (headSeq + 1) & 0xffff;
      cursor = 1;
      recycle(seg);
    }
    shrinkIfSparse();
  }

  function shrinkIfSparse(): void {
    let slots = mask + 1;
    while (slots > minSlots && count < slots >> 3) slots >>= 1;
    if (slots !== mask + 1) resize(slots);
  }

  function record(i: number, h: number, seen: number): void {
    const old = tab[2 * i];
    const ref = append(seen);
    if (old !== 0) tab[2 * i] = ref; // same key, same hash: the slot stays valid
    else insertAt(i, ref, h);
  }

  return {
    get clock() {
      return clock;
    },

    check(id, eventTime) {
      encodeKey(id);
      const h = hashBytes(kbuf, kStart, kLen) & hashMask;
      const i = find(h);
      const ref = tab[2 * i];
      // An expired id still in the arena (sweeps are lazy) counts as absent, so sweep timing never changes a decision.
      if (ref !== 0 && seenOf(ref) + horizon >= clock) return true;
      if (eventTime > clock) clock = eventTime;
      record(i, h, clock);
      if (++sinceSweep >= SWEEP_EVERY) sweep();
      return false;
    },

    put(id, seen) {
      encodeKey(id);
      const h = hashBytes(kbuf, kStart, kLen) & hashMask;
      record(find(h), h, seen);
    },

    raiseClock(t) {
      if (t > clock) clock = t;
    },

    sweep,

    size() {
      sweep();
      return count;
    },

    bytes() {
      let n = tab.byteLength;
      for (const s of segs) n += s.buf.byteLength;
      return n;
    },

    release() {
      for (const s of segs) recycle(s);
      segs.length = 0;
      count = 0;
    },
  };
}

