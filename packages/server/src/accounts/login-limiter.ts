import type { LoginLimits } from "../config.js";

/**
 * Counts failed logins in a sliding window, per (account, address) pair, per account from any
 * address, and per address across accounts. While any count is at its limit, logins are refused
 * before a password is checked, so a brute force costs the server nothing.
 *
 * The pair limit is the low one: a stranger guessing Alice's password locks out only himself,
 * not Alice (who logs in from another address). The account-wide limit is high and stops a
 * guessing attack spread over many addresses; the address limit stops one address sweeping
 * many accounts.
 *
 * An attempt is counted when it starts (before the ~0.3 s password check), so parallel attempts
 * cannot slip past the limit; a success takes its attempt back. In memory: a restart forgives,
 * acceptable for one node; a cluster keeps these counters in Redis.
 */
export class LoginLimiter {
  readonly #limits: LoginLimits;
  readonly #attempts = new Map<string, number[]>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(limits: LoginLimits) {
    this.#limits = limits;
    this.#sweeper = setInterval(() => this.sweep(), Math.max(1000, limits.windowMs));
    this.#sweeper.unref();
  }

  /** Counts an attempt; returns false (and counts nothing) when a limit is already reached. */
  begin(username: string, address: string, now = Date.now()): boolean {
    const keys = this.#keys(username, address);
    const limits = [this.#limits.perAccountAddress, this.#limits.perAccount, this.#limits.perAddress];
    if (keys.some((key, i) => this.#count(key, now) >= limits[i]!)) return false;
    for (const key of keys) {
      const list = this.#attempts.get(key) ?? [];
      list.push(now);
      this.#attempts.set(key, list);
    }
    return true;
  }

  /** The attempt succeeded: the account's failures are forgiven and the attempt is taken back. */
  succeeded(username: string, address: string): void {
    const [pair, account, addressKey] = this.#keys(username, address);
    this.#attempts.delete(pair);
    this.#attempts.delete(account);
    this.#attempts.get(addressKey)?.pop();
  }

  /** Drops counters with nothing left in the window, so one-off names do not accumulate. */
  sweep(now = Date.now()): void {
    for (const key of [...this.#attempts.keys()]) this.#count(key, now);
  }

  close(): void {
    clearInterval(this.#sweeper);
  }

  get trackedKeys(): number {
    return this.#attempts.size;
  }

  #keys(username: string, address: string): [string, string, string] {
    return [`p:${username}|${address}`, `u:${username}`, `a:${address}`];
  }

  #count(key: string, now: number): number {
    const list = this.#attempts.get(key);
    if (!list) return 0;
    const fresh = list.filter((t) => now - t < this.#limits.windowMs);
    if (fresh.length === 0) this.#attempts.delete(key);
    else if (fresh.length !== list.length) this.#attempts.set(key, fresh);
    return fresh.length;
  }
}
