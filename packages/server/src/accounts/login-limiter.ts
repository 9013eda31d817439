import type { LoginLimits } from "../config.js";

/**
 * Counts failed logins per account and per client address in a sliding window.
 * While either count is at its limit, logins are refused before any password is
 * checked (so a brute force costs the server nothing). A success clears the
 * account's count. In memory: a restart forgives, which is acceptable for a
 * single-node server; a cluster would keep these counters in Redis.
 */
export class LoginLimiter {
  readonly #limits: LoginLimits;
  readonly #failures = new Map<string, number[]>();

  constructor(limits: LoginLimits) {
    this.#limits = limits;
  }

  isBlocked(username: string, address: string, now = Date.now()): boolean {
    return (
      this.#count(`u:${username}`, now) >= this.#limits.perAccount ||
      this.#count(`a:${address}`, now) >= this.#limits.perAddress
    );
  }

  recordFailure(username: string, address: string, now = Date.now()): void {
    for (const key of [`u:${username}`, `a:${address}`]) {
      const list = this.#failures.get(key) ?? [];
      list.push(now);
      this.#failures.set(key, list);
    }
  }

  recordSuccess(username: string): void {
    this.#failures.delete(`u:${username}`);
  }

  #count(key: string, now: number): number {
    const list = this.#failures.get(key);
    if (!list) return 0;
    const fresh = list.filter((t) => now - t < this.#limits.windowMs);
    if (fresh.length === 0) this.#failures.delete(key);
    else this.#failures.set(key, fresh);
    return fresh.length;
  }
}
