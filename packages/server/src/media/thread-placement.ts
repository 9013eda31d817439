/**
 * Which media thread a leg goes on: every leg of one group (a call: both ends of a 1:1 call, every
 * leg of a conference) on the same thread, so a call's packets never cross threads; a group's
 * first leg on the thread with the fewest live legs (placement by load). Pure bookkeeping.
 */
export class ThreadPlacement {
  /** Live legs per thread. */
  readonly #load: number[];
  /** Each group's thread and how many of its legs are live. */
  readonly #groups = new Map<string, { thread: number; legs: number }>();

  constructor(threads: number) {
    this.#load = Array.from({ length: Math.max(1, threads) }, () => 0);
  }

  /** Places one more leg of `group` (undefined: a leg of its own) and returns its thread. */
  place(group: string | undefined): number {
    const placed = group === undefined ? undefined : this.#groups.get(group);
    const thread = placed ? placed.thread : this.#leastLoaded();
    if (placed) placed.legs++;
    else if (group !== undefined) this.#groups.set(group, { thread, legs: 1 });
    this.#load[thread] = (this.#load[thread] ?? 0) + 1;
    return thread;
  }

  /** A leg `place` put on `thread` for `group` is gone. */
  release(thread: number, group: string | undefined): void {
    if (this.#load[thread] !== undefined && this.#load[thread] > 0) this.#load[thread]--;
    if (group === undefined) return;
    const placed = this.#groups.get(group);
    if (placed && --placed.legs <= 0) this.#groups.delete(group);
  }

  /** Live legs on each thread. */
  get load(): readonly number[] {
    return this.#load;
  }

  #leastLoaded(): number {
    let best = 0;
    for (let thread = 1; thread < this.#load.length; thread++) {
      if (this.#load[thread]! < this.#load[best]!) best = thread;
    }
    return best;
  }
}
