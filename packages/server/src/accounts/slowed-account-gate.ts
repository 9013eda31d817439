/** Password checks one slowed account may have running at once. */
export const SLOWED_ACCOUNT_PARALLEL = 2;

interface Gate {
  active: number;
  waiting: (() => void)[];
}

/**
 * Bounds the damage of parallel guesses on an account under slowdown: at most
 * `SLOWED_ACCOUNT_PARALLEL` of its untrusted attempts check a password at once; the others wait
 * their turn (first come, first served; never refused). A flood on one account thus takes at
 * most that many of the hash pool's slots, and the owner's trusted device skips this gate.
 */
export class SlowedAccountGate {
  readonly #gates = new Map<string, Gate>();

  async run<T>(account: string, job: () => Promise<T>): Promise<T> {
    let gate = this.#gates.get(account);
    if (!gate) {
      gate = { active: 0, waiting: [] };
      this.#gates.set(account, gate);
    }
    if (gate.active >= SLOWED_ACCOUNT_PARALLEL) await new Promise<void>((resolve) => gate.waiting.push(resolve));
    else gate.active++;
    try {
      return await job();
    } finally {
      const next = gate.waiting.shift();
      if (next) next();
      else if (--gate.active === 0) this.#gates.delete(account);
    }
  }

  /** Accounts with password checks running or waiting here. */
  get size(): number {
    return this.#gates.size;
  }
}
