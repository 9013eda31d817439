/**
 * Counts events per key within a sliding time window (the timestamps of each key, oldest first).
 * Keys with nothing left in the window are dropped by `sweep()`, which an unref'd timer runs once
 * a window, so one-off keys (a stranger's address) do not accumulate. In memory: a restart
 * forgives, acceptable for one node.
 */
export class SlidingWindowCounter {
  readonly #windowMs: number;
  readonly #events = new Map<string, number[]>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
    this.#sweeper = setInterval(() => this.sweep(), Math.max(1000, windowMs));
    this.#sweeper.unref();
  }

  /** Events of `key` still in the window. */
  count(key: string, now = Date.now()): number {
    const list = this.#events.get(key);
    if (!list) return 0;
    const fresh = list.filter((t) => now - t < this.#windowMs);
    if (fresh.length === 0) this.#events.delete(key);
    else if (fresh.length !== list.length) this.#events.set(key, fresh);
    return fresh.length;
  }

  add(key: string, at: number): void {
    const list = this.#events.get(key);
    if (list) list.push(at);
    else this.#events.set(key, [at]);
  }

  /** Counts an event unless `limit` are already in the window; returns whether it was counted. */
  take(key: string, limit: number, now = Date.now()): boolean {
    if (this.count(key, now) >= limit) return false;
    this.add(key, now);
    return true;
  }

  /** Takes back one event counted at `at` (an attempt that turned out not to count). */
  remove(key: string, at: number): void {
    const list = this.#events.get(key);
    if (!list) return;
    const index = list.lastIndexOf(at);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) this.#events.delete(key);
  }

  clear(key: string): void {
    this.#events.delete(key);
  }

  sweep(now = Date.now()): void {
    for (const key of [...this.#events.keys()]) this.count(key, now);
  }

  close(): void {
    clearInterval(this.#sweeper);
  }

  get size(): number {
    return this.#events.size;
  }
}
