// One write-transaction runner per bun:sqlite connection, shared by the log and the dedupe store:
// BEGIN IMMEDIATE takes the write lock up front (busy_timeout waits for it), statements are prepared once.

import type { Database } from "bun:sqlite";

export interface TxRunner {
  <T>(fn: () => T): T;
  /** finalize the prepared statements (before db.close()) */
  finalize(): void;
}

/** `run(fn)` executes fn inside BEGIN IMMEDIATE … COMMIT, rolling back if it throws. */
export function createTxRunner(db: Database): TxRunner {
  const begin = db.prepare("BEGIN IMMEDIATE");
  const commit = db.prepare("COMMIT");
  const rollback = db.prepare("ROLLBACK");
  const run = <T>(fn: () => T): T => {
    begin.run();
    try {
      const out = fn();
      commit.run();
      return out;
    } catch (err) {
      if (db.inTransaction) rollback.run();
      throw err;
    }
  };
  return Object.assign(run, {
    finalize() {
      for (const s of [begin, commit, rollback]) s.finalize();
    },
  });
}
