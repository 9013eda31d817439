import { randomUUID } from "node:crypto";
import type { CallEndReason, CallHistoryEntry, CallOutcome } from "@parley/protocol";
import { greatest, insertionOrder, isStorageUnavailable, placeholders, type SqlClient } from "../storage/sql-client.js";
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

/** A participant of a call in progress: `outcome` and `leftAt` are set once they left it. */
export interface OpenParticipantRecord extends Omit<ParticipantRecord, "outcome" | "leftAt"> {
  outcome: CallOutcome | null;
  leftAt: string | null;
}

/** A call in progress as it stands now (see `CallHistoryStore.open`). */
export interface OpenCallRecord {
  id: string;
  createdAt: string;
  answeredAt: string | null;
  /** Time on hold until now. */
  heldMs: number;
  /** Everyone invited so far, the caller first. */
  participants: OpenParticipantRecord[];
}

/** What the write queue holds, in the order it came: a call's open record, its end, an alive mark. */
type HistoryWrite =
  | { kind: "open"; call: OpenCallRecord; at: string }
  | { kind: "end"; call: CallRecord; wasOpen: boolean }
  | { kind: "alive"; at: string };

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
 * A call in progress has an open record in `calls_in_progress` from the moment it rings: written
 * when it starts (`open`), rewritten when someone answers, joins or leaves, and marked alive for
 * every call at once each `--history-alive-interval` (`markAlive`, one statement). Its end replaces
 * it with the `calls` and `call_participants` rows in one transaction, so a call is never listed
 * twice. After a crash (the process killed, the machine down), `closeInterrupted()` at the next
 * start turns each open record into a completed call with outcome `interrupted` (end reason
 * `server_restarted`) that ended at its last alive mark: a crash loses at most one interval of a
 * call's duration. The history lists completed calls only.
 *
 * Writes are queued and written in one transaction every 100 ms (or 200 writes), not a
 * synchronous write each on the event loop that relays audio (a user placing call after refused
 * call would otherwise sync the disk for each); every read writes the queue first, so nobody ever
 * sees a call missing, and `flush()` at shutdown keeps them all. While PostgreSQL is unreachable
 * the writes wait in memory, in order, and go out once it is back. A crash of the machine may lose
 * the last ~100 ms of ended calls' history.
 *
 * Several Parley processes may share one PostgreSQL database: each open record names the process
 * (`node`) that runs the call, each process marks only its own calls alive, and `closeInterrupted`
 * closes only the records of other processes that nobody marked alive since `staleBefore` (with
 * SQLite, one process: every record left at start).
 */
export class CallHistoryStore {
  readonly #sql: SqlClient;
  readonly #node: string;
  readonly #writes: WriteBatch<HistoryWrite>;
  /** Calls with an open record (queued or written) that have not ended. */
  readonly #open = new Set<string>();
  /** Records that could not be written (a full disk, say). */
  writeFailures = 0;

  /** `node` names this process in its open records (random per start). */
  constructor(sql: SqlClient, options: { node?: string } = {}) {
    this.#sql = sql;
    this.#node = options.node ?? randomUUID();
    this.#writes = new WriteBatch({
      write: (writes) =>
        sql.transaction(async (tx) => {
          for (const write of writes) await this.#apply(tx, write);
        }),
      // One bad record must not cost the others: each alone, failures counted.
      onError: async (_error, writes) => {
        for (const write of writes) {
          try {
            await sql.transaction((tx) => this.#apply(tx, write));
          } catch {
            this.writeFailures++;
          }
        }
      },
      retryLater: isStorageUnavailable,
      delayMs: BATCH_DELAY_MS,
      maxItems: BATCH_SIZE,
    });
  }

  /** Queues a call's record, at its end (see the class comment for when it is written). */
  record(call: CallRecord): void {
    if (!call.participants[0] || !call.participants[1]) {
      throw new Error("a call record needs a caller and at least one invitee");
    }
    const wasOpen = this.#open.delete(call.id);
    this.#writes.add({ kind: "end", call, wasOpen });
  }

  /**
   * Queues the open record of a call in progress: when it starts ringing, then again each time
   * someone answers, joins or leaves (the record replaces the one before). Its end (`record`)
   * closes it.
   */
  open(call: OpenCallRecord, at = new Date()): void {
    if (!call.participants[0] || !call.participants[1]) {
      throw new Error("a call record needs a caller and at least one invitee");
    }
    this.#open.add(call.id);
    this.#writes.add({ kind: "open", call, at: at.toISOString() });
  }

  /** Calls in progress with an open record. */
  get openCalls(): number {
    return this.#open.size;
  }

  /** Queues one alive mark for every call in progress (a single statement, whatever their number). */
  markAlive(at = new Date()): void {
    if (this.#open.size > 0) this.#writes.add({ kind: "alive", at: at.toISOString() });
  }

  /**
   * Closes every call a crash left open as `interrupted` (end reason `server_restarted`), ended at
   * its last alive mark; its participants still in it get outcome `interrupted` too and leave then.
   * At start-up, before any call, with no `staleBefore`: every record of another process. With
   * `staleBefore` (ISO 8601; processes sharing PostgreSQL): only those not marked alive since.
   * Two processes closing the same record close it once. Resolves with how many calls were closed.
   */
  async closeInterrupted(staleBefore?: string): Promise<number> {
    await this.flush();
    const rows = await this.#sql.all<{ id: string; record: string; last_alive_at: string }>(
      `SELECT id, record, last_alive_at FROM calls_in_progress WHERE node != ?
       ${staleBefore !== undefined ? "AND last_alive_at < ?" : ""}`,
      staleBefore !== undefined ? [this.#node, staleBefore] : [this.#node],
    );
    let closed = 0;
    for (const row of rows) {
      try {
        const done = await this.#sql.transaction(async (tx) => {
          if ((await tx.run("DELETE FROM calls_in_progress WHERE id = ?", [row.id])) === 0) return false;
          await this.#write(tx, interruptedCall(JSON.parse(row.record) as OpenCallRecord, row.last_alive_at));
          return true;
        });
        if (done) closed++;
      } catch (error) {
        if (isStorageUnavailable(error)) throw error;
        // A record that cannot be read or written is counted and dropped: the start goes on.
        this.writeFailures++;
        try {
          await this.#sql.run("DELETE FROM calls_in_progress WHERE id = ?", [row.id]);
        } catch {
          // Left for the next start.
        }
      }
    }
    return closed;
  }

  /** Writes every queued record now, in one transaction. */
  flush(): Promise<void> {
    return this.#writes.flush();
  }

  async #apply(tx: SqlClient, write: HistoryWrite): Promise<void> {
    switch (write.kind) {
      case "open":
        // An answer, join or leave rewrites the record; an alive mark never moves last_alive_at back.
        await tx.run(
          `INSERT INTO calls_in_progress (id, record, last_alive_at, node) VALUES (?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET record = excluded.record,
             last_alive_at = ${greatest(tx.dialect, "calls_in_progress.last_alive_at", "excluded.last_alive_at")}`,
          [write.call.id, JSON.stringify(write.call), write.at, this.#node],
        );
        return;
      case "end":
        if (write.wasOpen) await tx.run("DELETE FROM calls_in_progress WHERE id = ?", [write.call.id]);
        await this.#write(tx, write.call);
        return;
      case "alive":
        await tx.run(
          `UPDATE calls_in_progress SET last_alive_at = ${greatest(tx.dialect, "last_alive_at", "?")} WHERE node = ?`,
          [write.at, this.#node],
        );
        return;
    }
  }

  /** Writes one call; a participant whose account was deleted meanwhile is kept by name only. */
  async #write(tx: SqlClient, call: CallRecord): Promise<void> {
    const caller = call.participants[0]!;
    const callee = call.participants[1]!;
    await tx.run(
      `INSERT INTO calls (id, caller_id, callee_id, caller_name, caller_display_name, callee_name,
        callee_display_name, created_at, answered_at, ended_at, outcome, end_reason, held_ms)
       VALUES (?, (SELECT id FROM users WHERE id = ?), (SELECT id FROM users WHERE id = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
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
      ],
    );
    await tx.run(
      `INSERT INTO call_participants (call_id, position, user_id, username, display_name, role, outcome, joined_at, left_at)
       VALUES ${call.participants.map(() => "(?, ?, (SELECT id FROM users WHERE id = ?), ?, ?, ?, ?, ?, ?)").join(", ")}`,
      call.participants.flatMap((p, position) => [
        call.id,
        position,
        p.id,
        p.username,
        p.displayName,
        p.role,
        p.outcome,
        p.joinedAt,
        p.leftAt,
      ]),
    );
  }

  /** The user's calls, newest first. */
  async forUser(userId: number, limit = 50, before?: string): Promise<CallHistoryEntry[]> {
    await this.flush();
    const rows = await this.#sql.all<CallRow>(
      `SELECT c.id, c.created_at, c.answered_at, c.ended_at, c.outcome, c.held_ms,
              p.position AS my_position, p.role AS my_role, p.outcome AS my_outcome, p.joined_at AS my_joined_at,
              p.left_at AS my_left_at
       FROM call_participants p JOIN calls c ON c.id = p.call_id
       WHERE p.user_id = ? ${before !== undefined ? "AND c.created_at < ?" : ""}
       ORDER BY c.created_at DESC, ${insertionOrder(this.#sql.dialect, "c")} DESC LIMIT ?`,
      before !== undefined ? [userId, before, limit] : [userId, limit],
    );
    if (rows.length === 0) return [];
    const others = await this.#sql.all<ParticipantRow>(
      `SELECT call_id, position, user_id, username, display_name FROM call_participants
       WHERE call_id IN (${placeholders(rows.length)}) ORDER BY call_id, position`,
      rows.map((row) => row.id),
    );
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

  /** Completed calls (calls in progress are not counted). */
  async count(): Promise<number> {
    await this.flush();
    return (await this.#sql.get<{ n: number }>("SELECT COUNT(*) AS n FROM calls"))!.n;
  }

  /**
   * Deletes at most `limit` calls that ended before `before` (ISO 8601), oldest first, with their
   * participants (ON DELETE CASCADE); resolves with how many calls. Retention calls it in small batches.
   */
  async deleteEndedBefore(before: string, limit: number): Promise<number> {
    await this.flush();
    return this.#sql.run(
      "DELETE FROM calls WHERE id IN (SELECT id FROM calls WHERE ended_at < ? ORDER BY ended_at LIMIT ?)",
      [before, limit],
    );
  }
}

/**
 * The completed record of a call a crash interrupted, ended at its last alive mark: outcome
 * `interrupted` for the call and for everyone still in it (not a missed call for an invitee whose
 * phone was ringing), their own for those who had left.
 */
function interruptedCall(open: OpenCallRecord, lastAliveAt: string): CallRecord {
  // The end is never before the answer or anyone's join or leave, which the record saw.
  const times = [lastAliveAt, open.answeredAt, ...open.participants.flatMap((p) => [p.joinedAt, p.leftAt])];
  const endedAt = times.filter((t): t is string => t !== null).reduce((a, b) => (a > b ? a : b));
  return {
    id: open.id,
    createdAt: open.createdAt,
    answeredAt: open.answeredAt,
    endedAt,
    outcome: "interrupted",
    endReason: "server_restarted",
    heldMs: open.heldMs,
    participants: open.participants.map((p) => ({
      ...p,
      outcome: p.outcome ?? "interrupted",
      leftAt: p.leftAt ?? endedAt,
    })),
  };
}
