import fs from "node:fs";
import path from "node:path";
import { ParleyError } from "@parley/protocol";
import BetterSqlite3 from "better-sqlite3";
import type { Database } from "./database.js";

/** Pages copied per step of an online backup (4 KiB each): a step takes well under a millisecond. */
const PAGES_PER_STEP = 64;

export interface BackupResult {
  /** The absolute path written. */
  file: string;
  bytes: number;
  /** Rows per table in the copy, by table name. */
  tables: Record<string, number>;
}

/**
 * Copies the live database to `file` with SQLite's online backup (safe while the server runs and
 * writes): a few pages per step, the event loop free between steps, and writes made meanwhile
 * through the same connection carried into the copy. The file is created owner-only (0600: it holds
 * password hashes) and never overwrites anything (BAD_PARAMS if it exists, or its directory does
 * not). The copy is left as one self-contained file (rollback journal, no -wal to carry along),
 * then opened to count its rows; a failed copy is removed.
 */
export function backupDatabase(db: Database, file: string): Promise<BackupResult> {
  return writeBackup(file, (target) => db.backup(target, { progress: () => PAGES_PER_STEP }));
}

/**
 * Creates `file` (owner-only, never overwriting: see backupDatabase), lets `write` fill it with an
 * SQLite database, then leaves it as one self-contained file and counts its rows. A failed copy
 * is removed.
 */
export async function writeBackup(file: string, write: (target: string) => Promise<unknown>): Promise<BackupResult> {
  const target = path.resolve(file);
  let fd: number;
  try {
    // O_EXCL: refuses an existing file (or a link) atomically, even one created a moment ago.
    fd = fs.openSync(target, "wx", 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") {
      throw new ParleyError("BAD_PARAMS", `${target} already exists; a backup never overwrites a file.`);
    }
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new ParleyError("BAD_PARAMS", `The directory of ${target} does not exist.`);
    }
    throw new ParleyError("BAD_PARAMS", `Cannot create ${target}: ${code ?? (error as Error).message}.`, {
      cause: error,
    });
  }
  try {
    fs.fchmodSync(fd, 0o600);
    fs.closeSync(fd);
    await write(target);
    const tables = settle(target);
    return { file: target, bytes: fs.statSync(target).size, tables };
  } catch (error) {
    for (const leftover of [target, `${target}-journal`, `${target}-wal`, `${target}-shm`]) {
      fs.rmSync(leftover, { force: true });
    }
    throw error;
  }
}

/** Switches the copy to a rollback journal (one file, ready to restore) and counts its rows. */
function settle(file: string): Record<string, number> {
  const copy = new BetterSqlite3(file, { fileMustExist: true });
  try {
    copy.pragma("journal_mode = DELETE");
    const names = copy
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
      .all() as { name: string }[];
    const tables: Record<string, number> = {};
    for (const { name } of names) {
      tables[name] = (copy.prepare(`SELECT COUNT(*) AS n FROM "${name}"`).get() as { n: number }).n;
    }
    return tables;
  } finally {
    copy.close();
  }
}
