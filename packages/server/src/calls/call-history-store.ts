import type { CallEndReason, CallHistoryEntry, CallOutcome } from "@parley/protocol";
import type { Statement } from "better-sqlite3";
import type { Database } from "../storage/database.js";
import { WriteBatch } from "../storage/write-batch.js";

export interface ParticipantRecord {
  id: number;
  username: string;
  displayName: string;
  role: "caller" | "callee";
  /** How the call went for this participant (the caller's is the call's outcome). */
  outcome: CallOutcome;
  joinedAt: string | null;
  leftAt: string;
}

export interface CallRecord {
  id: string;
  createdAt: string;
  answeredAt: string | null;
  endedAt: string;
  /** The call's outcome: "answered" once anyone answered. */
  outcome: CallOutcome;
  endReason: CallEndReason | null;
  heldMs: number;
  /** Everyone invited, the caller first. */
  participants: ParticipantRecord[];
}

interface CallRow {
  id: string;
  created_at: string;
  answered_at: string | null;
  ended_at: string;
  outcome: CallOutcome;
  held_ms: number;
  my_position: number;
  my_role: "caller" | "callee";
  my_outcome: CallOutcome;
  my_joined_at: string | null;
  my_left_at: string;
}

interface ParticipantRow {
  call_id: string;
  position: number;
  user_id: number | null;
  username: string;
  display_name: string;
}

const MISSED: readonly CallOutcome[] = ["no_answer", "cancelled", "busy", "unreachable"];

/** Calls queued before they are written in one transaction, and the longest they wait. */
const BATCH_SIZE = 200;
const BATCH_DELAY_MS = 100;

/**
 * C11: every call, written once when it ends (or is refused), with each participant, listed per
 * user. The `calls` row keeps the caller and the first invitee (the 1:1 view); `call_participants`
 * has everyone, with their own outcome.
 *
 * Records are queued and written in one transaction every 100 ms (or 200 calls), not a
 * synchronous fsync each on the event loop that relays audio (a user placing call after refused
 * call would otherwise sync the disk for each); every read writes the queue first, so nobody ever
 * sees a call missing, and `flush()` at shutdown keeps them all. A crash of the machine may lose
 * the last ~100 ms of ended calls' history.
 */
export class CallHistoryStore {
  readonly #db: Database;
  readonly #calls: WriteBatch<CallRecord>;
  readonly #insertCall: Statement;
  readonly #insertParticipant: Statement;
  /** Records that could not be written (a full disk, say). */
  writeFailures = 0;

  constructor(db: Database) {
    this.#db = db;
    this.#insertCall = db.prepare(
      `INSERT INTO calls (id, caller_id, callee_id, caller_name, caller_display_name, callee_name,
        callee_display_name, created_at, answered_at, ended_at, outcome, end_reason, held_ms)
       VALUES (?, (SELECT id FROM users WHERE id = ?), (SELECT id FROM users WHERE id = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#insertParticipant = db.prepare(
      `INSERT INTO call_participants (call_id, position, user_id, username, display_name, role, outcome, joined_at, left_at)
       VALUES (?, ?, (SELECT id FROM users WHERE id = ?), ?, ?, ?, ?, ?, ?)`,
    );
    this.#calls = new WriteBatch({
      write: (calls) =>
        db.transaction(() => {
          for (const call of calls) this.#write(call);
        })(),
      // One bad record must not cost the others: each alone, failures counted.
      onError: (_error, calls) => {
        for (const call of calls) {
          try {
            db.transaction(() => this.#write(call))();
          } catch {
            this.writeFailures++;
          }
        }
      },
      delayMs: BATCH_DELAY_MS,
      maxItems: BATCH_SIZE,
    });
  }

  /** Queues a call's record (see the class comment for when it is written). */
  record(call: CallRecord): void {
    if (!call.participants[0] || !call.participants[1]) {
      throw new Error("a call record needs a caller and at least one invitee");
    }
    this.#calls.add(call);
  }

  /** Writes every queued record now, in one transaction. */
  flush(): void {
    this.#calls.flush();
  }

  /** Writes one call; a participant whose account was deleted meanwhile is kept by name only. */
  #write(call: CallRecord): void {
    const caller = call.participants[0]!;
    const callee = call.participants[1]!;
    this.#insertCall.run(
      call.id,
      caller.id,
      callee.id,
      caller.username,
      caller.displayName,
      callee.username,
      callee.displayName,
      call.createdAt,
      call.answeredAt,
      call.endedAt,
      call.outcome,
      call.endReason,
      call.heldMs,
    );
    for (const [position, p] of call.participants.entries()) {
      this.#insertParticipant.run(
        call.id,
        position,
        p.id,
        p.username,
        p.displayName,
        p.role,
        p.outcome,
        p.joinedAt,
        p.leftAt,
      );
    }
  }

  /** The user's calls, newest first. */
  forUser(userId: number, limit = 50, before?: string): CallHistoryEntry[] {
    this.flush();
    const rows = this.#db
      .prepare<[number, string, number], CallRow>(
        `SELECT c.id, c.created_at, c.answered_at, c.ended_at, c.outcome, c.held_ms,
                p.position AS my_position, p.role AS my_role, p.outcome AS my_outcome, p.joined_at AS my_joined_at,
                p.left_at AS my_left_at
         FROM call_participants p JOIN calls c ON c.id = p.call_id
         WHERE p.user_id = ? AND c.created_at < ?
         ORDER BY c.created_at DESC, c.rowid DESC LIMIT ?`,
      )
      .all(userId, before ?? "9999", limit);
    if (rows.length === 0) return [];
    const others = this.#db
      .prepare<[string], ParticipantRow>(
        `SELECT call_id, position, user_id, username, display_name FROM call_participants
         WHERE call_id IN (SELECT value FROM json_each(?)) ORDER BY call_id, position`,
      )
      .all(JSON.stringify(rows.map((row) => row.id)));
    const byCall = new Map<string, ParticipantRow[]>();
    for (const p of others) byCall.set(p.call_id, [...(byCall.get(p.call_id) ?? []), p]);
    return rows.map((row) => {
      const outgoing = row.my_role === "caller";
      const participants = (byCall.get(row.id) ?? [])
        .filter((p) => p.position !== row.my_position)
        .map((p) => ({ userId: p.user_id, username: p.username, displayName: p.display_name }));
      const outcome = outgoing ? row.outcome : row.my_outcome;
      // The duration is this user's own time in the call (a conference may have begun without them).
      const joinedAt = outgoing ? row.answered_at : row.my_joined_at;
      return {
        callId: row.id,
        direction: outgoing ? "outgoing" : "incoming",
        peer: participants[0] ?? { userId: null, username: "", displayName: "" },
        participants,
        conference: participants.length > 1,
        createdAt: row.created_at,
        answeredAt: joinedAt,
        endedAt: row.my_left_at,
        durationMs: joinedAt ? Math.max(0, Date.parse(row.my_left_at) - Date.parse(joinedAt)) : 0,
        outcome,
        heldMs: row.held_ms,
        missed: !outgoing && MISSED.includes(outcome),
      };
    });
  }

  count(): number {
    this.flush();
    return (this.#db.prepare("SELECT COUNT(*) AS n FROM calls").get() as { n: number }).n;
  }

  /**
   * Deletes at most `limit` calls that ended before `before` (ISO 8601), oldest first, with their
   * participants (ON DELETE CASCADE); returns how many calls. Retention calls it in small batches.
   */
  deleteEndedBefore(before: string, limit: number): number {
    this.flush();
    return this.#db
      .prepare("DELETE FROM calls WHERE id IN (SELECT id FROM calls WHERE ended_at < ? ORDER BY ended_at LIMIT ?)")
      .run(before, limit).changes;
  }
}
