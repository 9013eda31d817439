import type { CallEndReason, CallHistoryEntry, CallOutcome } from "@parley/protocol";
import type { Call } from "./call.js";
import type { CallHistoryStore, CallRecord } from "./call-history-store.js";
import { openCallRecord } from "./call-liveness.js";

/** The history's record of an ended (or refused) call, each participant with their own outcome. */
export function callRecord(call: Call, outcome: CallOutcome, reason: CallEndReason | null, endedAt: Date): CallRecord {
  return {
    id: call.id,
    createdAt: call.createdAt.toISOString(),
    answeredAt: call.answeredAt?.toISOString() ?? null,
    endedAt: endedAt.toISOString(),
    outcome,
    endReason: reason,
    heldMs: call.heldMs(endedAt.getTime()),
    participants: [...call.members.values()].map((m) => ({
      id: m.userId,
      username: m.party.username,
      displayName: m.party.displayName,
      role: m.role,
      outcome: m.outcome ?? outcome,
      joinedAt: m.joinedAt?.toISOString() ?? null,
      leftAt: (m.leftAt ?? endedAt).toISOString(),
    })),
  };
}

/**
 * Writes calls to the history: the open record of a call in progress (when it starts ringing
 * and whenever someone answers, joins or leaves) and the final record when it ends. A failed
 * write is logged and never stops the call.
 */
export class CallRecording {
  readonly #history: CallHistoryStore;

  constructor(history: CallHistoryStore) {
    this.#history = history;
  }

  /** The call ended (or was refused): its final record. */
  record(call: Call, outcome: CallOutcome, reason: CallEndReason | null, endedAt: Date): void {
    try {
      this.#history.record(callRecord(call, outcome, reason, endedAt));
    } catch (error) {
      // The call has ended for everyone whatever happens to its record (e.g. a full disk).
      call.logger.error({ err: error }, "could not record the call in the history");
    }
  }

  /** Keeps the history's open record of a call in progress current, for a start after a crash. */
  open(call: Call): void {
    try {
      this.#history.open(openCallRecord(call));
    } catch (error) {
      call.logger.error({ err: error }, "could not record the call in progress in the history");
    }
  }

  /** A user's history, newest first. */
  forUser(userId: number, limit?: number, before?: string): Promise<CallHistoryEntry[]> {
    return this.#history.forUser(userId, limit, before);
  }
}
