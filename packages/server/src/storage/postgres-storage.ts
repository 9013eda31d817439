import { ParleyError } from "@parley/protocol";
import pg from "pg";
import type { Logger } from "pino";
import { type BackupResult, writeBackup } from "./backup.js";
import { openDatabase } from "./database.js";
import { redactDatabaseUrl } from "./database-url.js";
import { POSTGRES_TYPES, PostgresClient, translatePgError } from "./postgres-client.js";
import { migratePostgres, SchemaTooNewError } from "./postgres-migrations.js";
import { SqliteClient } from "./sqlite-client.js";
import type { NodeMessageListener, Storage, TableName } from "./storage.js";
import { copyTables, countRows } from "./table-copy.js";

/** Connections one server process keeps to PostgreSQL at most (the listener's comes on top). */
export const POSTGRES_POOL_SIZE = 10;
/** A connection not made in this time fails (STORAGE_UNAVAILABLE) rather than hold the request. */
const CONNECT_TIMEOUT_MS = 5_000;
/** The listener's reconnection delays: doubling from the first to the last, then staying there. */
const RECONNECT_FIRST_MS = 100;
const RECONNECT_MAX_MS = 5_000;

export interface PostgresStorageOptions {
  /** Where connection losses and reconnections are reported. */
  logger?: Logger | undefined;
  /** Pool size (default POSTGRES_POOL_SIZE). */
  poolSize?: number;
}

/**
 * The shared back-end: a PostgreSQL database several server processes may use at once. Statements
 * go through a pg connection pool (see PostgresClient); messages between the processes (ended
 * sessions) through LISTEN/NOTIFY on one more connection of its own, which reconnects by itself
 * and then tells its subscribers to resynchronise (what was sent meanwhile is lost).
 */
export class PostgresStorage implements Storage {
  readonly kind = "postgres" as const;
  readonly location: string;
  readonly sql: PostgresClient;
  readonly #pool: pg.Pool;
  readonly #url: string;
  readonly #logger: Logger | undefined;
  readonly #channels = new Map<string, { listeners: Set<NodeMessageListener>; resyncs: Set<() => void> }>();
  #listener: pg.Client | undefined;
  #connecting: Promise<void> | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #reconnectMs = RECONNECT_FIRST_MS;
  /** A listener connection was lost (or never made): the next one made tells subscribers to resync. */
  #lost = false;
  #closing: Promise<void> | undefined;

  private constructor(url: string, options: PostgresStorageOptions) {
    this.#url = url;
    this.location = redactDatabaseUrl(url);
    this.#logger = options.logger;
    this.#pool = new pg.Pool({
      connectionString: url,
      types: POSTGRES_TYPES,
      max: options.poolSize ?? POSTGRES_POOL_SIZE,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: "parley",
    });
    // An idle pooled connection that breaks (PostgreSQL restarting) is dropped from the pool; the
    // next statement opens a new one. Without this handler the error would end the process.
    this.#pool.on("error", (error) => {
      this.#logger?.warn({ err: error }, "a pooled PostgreSQL connection was lost");
    });
    this.sql = new PostgresClient(this.#pool);
  }

  /**
   * Connects and brings the schema up to date (one transaction under an advisory lock: processes
   * starting together apply it once); refuses a database a newer Parley wrote (SchemaTooNewError).
   */
  static async open(url: string, options: PostgresStorageOptions = {}): Promise<PostgresStorage> {
    const storage = new PostgresStorage(url, options);
    try {
      await migratePostgres(storage.#pool);
    } catch (error) {
      await storage.close();
      if (error instanceof SchemaTooNewError) throw error;
      // What stops the start names the database (without its password) and what it said.
      const translated = translatePgError(error);
      const cause = translated instanceof ParleyError ? (translated.cause as Error) : (error as Error);
      const reason = translated instanceof ParleyError ? " cannot be reached" : "";
      throw new StorageOpenError(`PostgreSQL at ${storage.location}${reason}: ${cause?.message ?? error}`, translated);
    }
    return storage;
  }

  async schemaVersion(): Promise<number> {
    const row = await this.sql.get<{ version: number }>("SELECT version FROM parley_schema");
    return row?.version ?? 0;
  }

  async tableCounts(): Promise<Record<TableName, number>> {
    // One snapshot: the counts agree with each other even while others write.
    return this.sql.transaction(async (tx) => {
      await tx.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
      return countRows(tx);
    });
  }

  /**
   * Copies one snapshot of every table (a REPEATABLE READ transaction: what was committed when it
   * began, nothing after) into a new SQLite file, the same schema version as this database; the
   * copy opens as an embedded Parley database (`--database sqlite:FILE`, or as a data dir's parley.db).
   */
  backup(file: string): Promise<BackupResult> {
    return writeBackup(file, async (target) => {
      const copy = openDatabase(target);
      try {
        const into = new SqliteClient(copy);
        await this.sql.transaction(async (tx) => {
          await tx.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
          await into.transaction((local) => copyTables(tx, local));
        });
      } finally {
        copy.close();
      }
    });
  }

  async publish(channel: string, payload: string): Promise<void> {
    await this.sql.run("SELECT pg_notify(?, ?)", [channel, payload]);
  }

  subscribe(channel: string, listener: NodeMessageListener, resync?: () => void): void {
    if (this.#closing) return;
    let entry = this.#channels.get(channel);
    const fresh = entry === undefined;
    if (!entry) {
      entry = { listeners: new Set(), resyncs: new Set() };
      this.#channels.set(channel, entry);
    }
    entry.listeners.add(listener);
    if (resync) entry.resyncs.add(resync);
    const client = this.#listener;
    if (client && fresh) {
      client.query(`LISTEN ${quoteIdentifier(channel)}`).catch((error: unknown) => this.#listenerLost(client, error));
    } else if (!client) {
      this.#connectListener();
    }
  }

  /** Opens the listening connection (once at a time) and LISTENs on every channel subscribed. */
  #connectListener(): void {
    if (this.#closing || this.#connecting || this.#listener || this.#reconnectTimer) return;
    const client = new pg.Client({ connectionString: this.#url, types: POSTGRES_TYPES, keepAlive: true });
    client.on("error", (error) => this.#listenerLost(client, error));
    client.on("end", () => this.#listenerLost(client, undefined));
    client.on("notification", (message) => {
      const entry = this.#channels.get(message.channel);
      if (!entry) return;
      for (const listener of entry.listeners) {
        try {
          listener(message.payload ?? "");
        } catch (error) {
          this.#logger?.error({ err: error, channel: message.channel }, "a database message listener failed");
        }
      }
    });
    this.#connecting = (async () => {
      try {
        await client.connect();
        for (const channel of this.#channels.keys()) await client.query(`LISTEN ${quoteIdentifier(channel)}`);
      } catch (error) {
        this.#listenerLost(client, error);
        return;
      } finally {
        this.#connecting = undefined;
      }
      if (this.#closing) {
        await client.end().catch(() => undefined);
        return;
      }
      this.#listener = client;
      this.#reconnectMs = RECONNECT_FIRST_MS;
      if (this.#lost) {
        this.#lost = false;
        this.#logger?.info("listening to the other server processes again; resynchronising");
        for (const { resyncs } of this.#channels.values()) {
          for (const resync of resyncs) {
            try {
              resync();
            } catch (error) {
              this.#logger?.error({ err: error }, "resynchronisation failed");
            }
          }
        }
      }
    })();
  }

  /** The listening connection failed or ended: another is tried after a delay (unless closing). */
  #listenerLost(client: pg.Client, error: unknown): void {
    if (this.#listener === client) this.#listener = undefined;
    else if (this.#listener !== undefined) return; // an old connection's late event
    if (this.#closing || this.#reconnectTimer) return;
    if (!this.#lost) {
      this.#logger?.warn({ err: error }, "lost the connection that hears the other server processes; reconnecting");
    }
    this.#lost = true;
    const delay = this.#reconnectMs;
    this.#reconnectMs = Math.min(RECONNECT_MAX_MS, this.#reconnectMs * 2);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#connectListener();
    }, delay);
    this.#reconnectTimer.unref();
    client.end().catch(() => undefined);
  }

  /** Waits for the statements under way, then closes every connection. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = undefined;
      await this.#connecting;
      const listener = this.#listener;
      this.#listener = undefined;
      await listener?.end().catch(() => undefined);
      await this.#pool.end().catch(() => undefined);
    })();
    return this.#closing;
  }
}

/**
 * The database could not be opened at start: the message names it (password hidden) and what
 * went wrong; `code` is STORAGE_UNAVAILABLE when it could not be reached at all.
 */
export class StorageOpenError extends Error {
  readonly code: string | undefined;

  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = "StorageOpenError";
    this.code = cause instanceof ParleyError ? cause.code : undefined;
  }
}

/** A channel name as a quoted SQL identifier. */
function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
