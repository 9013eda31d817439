import type { CallHistoryEntry } from "@parley/protocol";
import type { ClientAccess, HistoryState, StateAccess } from "./softphone-state.js";
import { loadHistorySeen, saveHistorySeen } from "./storage.js";

const HISTORY_LIMIT = 200;

/** A history not loaded yet. */
export function emptyHistory(): HistoryState {
  return { entries: [], status: "idle", missedCount: 0 };
}

/** The call history and its missed-call badge: `history`. */
export class HistorySlice {
  readonly #state: StateAccess;
  readonly #session: ClientAccess;

  constructor(state: StateAccess, session: ClientAccess) {
    this.#state = state;
    this.#session = session;
  }

  /** The history to show after a sign-in: kept when the same user signs in again. */
  forSignIn(userId: number): HistoryState {
    const state = this.#state.get();
    return state.self?.id === userId ? state.history : emptyHistory();
  }

  async refresh(): Promise<void> {
    const client = this.#session.client;
    const state = this.#state.get();
    if (client?.connectionState !== "connected" || state.phase !== "signedIn") return;
    if (state.history.status !== "loaded") this.#state.set({ history: { ...state.history, status: "loading" } });
    try {
      const entries = await client.history(HISTORY_LIMIT);
      if (this.#session.client !== client) return;
      this.#state.set({ history: { entries, status: "loaded", missedCount: this.#countMissed(entries) } });
      if (this.#state.get().page === "history") this.markSeen();
    } catch {
      if (this.#session.client === client)
        this.#state.set({ history: { ...this.#state.get().history, status: "error" } });
    }
  }

  /** Opening the history clears the missed-call badge. */
  markSeen(): void {
    const { self, history } = this.#state.get();
    const newest = history.entries[0];
    if (self && newest) saveHistorySeen(self.id, newest.createdAt);
    if (history.missedCount !== 0) this.#state.set({ history: { ...history, missedCount: 0 } });
  }

  #countMissed(entries: CallHistoryEntry[]): number {
    const self = this.#state.get().self;
    if (!self) return 0;
    const seen = loadHistorySeen(self.id);
    const seenAt = seen ? Date.parse(seen) : Number.NEGATIVE_INFINITY;
    return entries.filter((e) => e.missed && Date.parse(e.createdAt) > seenAt).length;
  }
}
