import { SlidingWindowCounter } from "./sliding-window.js";

/** One counted event: when (its place in the window), and an id telling it from others at the same millisecond. */
export interface CountedEvent {
  readonly at: number;
  readonly id: string;
}

/** A key that refuses the event once `limit` events are in the window. */
export interface LimitedKey {
  readonly key: string;
  readonly limit: number;
}

/**
 * Where the login limiter keeps its counts (see LoginLimiter): events per key within a sliding
 * window. In memory for one server; in Redis for the nodes of a cluster (SharedLoginCounts), so
 * that every node sees the same counts.
 */
export interface LoginCounts {
  /**
   * One step, atomic against every other process sharing the counts: unless a key of `limited`
   * already holds its `limit` events in the window, counts `event` under every key of `limited`
   * and `counted`. Returns each key's count before the event (`limited` first, then `counted`),
   * or undefined when refused (then nothing is counted). Rejects (CLUSTER_UNAVAILABLE when the
   * counts are shared) when the counts cannot be reached: nothing may pass unlimited.
   */
  take(limited: readonly LimitedKey[], counted: readonly string[], event: CountedEvent): Promise<number[] | undefined>;
  /** Takes `event` back from `remove`, and every event of `clear`. Never rejects (a failure is logged). */
  release(event: CountedEvent, keys: { remove: readonly string[]; clear: readonly string[] }): Promise<void>;
  close(): void;
}

/** The counts of one server, in memory: a restart forgives. */
export class MemoryLoginCounts implements LoginCounts {
  readonly #counts: SlidingWindowCounter;

  constructor(windowMs: number) {
    this.#counts = new SlidingWindowCounter(windowMs);
  }

  async take(
    limited: readonly LimitedKey[],
    counted: readonly string[],
    event: CountedEvent,
  ): Promise<number[] | undefined> {
    const before: number[] = [];
    for (const { key, limit } of limited) {
      const count = this.#counts.count(key, event.at);
      if (count >= limit) return undefined;
      before.push(count);
    }
    for (const key of counted) before.push(this.#counts.count(key, event.at));
    for (const key of [...limited.map(({ key }) => key), ...counted]) this.#counts.add(key, event.at);
    return before;
  }

  async release(event: CountedEvent, keys: { remove: readonly string[]; clear: readonly string[] }): Promise<void> {
    for (const key of keys.remove) this.#counts.remove(key, event.at);
    for (const key of keys.clear) this.#counts.clear(key);
  }

  close(): void {
    this.#counts.close();
  }
}
