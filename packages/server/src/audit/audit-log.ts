import { AsyncLocalStorage } from "node:async_hooks";
import type { Database } from "../storage/database.js";
import { nowIso } from "../storage/database.js";

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

/** Append-only table of security-relevant actions, queried by the operator. */
export class AuditLog {
  readonly #db: Database;
  readonly #insert;
  readonly #listeners: ((entry: AuditRecord) => void)[] = [];

  constructor(db: Database) {
    this.#db = db;
    this.#insert = db.prepare(
      "INSERT INTO audit_log (at, action, actor, username, address, detail) VALUES (?, ?, ?, ?, ?, ?)",
    );
  }

  record(entry: AuditRecord): void {
    this.#insert.run(
      nowIso(),
      entry.action,
      entry.actor ?? null,
      entry.username ?? null,
      entry.address ?? auditOrigin.getStore()?.address ?? null,
      entry.detail ? JSON.stringify(entry.detail) : null,
    );
    for (const listener of this.#listeners) listener(entry);
  }

  /**
   * Calls `listener` after every entry is written. Lets the metrics count failed logins (and
   * anything else audited) without the account rules knowing metrics exist.
   */
  onRecord(listener: (entry: AuditRecord) => void): void {
    this.#listeners.push(listener);
  }

  /** Newest last, at most `limit` entries (default 20). */
  query(query: AuditQuery = {}): AuditEntry[] {
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
      ORDER BY id DESC LIMIT ?) ORDER BY id ASC`;
    args.push(query.limit ?? 20);
    const rows = this.#db.prepare(sql).all(...args) as (Omit<AuditEntry, "detail"> & { detail: string | null })[];
    return rows.map((row) => ({ ...row, detail: row.detail ? JSON.parse(row.detail) : null }));
  }
}
