// Exact dedupe by eventId per partition over an event-time horizon, persisted in `<data-dir>/dedupe.db` for restarts.
// Ids sit in a recycled byte arena + open-addressing index (~40 B per UUID vs ~120 B in a Map); restores stay exact.

import { Database, type Statement } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

export interface Deduper {
  /** true when (partition, eventId) is a duplicate; otherwise records it with its log offset. */
  check(partition: number, eventId: string, offset: number, eventTime: number): boolean;
  /**
   * Persist ids recorded since the last flush of this partition as one chunk row and delete chunks whose ids all expired;
   * one transaction. `restorableFrom` is the lowest offset a later `restore` may be given (the committed offset): chunks
   * are pruned only when their ids are expired as of that point. Omitted, it is the `upto` of the last restore.
   */
  flush(partition: number, restorableFrom?: number): void;
  /**
   * Rebuild the exact state of `partition` as of log offset `upto` (ids of records with offset < upto): load chunks, drop
   * ids at or after `upto`, then re-scan the log from the end of the persisted chunks up to `upto` with `readLog`
   * (which should start at the log's first retained offset when asked for less) and `extract` (null = dead-lettered).
   */
  restore(
    partition: number,
    upto: number,
    readLog: (from: number, to: number) => Iterable<{ offset: number; value: string }>,
    extract: (value: string) => { eventId: string; time: number } | null,
  ): void;
  /** Lowest offset the dedupe state still needs from the log for this partition (so the log is not truncated past it). */
  neededFrom(partition: number): number;
  /** Live (unexpired) ids remembered for `partition`, or for all partitions. */
  size(partition?: number): number;
  /** Bytes held by the in-memory id arenas and indexes (ids awaiting their flush are not counted). */
  memoryBytes?(): number;
  /** Close the database. Ids not flushed are not lost: `restore` re-scans them from the log. */
  close(): void;
}

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

interface Segment {
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

function idMemory(horizon: number, tuning: IdMemoryTuning, pool: Segment[]): IdMemory {
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

// ---------------------------------------------------------------------------------------------------------------------
// Persistence and partitions.
// ---------------------------------------------------------------------------------------------------------------------

interface PartitionState {
  /**
   * The remembered ids; an id expires once the clock (max event time of the ids recorded; duplicates and dead letters
   * do not move it) passes its seen + horizon, where seen = the clock when it was recorded.
   */
  mem: IdMemory;
  pendIds: string[];
  pendOffsets: number[];
  pendSeen: number[];
  /** Every record below this offset is covered by persisted chunks; -1 = unknown (never restored nor flushed). */
  flushedEnd: number;
  /** 1 + the highest offset checked (or restored); -1 = none. */
  checkedEnd: number;
  firstChecked: number;
  /** Restores are only ever asked for offsets at or after this (committed offsets do not go back); -1 = unknown. */
  restoredUpto: number;
}

const DEDUPE_FILE = "dedupe.db";
const BUSY_TIMEOUT_MS = 10_000;
const BLOB_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS chunks(
  partition INTEGER NOT NULL,
  first_offset INTEGER NOT NULL,
  end_offset INTEGER NOT NULL,
  max_seen REAL,
  blob BLOB NOT NULL,
  PRIMARY KEY(partition, first_offset)
);
CREATE TABLE IF NOT EXISTS coverage(partition INTEGER PRIMARY KEY, end_offset INTEGER NOT NULL);
`;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Chunk blob: u32 count, u32 version, f64 offsets[count], f64 seen[count] (little-endian), then the ids as a UTF-8
 * JSON array (JSON keeps any string exact, lone surrogates included).
 */
function encodeChunk(ids: string[], offsets: number[], seen: number[]): Uint8Array {
  const n = ids.length;
  const json = encoder.encode(JSON.stringify(ids));
  const head = 8 + 16 * n;
  const out = new Uint8Array(head + json.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, n, true);
  dv.setUint32(4, BLOB_VERSION, true);
  for (let i = 0; i < n; i++) {
    dv.setFloat64(8 + 8 * i, offsets[i], true);
    dv.setFloat64(8 + 8 * n + 8 * i, seen[i], true);
  }
  out.set(json, head);
  return out;
}

interface DecodedChunk {
  ids: string[];
  offsets: number[];
  seen: number[];
}

function decodeChunk(blob: Uint8Array): DecodedChunk {
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const n = dv.getUint32(0, true);
  const version = dv.getUint32(4, true);
  if (version !== BLOB_VERSION) throw new Error(`dedupe chunk has unknown format version ${version}`);
  const offsets = new Array<number>(n);
  const seen = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    offsets[i] = dv.getFloat64(8 + 8 * i, true);
    seen[i] = dv.getFloat64(8 + 8 * n + 8 * i, true);
  }
  const ids = JSON.parse(decoder.decode(blob.subarray(8 + 16 * n))) as string[];
  return { ids, offsets, seen };
}

/**
 * Open (creating if needed) the dedupe store `dir/dedupe.db`. Several dedupers (one per worker thread) may share the
 * file as long as each owns distinct partitions. `synchronous` as for the log: NORMAL survives kill -9, FULL power loss.
 */
export function createDeduper(opts: { dir: string; horizonMs: number; synchronous?: "NORMAL" | "FULL" }): Deduper {
  const horizon = opts.horizonMs;
  if (!(horizon >= 0)) throw new Error(`dedupe horizon must be >= 0 ms, got ${horizon}`);
  mkdirSync(opts.dir, { recursive: true });
  const db = new Database(join(opts.dir, DEDUPE_FILE), { create: true, readwrite: true });
  try {
    db.run(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.run("PRAGMA journal_mode = WAL");
    db.run(`PRAGMA synchronous = ${opts.synchronous ?? "NORMAL"}`);
    db.transaction(() => db.run(SCHEMA)).immediate();
  } catch (err) {
    db.close();
    throw err;
  }

  const begin = db.prepare("BEGIN IMMEDIATE");
  const commit = db.prepare("COMMIT");
  const rollback = db.prepare("ROLLBACK");
  const insertChunk = db.prepare<void, [number, number, number, number | null, Uint8Array]>(
    "INSERT OR REPLACE INTO chunks(partition, first_offset, end_offset, max_seen, blob) VALUES (?, ?, ?, ?, ?)",
  );
  const setCoverage = db.prepare<void, [number, number]>("INSERT OR REPLACE INTO coverage(partition, end_offset) VALUES (?, ?)");
  const getCoverage = db.prepare<{ end_offset: number }, [number]>("SELECT end_offset FROM coverage WHERE partition = ?");
  // Chunks are contiguous ranges, so the newest one ending at or before R is found by a short descending scan.
  const pruneAnchor = db.prepare<{ first_offset: number; max_seen: number | null }, [number, number]>(
    "SELECT first_offset, max_seen FROM chunks WHERE partition = ?1 AND end_offset <= ?2 AND max_seen IS NOT NULL " +
      "ORDER BY first_offset DESC LIMIT 1",
  );
  const prune = db.prepare<void, [number, number, number, number]>(
    "DELETE FROM chunks WHERE partition = ?1 AND first_offset < ?2 AND max_seen + ?3 < ?4",
  );
  const chunksOf = db.prepare<{ first_offset: number; end_offset: number; blob: Uint8Array }, [number]>(
    "SELECT first_offset, end_offset, blob FROM chunks WHERE partition = ? ORDER BY first_offset",
  );
  const deleteChunk = db.prepare<void, [number, number]>("DELETE FROM chunks WHERE partition = ? AND first_offset = ?");

  const states: Array<PartitionState | undefined> = [];
  /** Segments freed by expiry, reused by any partition of this deduper. */
  const pool: Segment[] = [];

  function newState(): PartitionState {
    return {
      mem: idMemory(horizon, {}, pool),
      pendIds: [],
      pendOffsets: [],
      pendSeen: [],
      flushedEnd: -1,
      checkedEnd: -1,
      firstChecked: -1,
      restoredUpto: -1,
    };
  }

  function inTransaction<T>(fn: () => T): T {
    begin.run();
    try {
      const out = fn();
      commit.run();
      return out;
    } catch (err) {
      if (db.inTransaction) rollback.run();
      throw err;
    }
  }

  function stateOf(partition: number): PartitionState {
    let st = states[partition];
    if (st === undefined) {
      st = newState();
      states[partition] = st;
    }
    return st;
  }

  function checkIn(st: PartitionState, eventId: string, offset: number, eventTime: number): boolean {
    if (offset + 1 > st.checkedEnd) st.checkedEnd = offset + 1;
    if (st.firstChecked < 0) st.firstChecked = offset;
    if (st.mem.check(eventId, eventTime)) return true;
    st.pendIds.push(eventId);
    st.pendOffsets.push(offset);
    st.pendSeen.push(st.mem.clock);
    return false;
  }

  return {
    check(partition, eventId, offset, eventTime) {
      return checkIn(stateOf(partition), eventId, offset, eventTime);
    },

    flush(partition, restorableFrom) {
      const st = states[partition];
      if (st === undefined) return;
      const n = st.pendIds.length;
      const first = st.flushedEnd >= 0 ? st.flushedEnd : st.firstChecked >= 0 ? st.firstChecked : 0;
      const end = Math.max(first, st.checkedEnd);
      const bound = restorableFrom ?? st.restoredUpto;
      if (n === 0 && end === st.flushedEnd && restorableFrom === undefined) return;
      inTransaction(() => {
        if (n > 0) {
          const maxSeen = st.pendSeen[n - 1]; // the clock only grows, so the last one is the max
          const blob = encodeChunk(st.pendIds, st.pendOffsets, st.pendSeen);
          insertChunk.run(partition, first, end, Number.isFinite(maxSeen) ? maxSeen : null, blob);
        }
        setCoverage.run(partition, end);
        if (bound >= 0) {
          // Every restore point u >= bound includes the anchor chunk, so clock(u) >= anchor.max_seen and chunks
          // expired against that clock are expired at any u: pruning them cannot change a restored state.
          const anchor = pruneAnchor.get(partition, bound);
          if (anchor !== null && anchor.max_seen !== null) prune.run(partition, anchor.first_offset, horizon, anchor.max_seen);
        }
      });
      // Fresh arrays rather than length = 0, which keeps the grown backing stores alive until the next flush.
      st.pendIds = [];
      st.pendOffsets = [];
      st.pendSeen = [];
      st.flushedEnd = end;
      st.mem.sweep();
    },

    restore(partition, upto, readLog, extract) {
      const st = newState();
      const kept: DecodedChunk[] = [];
      const coveredEnd = inTransaction(() => {
        for (const row of chunksOf.all(partition)) {
          if (row.first_offset >= upto) {
            deleteChunk.run(partition, row.first_offset);
            continue;
          }
          const chunk = decodeChunk(row.blob);
          if (row.end_offset > upto) {
            // The stored state must read "as of upto" too, or the next flush would overlap this chunk.
            let m = 0;
            while (m < chunk.offsets.length && chunk.offsets[m] < upto) m++;
            chunk.ids.length = m;
            chunk.offsets.length = m;
            chunk.seen.length = m;
            if (m === 0) {
              deleteChunk.run(partition, row.first_offset);
              continue;
            }
            const maxSeen = chunk.seen[m - 1];
            insertChunk.run(
              partition,
              row.first_offset,
              upto,
              Number.isFinite(maxSeen) ? maxSeen : null,
              encodeChunk(chunk.ids, chunk.offsets, chunk.seen),
            );
          }
          kept.push(chunk);
        }
        const persisted = getCoverage.get(partition)?.end_offset ?? 0;
        const end = Math.min(persisted, upto);
        setCoverage.run(partition, end);
        return end;
      });

      let clock = -Infinity;
      for (const c of kept) for (const s of c.seen) if (s > clock) clock = s;
      st.mem.raiseClock(clock);
      for (const c of kept) {
        for (let i = 0; i < c.ids.length; i++) if (c.seen[i] + horizon >= clock) st.mem.put(c.ids[i], c.seen[i]);
      }
      st.flushedEnd = coveredEnd;
      st.checkedEnd = coveredEnd;
      st.restoredUpto = upto;
      states[partition]?.mem.release();
      states[partition] = st;

      if (coveredEnd < upto) {
        for (const rec of readLog(coveredEnd, upto)) {
          if (rec.offset < coveredEnd || rec.offset >= upto) continue;
          const ev = extract(rec.value);
          if (ev !== null) checkIn(st, ev.eventId, rec.offset, ev.time);
        }
      }
      // Dead-lettered records at the end of the range are covered too.
      if (upto > st.checkedEnd) st.checkedEnd = upto;
      st.mem.sweep();
    },

    neededFrom(partition) {
      const st = states[partition];
      if (st !== undefined && st.flushedEnd >= 0) return st.flushedEnd;
      const persisted = getCoverage.get(partition)?.end_offset;
      if (persisted !== undefined) return st !== undefined && st.firstChecked >= 0 ? Math.min(persisted, st.firstChecked) : persisted;
      return st !== undefined && st.firstChecked >= 0 ? st.firstChecked : 0;
    },

    size(partition) {
      if (partition !== undefined) return states[partition]?.mem.size() ?? 0;
      let total = 0;
      for (const st of states) if (st !== undefined) total += st.mem.size();
      return total;
    },

    memoryBytes() {
      let total = 0;
      for (const st of states) if (st !== undefined) total += st.mem.bytes();
      for (const s of pool) total += s.buf.byteLength;
      return total;
    },

    close() {
      const stmts = [begin, commit, rollback, insertChunk, setCoverage, getCoverage, pruneAnchor, prune, chunksOf, deleteChunk];
      for (const s of stmts as Statement[]) s.finalize();
      db.close();
      for (const st of states) st?.mem.release();
      states.length = 0;
      pool.length = 0;
    },
  };
}
