import { type BackupResult, backupDatabase } from "./backup.js";
import { type Database, openDatabase, schemaVersion } from "./database.js";
import { SqliteClient } from "./sqlite-client.js";
import { type Storage, TABLES, type TableName } from "./storage.js";

/** The embedded back-end: one SQLite file in the data dir (or `--database sqlite:PATH`), one process. */
export class SqliteStorage implements Storage {
  readonly kind = "sqlite" as const;
  readonly location: string;
  /** The better-sqlite3 handle itself (backups, tests that look at the file). */
  readonly db: Database;
  readonly sql: SqliteClient;
  #closed = false;

  /** Opens (creating if needed) the file and brings its schema up to date. */
  constructor(file: string) {
    this.location = file;
    this.db = openDatabase(file);
    this.sql = new SqliteClient(this.db);
  }

  async schemaVersion(): Promise<number> {
    return schemaVersion(this.db);
  }

  async tableCounts(): Promise<Record<TableName, number>> {
    const counts = {} as Record<TableName, number>;
    for (const table of TABLES) {
      counts[table] = (await this.sql.get<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`))!.n;
    }
    return counts;
  }

  backup(file: string): Promise<BackupResult> {
    return backupDatabase(this.db, file);
  }

  async publish(): Promise<void> {}

  subscribe(): void {}

  /** Checkpoints the write-ahead log into the file (one self-contained file at rest), then closes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // A transaction under way finishes first (its statements are ready at once).
    await this.sql.get("SELECT 1");
    this.db.pragma("wal_checkpoint(TRUNCATE)");
    this.db.close();
  }
}
