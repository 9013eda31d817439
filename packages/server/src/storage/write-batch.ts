/** How long rows wait before another try when the database was unreachable. */
const RETRY_DELAY_MS = 1000;

/**
 * Rows queued in memory and handed to `write` together: when `maxItems` are waiting, when
 * `delayMs` has passed since the first of them, or when `flush()` is called (before a read, at
 * shutdown). `write` is meant to insert them in one transaction, so a burst of rows costs one disk
 * sync (or one round trip to PostgreSQL) instead of one each. Batches are written one after the
 * other, in the order their rows came; `flush()` resolves once every row queued before it is
 * written (or given up).
 *
 * A `write` that fails never escapes (it may run in a timer). When `retryLater(error)` says the
 * database is only unreachable for now (PostgreSQL restarting), the rows go back to the head of
 * the queue and are tried again a second later, so nothing is lost while it is down; at most
 * `maxPending` rows wait, and older ones beyond that go to `onError` as lost. Any other failure
 * hands the error and the rows to `onError`.
 */
export class WriteBatch<T> {
  readonly #write: (items: T[]) => Promise<void>;
  readonly #onError: (error: unknown, items: T[]) => Promise<void> | void;
  readonly #retryLater: (error: unknown) => boolean;
  readonly #delayMs: number;
  readonly #maxItems: number;
  readonly #maxPending: number;
  #pending: T[] = [];
  #timer: NodeJS.Timeout | undefined;
  #tail: Promise<void> = Promise.resolve();

  constructor(options: {
    write: (items: T[]) => Promise<void>;
    onError: (error: unknown, items: T[]) => Promise<void> | void;
    retryLater?: (error: unknown) => boolean;
    delayMs: number;
    maxItems: number;
    maxPending?: number;
  }) {
    this.#write = options.write;
    this.#onError = options.onError;
    this.#retryLater = options.retryLater ?? (() => false);
    this.#delayMs = options.delayMs;
    this.#maxItems = options.maxItems;
    this.#maxPending = options.maxPending ?? 100_000;
  }

  /** Rows waiting to be written. */
  get pending(): number {
    return this.#pending.length;
  }

  add(item: T): void {
    this.#pending.push(item);
    if (this.#pending.length >= this.#maxItems) void this.flush();
    else this.#schedule(this.#delayMs);
  }

  /** Writes every queued row now; resolves once they are written, or failed. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length > 0) {
      const items = this.#pending;
      this.#pending = [];
      this.#tail = this.#tail.then(() => this.#writeNow(items));
    }
    return this.#tail;
  }

  #schedule(delayMs: number): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => void this.flush(), delayMs);
    this.#timer.unref();
  }

  async #writeNow(items: T[]): Promise<void> {
    try {
      await this.#write(items);
    } catch (error) {
      if (this.#retryLater(error)) {
        this.#pending = [...items, ...this.#pending];
        const excess = this.#pending.length - this.#maxPending;
        if (excess > 0) await this.#failed(error, this.#pending.splice(0, excess));
        this.#schedule(RETRY_DELAY_MS);
        return;
      }
      await this.#failed(error, items);
    }
  }

  async #failed(error: unknown, items: T[]): Promise<void> {
    try {
      await this.#onError(error, items);
    } catch {
      // onError is the last resort: nothing more can be done with these rows.
    }
  }
}
