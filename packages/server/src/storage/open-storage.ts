import type { Logger } from "pino";
import { parseDatabaseUrl } from "./database-url.js";
import { PostgresStorage } from "./postgres-storage.js";
import { SqliteStorage } from "./sqlite-storage.js";
import type { Storage } from "./storage.js";

/**
 * Opens the storage `--database` names (see parseDatabaseUrl; `defaultFile` is the data dir's
 * parley.db), its schema brought up to date.
 */
export async function openStorage(
  database: string | undefined,
  defaultFile: string,
  options: { logger?: Logger } = {},
): Promise<Storage> {
  const target = parseDatabaseUrl(database, defaultFile);
  if (target.kind === "sqlite") return new SqliteStorage(target.file);
  return PostgresStorage.open(target.url, { logger: options.logger });
}
