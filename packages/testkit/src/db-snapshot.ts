import { type Storage, TABLES } from "@parley/server";
import Database from "better-sqlite3";

/**
 * Every row of every table, as JSON: compare two snapshots to prove nothing stored changed.
 * `exceptTables` and `ignoreColumns` leave out what legitimately moves (sessions, last login).
 */
export function dbSnapshot(file: string, options: { exceptTables?: string[]; ignoreColumns?: string[] } = {}): string {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const tables = (
      db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]
    )
      .map((t) => t.name)
      .filter((name) => !options.exceptTables?.includes(name));
    const ignored = new Set(options.ignoreColumns ?? []);
    const dump: Record<string, unknown[]> = {};
    for (const table of tables) {
      const rows = db.prepare(`SELECT * FROM "${table}" ORDER BY rowid`).all() as Record<string, unknown>[];
      dump[table] = rows.map((row) => Object.fromEntries(Object.entries(row).filter(([key]) => !ignored.has(key))));
    }
    return JSON.stringify(dump);
  } finally {
    db.close();
  }
}

/**
 * The same through a server's storage, whichever back-end it is (rows in key order): what a test
 * compares before and after on both SQLite and PostgreSQL.
 */
export async function storageSnapshot(
  storage: Storage,
  options: { exceptTables?: string[]; ignoreColumns?: string[] } = {},
): Promise<string> {
  const ignored = new Set(options.ignoreColumns ?? []);
  const dump: Record<string, unknown[]> = {};
  for (const table of TABLES.filter((name) => !options.exceptTables?.includes(name))) {
    const rows = await storage.sql.all<Record<string, unknown>>(`SELECT * FROM ${table} ORDER BY 1, 2`);
    dump[table] = rows.map((row) => Object.fromEntries(Object.entries(row).filter(([key]) => !ignored.has(key))));
  }
  return JSON.stringify(dump);
}
