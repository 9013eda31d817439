/**
 * Rows queued in memory and handed to `write` together: when `maxItems` are waiting, when
 * `delayMs` has passed since the first of them, or when `flush()` is called (before a read, at
 * shutdown). `write` is meant to insert them in one transaction, so a burst of rows costs one disk
 * sync instead of one each on the event loop that also relays audio. A `write` that throws never
 * escapes (it may run in a timer): `onError` gets the error and the rows it was given.
 */
export class WriteBatch<T> {
  readonly #write: (items: T[]) => void;
  readonly #onError: (error: unknown, items: T[]) => void;
  readonly #delayMs: number;
  readonly #maxItems: number;
  #pending: T[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(options: {
    write: (items: T[]) => void;
    onError: (error: unknown, items: T[]) => void;
    delayMs: number;
    maxItems: number;
  }) {
    this.#write = options.write;
    this.#onError = options.onError;
    this.#delayMs = options.delayMs;
    this.#maxItems = options.maxItems;
  }

  add(item: T): void {
    this.#pending.push(item);
    if (this.#pending.length >= this.#maxItems) this.flush();
    else if (!this.#timer) {
      this.#timer = setTimeout(() => this.flush(), this.#delayMs);
      this.#timer.unref();
    }
  }

  /** Writes every queued row now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length === 0) return;
    const items = this.#pending;
    this.#pending = [];
    try {
      this.#write(items);
    } catch (error) {
      this.#onError(error, items);
    }
  }
}
