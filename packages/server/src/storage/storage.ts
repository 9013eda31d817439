import type { BackupResult } from "./backup.js";
import type { SqlClient, SqlDialect } from "./sql-client.js";

/**
 * Parley's tables, parents before children: the order a copy inserts them in (and deletes them
 * in reverse). Every back-end has exactly these, with the same columns.
 */
export const TABLES = [
  "users",
  "sessions",
  "phonebook_entries",
  "audit_log",
  "settings",
  "calls",
  "call_participants",
  "calls_in_progress",
] as const;
export type TableName = (typeof TABLES)[number];

/** A message from another Parley process sharing the database. */
export type NodeMessageListener = (payload: string) => void;

/**
 * Where Parley keeps its data: an embedded SQLite file (the default: one server process, nothing
 * to install) or a PostgreSQL database shared by several server processes. The stores (users,
 * sessions, phone book, call history, audit log, settings) are written once against `sql`, so
 * both back-ends run the same statements and answer alike; this interface holds what differs:
 * opening (schema migrations), backup, messages between processes, closing.
 */
export interface Storage {
  readonly kind: SqlDialect;
  /** For the log and the operator: the SQLite file, or the PostgreSQL URL without its password. */
  readonly location: string;
  readonly sql: SqlClient;
  schemaVersion(): Promise<number>;
  /** Rows per table. */
  tableCounts(): Promise<Record<TableName, number>>;
  /**
   * A consistent copy of everything to a new SQLite file (owner-only, never overwriting): for
   * SQLite its online backup, for PostgreSQL a snapshot copied table by table (pg_dump remains the
   * tool for PostgreSQL's own backups).
   */
  backup(file: string): Promise<BackupResult>;
  /**
   * Tells the other server processes on this database (PostgreSQL NOTIFY on `channel`); nothing
   * with SQLite, which one process uses. Best effort: a process that was disconnected meanwhile
   * hears `resync` instead and checks for itself.
   */
  publish(channel: string, payload: string): Promise<void>;
  /** Listens to `channel`; `resync` runs after a lost connection to the database came back. */
  subscribe(channel: string, listener: NodeMessageListener, resync?: () => void): void;
  /** Waits for statements under way and closes the connection(s). Idempotent. */
  close(): Promise<void>;
}
