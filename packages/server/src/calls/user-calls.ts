import type { Call } from "./call.js";

/** The calls (ringing or active) each user takes part in or rings for. */
export class UserCalls {
  readonly #byUser = new Map<number, Set<Call>>();
  /** Told each time a user's number of calls changes (shared with the other nodes of a cluster). */
  readonly #changed: (userId: number, count: number) => void;

  constructor(changed: (userId: number, count: number) => void = () => undefined) {
    this.#changed = changed;
  }

  /** The user's calls, held and ringing ones included. */
  of(userId: number): ReadonlySet<Call> {
    return this.#byUser.get(userId) ?? NONE;
  }

  /** How many calls the user takes part in or rings for, held ones included. */
  count(userId: number): number {
    return this.#byUser.get(userId)?.size ?? 0;
  }

  join(userId: number, call: Call): void {
    let set = this.#byUser.get(userId);
    if (!set) {
      set = new Set();
      this.#byUser.set(userId, set);
    }
    if (set.has(call)) return;
    set.add(call);
    this.#changed(userId, set.size);
  }

  leave(userId: number, call: Call): void {
    const set = this.#byUser.get(userId);
    if (!set?.delete(call)) return;
    if (set.size === 0) this.#byUser.delete(userId);
    this.#changed(userId, set.size);
  }
}

const NONE: ReadonlySet<Call> = new Set();
