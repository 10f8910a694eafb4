// Lock-free single-producer/single-consumer ring of fixed-size records in a SharedArrayBuffer (worker -> aggregator).
// Hand-off is batched: one Atomics.store publishes or releases many records; each side caches the other's index.

/*
 * Memory layout (all offsets in bytes, every region 64-byte aligned so no two writers share a cache line):
 *
 *   [  0,  64)  line 0: metadata, written once by createRingBuffer, then read-only
 *               magic, version, capacity, recordWords, data offset
 *   [ 64, 128)  line 1: write index, written only by the producer
 *   [128, 192)  line 2: read index, written only by the consumer
 *   [192, 256)  line 3: producer statistics (fullWaits), written only by the producer
 *   [256, ...)  data: capacity * recordWords 32-bit words
 *
 * Indices are free-running 32-bit counters of records ever published / released, never reduced
 * modulo capacity. They are advanced with `(i + n) | 0` and so wrap from 2^31 - 1 to -2^31 and from
 * -1 to 0. Two facts keep that correct:
 *  - Occupancy is `(write - read) | 0`. The true difference is always in [0, capacity] and
 *    capacity <= 2^30 < 2^31, so the 32-bit two's-complement difference equals it even when write
 *    has wrapped and read has not.
 *  - The slot is `index & (capacity - 1)`. Capacity is a power of two, hence divides 2^32, so the low
 *    bits of the wrapped counter are the low bits of the unwrapped one: the wrap is invisible.
 *
 * Ordering: JavaScript Atomics are sequentially consistent. The producer fills records with plain
 * typed-array writes, then Atomics.store(write). A consumer Atomics.load(write) that reads that value
 * synchronises with the store, so every plain write before it happens-before the consumer's plain
 * reads of those records (release/acquire). Symmetrically the consumer's plain reads happen-before
 * its Atomics.store(read), and the producer only overwrites a slot after an Atomics.load(read) that
 * saw it released. Each side's own index needs no atomic read: it is its only writer.
 */

const MAGIC = 0x52494e47; // "RING"
const VERSION = 1;
const LINE_WORDS = 16; // 64-byte cache line in 32-bit words
const DATA_OFFSET_BYTES = 4 * LINE_WORDS * 4;
const MAX_CAPACITY = 1 << 30;

/** Word indices of the header fields in `new Int32Array(sab)`; exported for diagnostics and tests. */
export const RING_HEADER = Object.freeze({
  MAGIC: 0,
  VERSION: 1,
  CAPACITY: 2,
  RECORD_WORDS: 3,
  DATA_OFFSET: 4,
  WRITE: LINE_WORDS,
  READ: 2 * LINE_WORDS,
  FULL_WAITS: 3 * LINE_WORDS,
});

export interface RingLayout {
  /** records, a power of two */
  readonly capacity: number;
  /** 32-bit words per record, even so each record starts 8-byte aligned for the f64 view */
  readonly recordWords: number;
}

/** Point-in-time counters for /metrics; a snapshot, not a consistent cut. */
export interface RingStats extends RingLayout {
  /** published and not yet released records */
  readonly used: number;
  /** times waitForSpace had to block because the ring lacked the requested space (wraps at 2^32) */
  readonly fullWaits: number;
}

export interface RingProducer extends RingLayout {
  /** view over the data area; record k's words start at `slot(k)` */
  readonly i32: Int32Array;
  /** same memory; word offset w is f64 index `w >> 1` (use even word offsets) */
  readonly f64: Float64Array;
  /**
   * Records that may be written now. Answers from the cached read index when that already shows at
   * least `want` free slots (default 1), so the result is a lower bound; otherwise re-reads the
   * consumer's index. Returns 0 only when the ring really is full.
   */
  free(want?: number): number;
  /** Word offset of the k-th record after the last published one. Requires k < free(); unchecked. */
  slot(k: number): number;
  /** Makes the next n written records visible to the consumer: one Atomics.store plus a notify. */
  publish(n: number): void;
  /**
   * Blocks with Atomics.wait until n slots are free or timeoutMs passes; true when they are free.
   * Blocking the main thread is legal in Bun but stalls its event loop: meant for workers.
   */
  waitForSpace(n: number, timeoutMs: number): boolean;
}

export interface RingConsumer extends RingLayout {
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  /**
   * Published, unreleased records. Answers from the cached write index when that already shows at
   * least `want` (default 1) records, so the result is a lower bound; otherwise re-reads it.
   */
  available(want?: number): number;
  /** Word offset of the k-th available record. Requires k < available(); unchecked. */
  slot(k: number): number;
  /** Hands the oldest n records back to the producer: one Atomics.store plus a notify. */
  release(n: number): void;
  /** Waits with Atomics.waitAsync; resolves true once data is available, false after timeoutMs. */
  waitForData(timeoutMs: number): Promise<boolean>;
}

/** Allocates a ring of `capacity` records of `recordWords` 32-bit words: header plus data area. */
export function createRingBuffer(capacity: number, recordWords: number): SharedArrayBuffer {
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_CAPACITY || (capacity & (capacity - 1)) !== 0) {
    throw new RangeError(`ring capacity must be a power of two in [1, 2^30], got ${capacity}`);
  }
  if (!Number.isInteger(recordWords) || recordWords < 2 || recordWords % 2 !== 0) {
    throw new RangeError(`ring recordWords must be an even integer >= 2, got ${recordWords}`);
  }
  const dataBytes = capacity * recordWords * 4;
  if (!Number.isSafeInteger(dataBytes) || dataBytes > 2 ** 31) {
    throw new RangeError(`ring of ${capacity} x ${recordWords} words exceeds 2 GiB`);
  }
  const sab = new SharedArrayBuffer(DATA_OFFSET_BYTES + dataBytes);
  const h = new Int32Array(sab, 0, DATA_OFFSET_BYTES / 4);
  h[RING_HEADER.VERSION] = VERSION;
  h[RING_HEADER.CAPACITY] = capacity;
  h[RING_HEADER.RECORD_WORDS] = recordWords;
  h[RING_HEADER.DATA_OFFSET] = DATA_OFFSET_BYTES;
  // Magic last, so a view built from a half-initialised buffer is refused. postMessage of the SAB
  // orders this anyway; the store costs nothing once.
  Atomics.store(h, RING_HEADER.MAGIC, MAGIC);
  return sab;
}

interface Views extends RingLayout {
  readonly header: Int32Array;
  readonly i32: Int32Array;
  readonly f64: Float64Array;
}

function attach(sab: SharedArrayBuffer): Views {
  if (sab.byteLength < DATA_OFFSET_BYTES) throw new TypeError("not a ring buffer: too small for the header");
  const header = new Int32Array(sab, 0, DATA_OFFSET_BYTES / 4);
  if (Atomics.load(header, RING_HEADER.MAGIC) !== MAGIC) throw new TypeError("not a ring buffer: bad magic");
  if (header[RING_HEADER.VERSION] !== VERSION) {
    throw new TypeError(`ring buffer version ${header[RING_HEADER.VERSION]} is not ${VERSION}`);
  }
  const capacity = header[RING_HEADER.CAPACITY];
  const recordWords = header[RING_HEADER.RECORD_WORDS];
  const dataOffset = header[RING_HEADER.DATA_OFFSET];
  const words = capacity * recordWords;
  if (dataOffset !== DATA_OFFSET_BYTES || sab.byteLength !== dataOffset + words * 4) {
    throw new TypeError("ring buffer header does not match the buffer size");
  }
  return {
    header,
    capacity,
    recordWords,
    i32: new Int32Array(sab, dataOffset, words),
    f64: new Float64Array(sab, dataOffset, words / 2),
  };
}

/** Reads capacity and record size from a ring's header. */
export function ringLayout(sab: SharedArrayBuffer): RingLayout {
  const { capacity, recordWords } = attach(sab);
  return { capacity, recordWords };
}

/** Snapshot of a ring's occupancy and producer stall count, safe to call from any thread. */
export function ringStats(sab: SharedArrayBuffer): RingStats {
  const { header, capacity, recordWords } = attach(sab);
  const read = Atomics.load(header, RING_HEADER.READ);
  const write = Atomics.load(header, RING_HEADER.WRITE);
  return {
    capacity,
    recordWords,
    used: (write - read) | 0,
    fullWaits: Atomics.load(header, RING_HEADER.FULL_WAITS) >>> 0,
  };
}

function checkCount(n: number, limit: number, what: string): void {
  // One comparison chain on the hot path; `(n | 0) === n` rejects fractions, NaN and huge values.
  if (!((n | 0) === n && n >= 0 && n <= limit)) {
    throw new RangeError(`cannot ${what} ${n} records: ${limit} allowed`);
  }
}

/** Producer side of a ring. Exactly one producer may be attached at a time. */
export function ringProducer(sab: SharedArrayBuffer): RingProducer {
  const { header, capacity, recordWords, i32, f64 } = attach(sab);
  const mask = capacity - 1;
  const W = RING_HEADER.WRITE;
  const R = RING_HEADER.READ;
  // Our own counter: we are its only writer, so the local copy is always current.
  let write = Atomics.load(header, W);
  // The consumer's counter as last seen: only ever behind the truth, so free space is underestimated.
  let readSeen = Atomics.load(header, R);

  const refresh = (): number => {
    readSeen = Atomics.load(header, R);
    return capacity - ((write - readSeen) | 0);
  };

  return {
    i32,
    f64,
    capacity,
    recordWords,
    free(want = 1) {
      const cached = capacity - ((write - readSeen) | 0);
      return cached >= want ? cached : refresh();
    },
    slot(k) {
      return ((write + k) & mask) * recordWords;
    },
    publish(n) {
      // The cached free space bounds what free() can have promised, so checking against it is exact.
      checkCount(n, capacity - ((write - readSeen) | 0), "publish");
      if (n === 0) return;
      write = (write + n) | 0;
      Atomics.store(header, W, write);
      Atomics.notify(header, W);
    },
    waitForSpace(n, timeoutMs) {
      checkCount(n, capacity, "wait for space for");
      if (capacity - ((write - readSeen) | 0) >= n || refresh() >= n) return true;
      Atomics.store(header, RING_HEADER.FULL_WAITS, (header[RING_HEADER.FULL_WAITS] + 1) | 0);
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const remaining = deadline - performance.now();
        if (remaining <= 0) return false;
        // Sleeps only while the read index still equals what we saw: a release between our load
        // and this call makes it return "not-equal" at once, so no wake-up is lost.
        Atomics.wait(header, R, readSeen, remaining);
        if (refresh() >= n) return true;
      }
    },
  };
}

/** Consumer side of a ring. Exactly one consumer may be attached at a time. */
export function ringConsumer(sab: SharedArrayBuffer): RingConsumer {
  const { header, capacity, recordWords, i32, f64 } = attach(sab);
  const mask = capacity - 1;
  const W = RING_HEADER.WRITE;
  const R = RING_HEADER.READ;
  let read = Atomics.load(header, R);
  let writeSeen = Atomics.load(header, W);

  const refresh = (): number => {
    writeSeen = Atomics.load(header, W);
    return (writeSeen - read) | 0;
  };

  return {
    i32,
    f64,
    capacity,
    recordWords,
    available(want = 1) {
      const cached = (writeSeen - read) | 0;
      return cached >= want ? cached : refresh();
    },
    slot(k) {
      return ((read + k) & mask) * recordWords;
    },
    release(n) {
      checkCount(n, (writeSeen - read) | 0, "release");
      if (n === 0) return;
      read = (read + n) | 0;
      Atomics.store(header, R, read);
      Atomics.notify(header, R);
    },
    async waitForData(timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        if (refresh() > 0) return true;
        const remaining = deadline - performance.now();
        if (remaining <= 0) return false;
        // As in waitForSpace: a publish after our load makes this "not-equal" and we loop at once.
        const result = Atomics.waitAsync(header, W, writeSeen, remaining);
        if (result.async) await result.value;
      }
    },
  };
}
