import { TokenBucket } from "./rate-limiter.js";

/** How often waiting work is looked at while something waits. */
const TICK_MS = 10;

/** One piece of work waiting for a token; `grant` runs when its token is taken for it. */
interface Waiter {
  readonly grant: () => void;
  readonly upgrade: boolean;
}

/**
 * The share of the event loop that strangers get: one token bucket, for the whole server, for
 * every message from a connection that is not logged in and for every new WebSocket upgrade.
 * `perSecond` tokens a second, up to `burst` at once. Work that finds the bucket empty is not
 * refused but waits, first come first served, while its socket is left unread (so a flood is
 * held back by TCP instead of taking the relay's core); a timer grants the waiting work as the
 * bucket refills, and runs only while something waits. Upgrades may wait `maxWaitingUpgrades`
 * deep; past that they are refused.
 */
export class AnonymousBudget {
  readonly #maxWaitingUpgrades: number;
  /** Insertion order is arrival order. */
  readonly #waiting = new Set<Waiter>();
  #waitingUpgrades = 0;
  /** The tokens (never "flooding": strangers as a whole are held back, not closed). */
  readonly #bucket: TokenBucket;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: { perSecond: number; burst: number; maxWaitingUpgrades: number }) {
    this.#maxWaitingUpgrades = options.maxWaitingUpgrades;
    this.#bucket = new TokenBucket({
      burst: Math.max(1, options.burst),
      perSecond: options.perSecond,
      maxStrikes: Number.POSITIVE_INFINITY,
    });
  }

  /** Work waiting for a token. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** Takes a token now if one is free and nothing waits ahead; false: call `wait`. */
  tryTake(): boolean {
    return this.#waiting.size === 0 && this.#bucket.take() === "ok";
  }

  /** Whether one more upgrade may wait (false: refuse it). */
  get upgradeMayWait(): boolean {
    return this.#waitingUpgrades < this.#maxWaitingUpgrades;
  }

  /**
   * Queues `grant` to run once a token is taken for it, in arrival order. Returns the cancel
   * function (idempotent; a no-op once granted), to call when the waiting socket closes.
   */
  wait(grant: () => void, upgrade = false): () => void {
    const waiter: Waiter = { grant, upgrade };
    this.#waiting.add(waiter);
    if (upgrade) this.#waitingUpgrades++;
    this.#startTimer();
    return () => this.#remove(waiter);
  }

  /** Stops the timer; waiting work stays unread (the server is closing). */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#waiting.clear();
    this.#waitingUpgrades = 0;
  }

  #remove(waiter: Waiter): boolean {
    if (!this.#waiting.delete(waiter)) return false;
    if (waiter.upgrade) this.#waitingUpgrades--;
    if (this.#waiting.size === 0) this.#stopTimer();
    return true;
  }

  #tick(): void {
    for (let next = this.#waiting.values().next(); !next.done; next = this.#waiting.values().next()) {
      if (this.#bucket.take() !== "ok") break;
      this.#remove(next.value);
      next.value.grant();
    }
  }

  #startTimer(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
    this.#timer.unref();
  }

  #stopTimer(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
