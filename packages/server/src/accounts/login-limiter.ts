import type { LoginLimits } from "../config.js";
import { SlidingWindowCounter } from "./sliding-window.js";

/** First delay of the account-wide slowdown; it doubles with every further failure, up to `maxDelayMs`. */
export const SLOWDOWN_BASE_MS = 250;

/** One counted login attempt, handed back to `succeeded` or `cancel`. */
export interface LoginAttempt {
  readonly at: number;
  /** The keys this attempt was counted under. */
  readonly keys: readonly string[];
  /** Carries a valid device token (not over its own limit): exempt from the address and account counts. */
  readonly trusted: boolean;
  /** How long to wait before the password is checked (the account-wide slowdown); 0 for none. */
  readonly delayMs: number;
}

/**
 * Counts failed logins in a sliding window and decides, before a password is checked, what an
 * attempt may do. Three kinds of limit:
 *
 * - Hard limits, refused with TOO_MANY_ATTEMPTS: per (account, address) pair (`perAccountAddress`,
 *   the low one: a stranger guessing Alice's password shuts out only himself) and per address
 *   across accounts (`perAddress`: one address sweeping many accounts).
 * - The account-wide count (`perAccount`) never refuses: past it, every attempt on the account
 *   waits `250 ms * 2^(failures - perAccount)`, at most `maxDelayMs`, before its password is
 *   checked. Guessing from many addresses becomes slow, yet a stranger cannot lock the owner out.
 * - An attempt with a valid device token (the owner's browser, which logged in before) is exempt
 *   from all of the above; it counts against its own token only, with the `perAccountAddress`
 *   limit, past which the token is ignored (the attempt is treated as any other).
 *
 * An attempt is counted when it starts (before the ~0.3 s password check), so parallel attempts
 * cannot slip past a limit and a burst meets growing delays; a success takes its attempt back
 * (and forgives the pair and the token), a request the server could not serve is taken back
 * entirely. In memory: a restart forgives, acceptable for one node.
 */
export class LoginLimiter {
  readonly #limits: LoginLimits;
  readonly #counts: SlidingWindowCounter;

  constructor(limits: LoginLimits) {
    this.#limits = limits;
    this.#counts = new SlidingWindowCounter(limits.windowMs);
  }

  /**
   * Counts an attempt on `username` from `address`, with `device` the id of a valid device token
   * for that account, if any. Returns undefined (and counts nothing) when a hard limit is reached.
   */
  begin(username: string, address: string, device?: string, now = Date.now()): LoginAttempt | undefined {
    if (device !== undefined) {
      const key = `d:${device}`;
      if (this.#counts.take(key, this.#limits.perAccountAddress, now)) {
        return { at: now, keys: [key], trusted: true, delayMs: 0 };
      }
    }
    const [pair, account, addressKey] = [`p:${username}|${address}`, `u:${username}`, `a:${address}`];
    if (this.#counts.count(pair, now) >= this.#limits.perAccountAddress) return undefined;
    if (this.#counts.count(addressKey, now) >= this.#limits.perAddress) return undefined;
    const failures = this.#counts.count(account, now);
    const keys = [pair, account, addressKey];
    for (const key of keys) this.#counts.add(key, now);
    return { at: now, keys, trusted: false, delayMs: this.slowdown(failures) };
  }

  /** The wait before checking an attempt's password when the account has `failures` in the window. */
  slowdown(failures: number): number {
    const over = failures - this.#limits.perAccount;
    if (over < 0) return 0;
    return Math.min(this.#limits.maxDelayMs, SLOWDOWN_BASE_MS * 2 ** Math.min(over, 30));
  }

  /**
   * The attempt succeeded: it is taken back, and the pair's and the token's failures are forgiven.
   * The account-wide failures are not: they age out, so an attacker's slowdown does not reset
   * each time the owner logs in.
   */
  succeeded(attempt: LoginAttempt): void {
    for (const key of attempt.keys) {
      if (key.startsWith("p:") || key.startsWith("d:")) this.#counts.clear(key);
      else this.#counts.remove(key, attempt.at);
    }
  }

  /** The attempt was not judged (the server was busy): it counts nowhere. */
  cancel(attempt: LoginAttempt): void {
    for (const key of attempt.keys) this.#counts.remove(key, attempt.at);
  }

  close(): void {
    this.#counts.close();
  }

  get trackedKeys(): number {
    return this.#counts.size;
  }
}
