// Store contracts shared by the embedded (bun:sqlite, memory) and distributed (Cassandra, Redis)
// implementations. Windows are opaque encoded blobs keyed by (family, resolution, start, partition).

import type { InventoryState, SessionState } from "../window/aggregator.ts";

export type Resolution = 1000 | 60_000 | 3_600_000;
export const RESOLUTIONS: readonly Resolution[] = [1000, 60_000, 3_600_000];
export const RES_NAME: Readonly<Record<Resolution, "1s" | "1m" | "1h">> = { 1000: "1s", 60_000: "1m", 3_600_000: "1h" };

export interface WindowKey {
  family: string;
  res: Resolution;
  start: number;
  partition: number;
}
export interface WindowRow extends WindowKey {
  value: Uint8Array;
}

// the aggregator defines what a checkpoint keeps of sessions and stock; stores persist exactly that
export type SessionRow = SessionState;
export type InventoryRow = InventoryState;

export interface LateRow {
  partition: number;
  offset: number;
  time: number;
  type: string;
  reason: string;
}

export interface OpenWindowRow {
  res: Resolution;
  start: number;
  partition: number;
  /** null deletes the row */
  value: Uint8Array | null;
}

/** Everything one checkpoint makes durable, atomically. */
export interface CommitBatch {
  windows: WindowRow[];
  openWindows: OpenWindowRow[];
  sessions: SessionRow[];
  deletedSessions: Array<{ partition: number; key: number }>;
  /** `sessions` is every open session: the store may drop what it kept before */
  sessionsFull?: boolean;
  inventory: InventoryRow[];
  late: LateRow[];
  /** next offset to consume, per partition, covering exactly the state above */
  offsets: Map<number, number>;
  /** small engine state (watermark, per-partition clocks), JSON */
  meta: string;
  /** per partition state a new owner needs (clock, finalised watermark, dedupe rescan start), JSON; stored with its offset */
  partitionMeta?: Map<number, string>;
}

export interface Checkpoint {
  offsets: Map<number, number>;
  openWindows: Array<{ res: Resolution; start: number; partition: number; value: Uint8Array }>;
  sessions: SessionRow[];
  inventory: InventoryRow[];
  meta: string | null;
  partitionMeta?: Map<number, string>;
}

export interface HistoryStore {
  /** Atomically upsert windows and state and advance offsets (idempotent: replaying a batch changes nothing). */
  commit(batch: CommitBatch): Promise<void>;
  /**
   * Synchronous commit, for stores that can (bun:sqlite): the caller then marks the batch durable in
   * the same turn, so no reader ever sees a window both stored and still pending in memory.
   */
  commitSync?(batch: CommitBatch): void;
  /** Rows of the given families at one resolution with start in [from, to), all partitions. */
  readWindows(families: readonly string[], res: Resolution, from: number, to: number): Promise<WindowRow[]>;
  /** The durable state; with `partitions`, only theirs (a distributed instance loads what it was assigned). */
  loadCheckpoint(partitions?: readonly number[]): Promise<Checkpoint>;
  /** Distributed stores: the latest checkpointed stock per product of these partitions (other instances' share). */
  inventory?(partitions: readonly number[]): Promise<InventoryRow[]>;
  /** Distributed stores: record `owner` as the owner of these partitions (after the group assigned them). */
  claim?(owner: string, partitions: readonly number[]): Promise<void>;
  /** Distributed stores: of these partitions, those whose recorded owner is someone else now. */
  lostOwnership?(owner: string, partitions: readonly number[]): Promise<number[]>;
  /** Late-dropped events kept with their reason, newest first. */
  lateEvents(limit: number): Promise<LateRow[]>;
  /** Delete windows older than the retention of their resolution; returns rows removed. */
  prune(retention: Readonly<Record<"1s" | "1m" | "1h", number>>, now: number): Promise<number>;
  close(): Promise<void>;
}

/** Live values for streams: the latest snapshot per topic plus a publish/subscribe of deltas. */
export interface HotCache {
  set(topic: string, value: unknown): void;
  get(topic: string): unknown;
  publish(channel: string, message: string): void;
  subscribe(channel: string, fn: (message: string) => void): () => void;
  close(): Promise<void>;
}
