import fs from "node:fs";
import net from "node:net";
import { dataPaths } from "../config.js";
import { parseDatabaseUrl, redactDatabaseUrl } from "../storage/database-url.js";
import { PostgresStorage } from "../storage/postgres-storage.js";
import { SqliteStorage } from "../storage/sqlite-storage.js";
import { TABLES, type TableName } from "../storage/storage.js";
import { copyTables, countRows } from "../storage/table-copy.js";

/** Tables whose `id` is an identity column: numbering goes on after the rows brought over. */
const IDENTITY_TABLES: readonly TableName[] = ["users", "sessions", "phonebook_entries", "audit_log"];

export interface MigrationResult {
  /** The SQLite file copied. */
  from: string;
  /** The PostgreSQL URL, without its password. */
  to: string;
  /** Rows copied per table (the same in both, checked before the commit). */
  tables: Record<TableName, number>;
}

/**
 * Copies an SQLite installation (`dataDir`'s parley.db) into an empty PostgreSQL database, in one
 * PostgreSQL transaction: the target's schema is created (or checked) at this server's version,
 * its Parley tables locked and found empty (otherwise nothing is written), every row copied with
 * its ids, identity numbering moved past them, and the row counts of every table compared with
 * the source's before the commit. The SQLite file is opened as the server would (its schema
 * brought up to date) and read in one transaction; the server must not be running on it.
 */
export async function migrateToPostgres(dataDir: string, url: string): Promise<MigrationResult> {
  const target = parseDatabaseUrl(url, "");
  if (target.kind !== "postgres") throw new Error("--to must be a postgres:// URL");
  const paths = dataPaths(dataDir);
  if (!fs.existsSync(paths.database)) throw new Error(`${paths.database} does not exist: is --from a Parley data dir?`);
  if (await answers(paths.controlSocket)) {
    throw new Error(`a Parley server is running on ${dataDir}: stop it first, so nothing is written during the copy`);
  }
  const source = new SqliteStorage(paths.database);
  try {
    const destination = await PostgresStorage.open(target.url);
    try {
      const [from, to] = [await source.schemaVersion(), await destination.schemaVersion()];
      if (from !== to) throw new Error(`schema versions differ: ${from} in SQLite, ${to} in PostgreSQL`);
      const tables = await destination.sql.transaction(async (tx) => {
        // Nobody else writes (or starts on) these tables until the copy commits or rolls back.
        await tx.run(`LOCK TABLE ${TABLES.join(", ")} IN ACCESS EXCLUSIVE MODE`);
        const present = Object.entries(await countRows(tx)).filter(([, n]) => n > 0);
        if (present.length > 0) {
          throw new Error(
            `the PostgreSQL database is not empty (${present.map(([t, n]) => `${t}: ${n}`).join(", ")}); nothing was copied`,
          );
        }
        return source.sql.transaction(async (src) => {
          const copied = await copyTables(src, tx);
          for (const table of IDENTITY_TABLES) {
            await tx.get(
              `SELECT setval(pg_get_serial_sequence('${table}', 'id'), COALESCE((SELECT MAX(id) FROM ${table}), 0) + 1, false)`,
            );
          }
          const expected = await countRows(src);
          const found = await countRows(tx);
          const differ = TABLES.filter((t) => expected[t] !== found[t] || copied[t] !== expected[t]);
          if (differ.length > 0) {
            throw new Error(
              `row counts differ after the copy (${differ.map((t) => `${t}: ${expected[t]} in SQLite, ${found[t]} in PostgreSQL`).join(", ")}); nothing was copied`,
            );
          }
          return found;
        });
      });
      return { from: paths.database, to: redactDatabaseUrl(target.url), tables };
    } finally {
      await destination.close();
    }
  } finally {
    await source.close();
  }
}

/** True when something (a running server) answers on the control socket. */
function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const connection = net.connect(socket);
    connection.once("connect", () => {
      connection.destroy();
      resolve(true);
    });
    connection.once("error", () => resolve(false));
  });
}
