import type { Call } from "./call.js";
import type { CallHistoryStore, OpenCallRecord } from "./call-history-store.js";

// A call in progress in the history (see `CallHistoryStore`): its open record as the call stands
// now, and the ticker that marks every open record alive, so a crash loses at most one interval of
// a call's duration.

/** The open record of a call in progress, as it stands `now`. */
export function openCallRecord(call: Call, now = new Date()): OpenCallRecord {
  return {
    id: call.id,
    createdAt: call.createdAt.toISOString(),
    answeredAt: call.answeredAt?.toISOString() ?? null,
    heldMs: call.heldMs(now.getTime()),
    participants: [...call.members.values()].map((m) => ({
      id: m.userId,
      username: m.party.username,
      displayName: m.party.displayName,
      role: m.role,
      outcome: m.present ? null : (m.outcome ?? null),
      joinedAt: m.joinedAt?.toISOString() ?? null,
      leftAt: m.present ? null : (m.leftAt?.toISOString() ?? null),
    })),
  };
}

/**
 * Every `intervalMs` (`--history-alive-interval`), one alive mark for all calls in progress: a
 * single batched statement, none while no call is in progress.
 */
export class CallLiveness {
  readonly #history: CallHistoryStore;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(history: CallHistoryStore, intervalMs: number) {
    if (!(intervalMs > 0)) throw new RangeError("the history alive interval must be positive");
    this.#history = history;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#history.markAlive(), this.#intervalMs);
    this.#timer.unref();
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
