import type { Call } from "./call.js";

/** The calls (ringing or active) each user takes part in or rings for. */
export class UserCalls {
  readonly #byUser = new Map<number, Set<Call>>();

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
    set.add(call);
  }

  leave(userId: number, call: Call): void {
    const set = this.#byUser.get(userId);
    set?.delete(call);
    if (set?.size === 0) this.#byUser.delete(userId);
  }
}

const NONE: ReadonlySet<Call> = new Set();
