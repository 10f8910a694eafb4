// One process per data dir (DESIGN §5): an exclusive OS lock on <dataDir>/rtae.lock from engine start to stop.
// The lock is SQLite's own (bun:sqlite, locking_mode=EXCLUSIVE plus a write transaction): POSIX byte-range locks,
// which the kernel drops when the holder dies, kill -9 included, so no stale lock outlives its process. SQLite also
// tracks its locks per file within a process, so a second engine in the same process is refused as well.
//
// The holder's pid goes to rtae.pid, read only for the message: a pid never decides anything. Nothing in this
// process may open rtae.lock other than through SQLite: closing any other descriptor of that file would drop every
// POSIX lock the process holds on it (which is also why the pid is not kept in the lock file itself).

import { Database } from "bun:sqlite";
import { mkdirSync, readFileSync, realpathSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { StartError } from "./errors.ts";

export const LOCK_FILE = "rtae.lock";
export const PID_FILE = "rtae.pid";

export interface DataDirLock {
  readonly dir: string;
  /** Releases the lock (idempotent); the next engine on the dir may start. */
  release(): void;
}

/** Locks held by this process, by real path: also keeps each lock's Database reachable (a collected one closes). */
const held = new Map<string, Database>();

function holderPid(dir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dir, PID_FILE), "utf8").trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function inUse(shown: string, pid: number | null, cause?: unknown): StartError {
  const who =
    pid === process.pid ? `another rtae engine in this process (pid ${pid})` : `another rtae process (pid ${pid ?? "unknown"})`;
  return new StartError("data_dir_in_use", `data dir ${shown} is in use by ${who}`, { cause });
}

/**
 * Takes the data dir's exclusive lock, creating the dir if needed. Throws StartError `data_dir_in_use` when
 * another process or engine holds it, `data_dir_unusable` when the dir or lock file cannot be created.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new StartError("data_dir_unusable", `data dir ${dataDir} cannot be created (${code})`, { cause: err });
  }
  const real = realpathSync(dataDir);
  if (held.has(real)) throw inUse(dataDir, process.pid);

  let db: Database;
  try {
    db = new Database(join(real, LOCK_FILE), { create: true, readwrite: true });
  } catch (err) {
    throw new StartError("data_dir_unusable", `data dir ${dataDir}: cannot open its lock file ${LOCK_FILE} (${(err as Error).message})`, { cause: err });
  }
  try {
    db.run("PRAGMA busy_timeout = 0");
    // EXCLUSIVE locking mode keeps the locks of the first write transaction until the connection closes
    db.run("PRAGMA locking_mode = EXCLUSIVE");
    db.run("BEGIN EXCLUSIVE");
    db.run("COMMIT");
  } catch (err) {
    db.close();
    const code = (err as { code?: string }).code ?? "";
    if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) throw inUse(dataDir, holderPid(real), err);
    throw new StartError(
      "data_dir_unusable",
      `data dir ${dataDir}: its lock file ${LOCK_FILE} cannot be locked (${(err as Error).message}); if no rtae runs on it, delete the file`,
      { cause: err },
    );
  }
  held.set(real, db);
  try {
    writeFileSync(join(real, PID_FILE), `${process.pid}\n`);
  } catch {
    // the pid only improves the message a second process prints
  }

  let released = false;
  return {
    dir: real,
    release() {
      if (released) return;
      released = true;
      if (holderPid(real) === process.pid) {
        try {
          unlinkSync(join(real, PID_FILE));
        } catch {
          // already gone
        }
      }
      held.delete(real);
      db.close();
    },
  };
}
