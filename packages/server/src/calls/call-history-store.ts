import type { CallEndReason, CallHistoryEntry, CallOutcome } from "@parley/protocol";
import type { Database } from "../storage/database.js";

export interface CallRecord {
  id: string;
  caller: { id: number; username: string; displayName: string };
  callee: { id: number; username: string; displayName: string };
  createdAt: string;
  answeredAt: string | null;
  endedAt: string;
  outcome: CallOutcome;
  endReason: CallEndReason | null;
  heldMs: number;
}

interface CallRow {
  id: string;
  caller_id: number | null;
  callee_id: number | null;
  caller_name: string;
  caller_display_name: string;
  callee_name: string;
  callee_display_name: string;
  created_at: string;
  answered_at: string | null;
  ended_at: string;
  outcome: CallOutcome;
  end_reason: CallEndReason | null;
  held_ms: number;
}

const MISSED: readonly CallOutcome[] = ["no_answer", "cancelled", "busy", "unreachable"];

/** C11: every call, written once when it ends (or is refused), listed per user. */
export class CallHistoryStore {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  /** Records a call; a participant whose account was deleted meanwhile is kept by name only. */
  record(call: CallRecord): void {
    this.#db
      .prepare(
        `INSERT INTO calls (id, caller_id, callee_id, caller_name, caller_display_name, callee_name,
          callee_display_name, created_at, answered_at, ended_at, outcome, end_reason, held_ms)
         VALUES (?, (SELECT id FROM users WHERE id = ?), (SELECT id FROM users WHERE id = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        call.id,
        call.caller.id,
        call.callee.id,
        call.caller.username,
        call.caller.displayName,
        call.callee.username,
        call.callee.displayName,
        call.createdAt,
        call.answeredAt,
        call.endedAt,
        call.outcome,
        call.endReason,
        call.heldMs,
      );
  }

  /** The user's calls, newest first. */
  forUser(userId: number, limit = 50, before?: string): CallHistoryEntry[] {
    const rows = this.#db
      .prepare<[number, number, string, number], CallRow>(
        `SELECT * FROM calls WHERE (caller_id = ? OR callee_id = ?) AND created_at < ?
         ORDER BY created_at DESC, rowid DESC LIMIT ?`,
      )
      .all(userId, userId, before ?? "9999", limit);
    return rows.map((row) => {
      const outgoing = row.caller_id === userId;
      return {
        callId: row.id,
        direction: outgoing ? "outgoing" : "incoming",
        peer: outgoing
          ? { userId: row.callee_id, username: row.callee_name, displayName: row.callee_display_name }
          : { userId: row.caller_id, username: row.caller_name, displayName: row.caller_display_name },
        createdAt: row.created_at,
        answeredAt: row.answered_at,
        endedAt: row.ended_at,
        durationMs: row.answered_at ? Date.parse(row.ended_at) - Date.parse(row.answered_at) : 0,
        outcome: row.outcome,
        heldMs: row.held_ms,
        missed: !outgoing && MISSED.includes(row.outcome),
      };
    });
  }

  count(): number {
    return (this.#db.prepare("SELECT COUNT(*) AS n FROM calls").get() as { n: number }).n;
  }
}
