import { randomUUID } from "node:crypto";
import type { LoginLimits } from "../config.js";
import { type LoginCounts, MemoryLoginCounts } from "./login-counts.js";

/** First delay of the account-wide slowdown; it doubles with every further failure, up to `maxDelayMs`. */
export const SLOWDOWN_BASE_MS = 250;

/** One counted login attempt, handed back to `succeeded` or `cancel`. */
export interface LoginAttempt {
  readonly at: number;
  /** Tells this attempt from others counted at the same millisecond (on any node). */
  readonly id: string;
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
 * An attempt is counted when it starts (before the ~0.3 s password check), in one step with the
 * check of the limits, so parallel attempts cannot slip past a limit and a burst meets growing
 * delays; a success takes its attempt back (and forgives the pair and the token), a request the
 * server could not serve is taken back entirely.
 *
 * Where the counts live (LoginCounts): in memory on one server (a restart forgives); in Redis for
 * the nodes of a cluster (`--redis`, SharedLoginCounts), so an attacker spreading guesses over N
 * nodes behind a load balancer gets the same number of attempts as on one, and a success on one
 * node forgives the pair on all. Counts that cannot be reached refuse the attempt
 * (CLUSTER_UNAVAILABLE), never let it through uncounted.
 */
export class LoginLimiter {
  readonly #limits: LoginLimits;
  readonly #counts: LoginCounts;

  constructor(limits: LoginLimits, counts: LoginCounts = new MemoryLoginCounts(limits.windowMs)) {
    this.#limits = limits;
    this.#counts = counts;
  }

  /**
   * Counts an attempt on `username` from `address`, with `device` the id of a valid device token
   * for that account, if any. Resolves to undefined (and counts nothing) when a hard limit is reached.
   */
  async begin(username: string, address: string, device?: string, now = Date.now()): Promise<LoginAttempt | undefined> {
    const event = { at: now, id: randomUUID() };
    const limit = this.#limits.perAccountAddress;
    if (device !== undefined) {
      const key = `d:${device}`;
      if (await this.#counts.take([{ key, limit }], [], event)) {
        return { ...event, keys: [key], trusted: true, delayMs: 0 };
      }
    }
    const [pair, account, addressKey] = [`p:${username}|${address}`, `u:${username}`, `a:${address}`];
    const before = await this.#counts.take(
      [
        { key: pair, limit },
        { key: addressKey, limit: this.#limits.perAddress },
      ],
      [account],
      event,
    );
    if (!before) return undefined;
    const failures = before[2] ?? 0;
    return { ...event, keys: [pair, account, addressKey], trusted: false, delayMs: this.slowdown(failures) };
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
  succeeded(attempt: LoginAttempt): Promise<void> {
    const forgiven = (key: string) => key.startsWith("p:") || key.startsWith("d:");
    return this.#counts.release(attempt, {
      remove: attempt.keys.filter((key) => !forgiven(key)),
      clear: attempt.keys.filter(forgiven),
    });
  }

  /** The attempt was not judged (the server was busy): it counts nowhere. */
  cancel(attempt: LoginAttempt): Promise<void> {
    return this.#counts.release(attempt, { remove: attempt.keys, clear: [] });
  }

  close(): void {
    this.#counts.close();
  }
}
