import type { CallOutcome, OperatorHistoryCall } from "@parley/protocol";
import { insertionOrder, joinedText, type SqlClient } from "../storage/sql-client.js";

export interface CallHistoryQuery {
  /**
   * Calls this user placed or was invited to: under this username at the time, or by the account
   * that has this username now (so a renamed user's earlier calls are found by either name).
   */
  username?: string | undefined;
  outcome?: CallOutcome | undefined;
  /** ISO 8601 bounds on when the call was placed. */
  since?: string | undefined;
  until?: string | undefined;
  limit?: number | undefined;
}

interface Row {
  id: string;
  caller_name: string;
  callee_name: string;
  created_at: string;
  answered_at: string | null;
  ended_at: string;
  outcome: CallOutcome;
  end_reason: string | null;
}

/**
 * The operator's search over everyone's call history (the `calls` table written by the call
 * service). Read-only, kept apart from the call service so calls stay about one user's view.
 */
export class CallHistorySearch {
  readonly #sql: SqlClient;
  readonly #beforeRead: () => Promise<void>;

  /** `beforeRead` writes calls still queued (the history store batches its writes). */
  constructor(sql: SqlClient, beforeRead: () => Promise<void> = async () => undefined) {
    this.#sql = sql;
    this.#beforeRead = beforeRead;
  }

  /** Writes the calls still queued by the history store (before a backup, say). */
  flushPending(): Promise<void> {
    return this.#beforeRead();
  }

  /** Newest first. */
  async search(query: CallHistoryQuery = {}): Promise<OperatorHistoryCall[]> {
    await this.#beforeRead();
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (query.username) {
      where.push(
        `id IN (SELECT call_id FROM call_participants
                WHERE username = ? OR user_id = (SELECT id FROM users WHERE username = ?))`,
      );
      args.push(query.username, query.username);
    }
    if (query.outcome) {
      where.push("outcome = ?");
      args.push(query.outcome);
    }
    if (query.since) {
      where.push("created_at >= ?");
      args.push(query.since);
    }
    if (query.until) {
      where.push("created_at <= ?");
      args.push(query.until);
    }
    args.push(query.limit ?? 100);
    const dialect = this.#sql.dialect;
    const rows = await this.#sql.all<Row>(
      // callee_name: every invitee of a group call, in invitation order.
      `SELECT id, caller_name,
         COALESCE((SELECT ${joinedText(dialect, "username", ", ", "position")} FROM call_participants p
                   WHERE p.call_id = calls.id AND p.position > 0), callee_name) AS callee_name,
         created_at, answered_at, ended_at, outcome, end_reason FROM calls
       ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
       ORDER BY created_at DESC, ${insertionOrder(dialect, "calls")} DESC LIMIT ?`,
      args,
    );
    return rows.map((row) => ({
      callId: row.id,
      caller: row.caller_name,
      callee: row.callee_name,
      createdAt: row.created_at,
      answeredAt: row.answered_at,
      endedAt: row.ended_at,
      durationMs: row.answered_at ? Math.max(0, Date.parse(row.ended_at) - Date.parse(row.answered_at)) : 0,
      outcome: row.outcome,
      endReason: row.end_reason,
    }));
  }
}
