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

/** Alive intervals after which a call nobody marked alive is taken as interrupted (shared database). */
export const STALE_INTERVALS = 3;

/**
 * Every `intervalMs` (`--history-alive-interval`), one alive mark for all calls in progress: a
 * single batched statement, none while no call is in progress. With `reclaimStale` (processes
 * sharing PostgreSQL), every STALE_INTERVALS marks it also closes the calls of a process that
 * stopped marking them (it crashed), as interrupted.
 */
export class CallLiveness {
  readonly #history: CallHistoryStore;
  readonly #intervalMs: number;
  readonly #reclaimStale: ((closed: Promise<number>) => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #ticks = 0;

  constructor(
    history: CallHistoryStore,
    intervalMs: number,
    options: { reclaimStale?: (closed: Promise<number>) => void } = {},
  ) {
    if (!(intervalMs > 0)) throw new RangeError("the history alive interval must be positive");
    this.#history = history;
    this.#intervalMs = intervalMs;
    this.#reclaimStale = options.reclaimStale;
  }

  /** Calls last marked alive before this (ISO 8601) belong to a process that stopped. */
  staleBefore(now = Date.now()): string {
    return new Date(now - STALE_INTERVALS * this.#intervalMs).toISOString();
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#tick(), this.#intervalMs);
    this.#timer.unref();
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    this.#history.markAlive();
    this.#ticks++;
    if (this.#reclaimStale && this.#ticks % STALE_INTERVALS === 0) {
      this.#reclaimStale(this.#history.closeInterrupted(this.staleBefore()));
    }
  }
}
