import { AsyncLocalStorage } from "node:async_hooks";
import { nowIso } from "../storage/database.js";
import { isStorageUnavailable, type SqlClient } from "../storage/sql-client.js";
import { WriteBatch } from "../storage/write-batch.js";

/** Actions written to the audit log. */
export const AUDIT_ACTIONS = [
  "register",
  "login",
  "login_failed",
  "register_refused",
  "connection_refused",
  "session_capped",
  "resume",
  "logout",
  "logout_all",
  "password_changed",
  "display_name_changed",
  "username_changed",
  "account_deleted",
  "admin.user_added",
  "admin.kick",
  "admin.disable",
  "admin.enable",
  "admin.reset_password",
  "admin.signup",
  "admin.demo_users",
  "admin.shutdown",
  "admin.hangup",
  "admin.grant_operator",
  "admin.revoke_operator",
  "admin.backup",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export interface AuditEntry {
  id: number;
  at: string;
  action: AuditAction;
  /** Who did it: a username, "console" (the server's terminal) or "operator" (`parley admin`). */
  actor: string | null;
  /** The account it concerns (username at the time). */
  username: string | null;
  /** The client's address, for the operator only. */
  address: string | null;
  detail: Record<string, unknown> | null;
}

export interface AuditQuery {
  limit?: number;
  username?: string;
  action?: string;
  since?: string;
  until?: string;
}

/** What `record()` is given; listeners (metrics) see the same. */
export interface AuditRecord {
  action: AuditAction;
  actor?: string | null;
  username?: string | null;
  address?: string | null;
  detail?: Record<string, unknown>;
}

/**
 * Where the action being run comes from, for the entries it records without an address of their
 * own: an operator's requests over the WebSocket run inside `auditOrigin.run({ address }, ...)`,
 * so every entry their actions write (in the account, call and operator services) carries the
 * operator's address. The console and `parley admin` run outside it (no address: local).
 */
export const auditOrigin = new AsyncLocalStorage<{ address: string }>();

/** How long an entry may wait in memory before it is written, in ms. */
export const AUDIT_FLUSH_MS = 100;
/** Entries written at once at most; a full batch is written at once. */
export const AUDIT_BATCH_MAX = 200;

/** Entries per INSERT statement (six parameters each). */
const INSERT_CHUNK = 100;

type PendingRow = [
  at: string,
  action: string,
  actor: string | null,
  username: string | null,
  address: string | null,
  detail: string | null,
];

/**
 * Append-only table of security-relevant actions, queried by the operator.
 *
 * Entries are written in batches, off the path that relays audio: `record()` only queues the entry
 * in memory; the queue is written in one transaction (one fsync, or one round trip to PostgreSQL)
 * every AUDIT_FLUSH_MS or once it holds AUDIT_BATCH_MAX entries, so a flood of refused logins
 * costs one write per interval, not one per attempt. `query()` writes the queue first, so a query
 * always sees every entry recorded before it; `close()` writes it at a clean shutdown. While
 * PostgreSQL is unreachable the entries wait in memory and are written once it is back. A crash
 * (power loss, SIGKILL) may lose the entries of the last interval: the audit log is a record for
 * the operator, never data a client was told is stored.
 */
export class AuditLog {
  readonly #sql: SqlClient;
  readonly #rows: WriteBatch<PendingRow>;
  readonly #listeners: ((entry: AuditRecord) => void)[] = [];
  #closed = false;

  constructor(
    sql: SqlClient,
    options: {
      /** A batch that could not be written (disk full...): its entries are lost, the server goes on. */
      onError?: (error: unknown, lost: number) => void;
      flushMs?: number;
      batchMax?: number;
    } = {},
  ) {
    this.#sql = sql;
    const onError = options.onError ?? (() => {});
    this.#rows = new WriteBatch({
      // One multi-row INSERT per chunk: one round trip to PostgreSQL for many entries.
      write: (rows) =>
        sql.transaction(async (tx) => {
          for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
            const chunk = rows.slice(i, i + INSERT_CHUNK);
            await tx.run(
              `INSERT INTO audit_log (at, action, actor, username, address, detail) VALUES ${chunk
                .map(() => "(?, ?, ?, ?, ?, ?)")
                .join(", ")}`,
              chunk.flat(),
            );
          }
        }),
      onError: (error, rows) => onError(error, rows.length),
      retryLater: isStorageUnavailable,
      delayMs: options.flushMs ?? AUDIT_FLUSH_MS,
      maxItems: options.batchMax ?? AUDIT_BATCH_MAX,
    });
  }

  /** Queues the entry (written within AUDIT_FLUSH_MS) and tells the listeners. Ignored after `close()`. */
  record(entry: AuditRecord): void {
    if (this.#closed) return;
    this.#rows.add([
      nowIso(),
      entry.action,
      entry.actor ?? null,
      entry.username ?? null,
      entry.address ?? auditOrigin.getStore()?.address ?? null,
      entry.detail ? JSON.stringify(entry.detail) : null,
    ]);
    for (const listener of this.#listeners) listener(entry);
  }

  /**
   * Calls `listener` after every entry is recorded. Lets the metrics count failed logins (and
   * anything else audited) without the account rules knowing metrics exist.
   */
  onRecord(listener: (entry: AuditRecord) => void): void {
    this.#listeners.push(listener);
  }

  /** Writes every queued entry now, in one transaction. */
  flush(): Promise<void> {
    return this.#rows.flush();
  }

  /**
   * Writes what is queued; entries recorded afterwards are ignored (the database is about to
   * close). Resolves with the entries that could not be written (the database unreachable). Idempotent.
   */
  async close(): Promise<number> {
    this.#closed = true;
    await this.flush();
    return this.#rows.pending;
  }

  /**
   * Deletes at most `limit` entries older than `before` (ISO 8601), oldest first; resolves with how
   * many. Retention calls it in small batches so the database is never held long.
   */
  deleteOlderThan(before: string, limit: number): Promise<number> {
    return this.#sql.run(
      "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ? ORDER BY id LIMIT ?)",
      [before, limit],
    );
  }

  /** Newest last, at most `limit` entries (default 20). */
  async query(query: AuditQuery = {}): Promise<AuditEntry[]> {
    await this.flush();
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (query.username) {
      where.push("(username = ? OR actor = ?)");
      args.push(query.username, query.username);
    }
    if (query.action) {
      where.push("action = ?");
      args.push(query.action);
    }
    if (query.since) {
      where.push("at >= ?");
      args.push(query.since);
    }
    if (query.until) {
      where.push("at <= ?");
      args.push(query.until);
    }
    const sql = `SELECT * FROM (SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
      ORDER BY id DESC LIMIT ?) AS newest ORDER BY id ASC`;
    args.push(query.limit ?? 20);
    const rows = await this.#sql.all<Omit<AuditEntry, "detail"> & { detail: string | null }>(sql, args);
    return rows.map((row) => ({ ...row, detail: row.detail ? JSON.parse(row.detail) : null }));
  }
}
