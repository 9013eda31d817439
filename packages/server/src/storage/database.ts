import fs from "node:fs";
import path from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { MIGRATIONS } from "./migrations.js";

export type Database = BetterSqlite3.Database;

/**
 * Opens (creating if needed) the SQLite database: WAL journal, synchronous=FULL so a
 * committed transaction survives a crash of the process or the machine, foreign keys on,
 * then applies pending migrations in one transaction each.
 */
export function openDatabase(file: string): Database {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // Created owner-only: the database holds password hashes and client addresses.
  fs.closeSync(fs.openSync(file, "a", 0o600));
  const db = new BetterSqlite3(file);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("foreign_keys = ON");
  db.pragma("busy_timeout = 5000");
  migrate(db);
  return db;
}

export function schemaVersion(db: Database): number {
  return db.pragma("user_version", { simple: true }) as number;
}

function migrate(db: Database): void {
  const current = schemaVersion(db);
  if (current > MIGRATIONS.length) {
    throw new Error(
      `Database schema version ${current} is newer than this server (${MIGRATIONS.length}); upgrade Parley.`,
    );
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    const apply = db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    });
    apply();
  }
}

/** Current time as stored: ISO 8601 UTC. */
export function nowIso(now = Date.now()): string {
  return new Date(now).toISOString();
}
