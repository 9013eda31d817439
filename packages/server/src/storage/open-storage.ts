import { parseDatabaseUrl } from "./database-url.js";
import { SqliteStorage } from "./sqlite-storage.js";
import type { Storage } from "./storage.js";

/**
 * Opens the storage `--database` names (see parseDatabaseUrl; `defaultFile` is the data dir's
 * parley.db), its schema brought up to date.
 */
export async function openStorage(database: string | undefined, defaultFile: string): Promise<Storage> {
  const target = parseDatabaseUrl(database, defaultFile);
  if (target.kind === "sqlite") return new SqliteStorage(target.file);
  throw new Error("PostgreSQL is not supported yet");
}
