/** Why a connection was refused at connect. */
export type ConnectionRefusal = "global" | "per_address";

/**
 * Open signaling connections, counted in all and per client address, against the configured
 * caps. `admit` is checked at upgrade, before anything is allocated for the connection; every
 * admitted connection is `release`d exactly once when it closes.
 */
export class ConnectionLimits {
  readonly #max: number;
  readonly #perAddress: number;
  readonly #byAddress = new Map<string, number>();
  #total = 0;

  constructor(limits: { max: number; perAddress: number }) {
    this.#max = limits.max;
    this.#perAddress = limits.perAddress;
  }

  /** Open connections in all. */
  get total(): number {
    return this.#total;
  }

  /** Open connections from `address`. */
  count(address: string): number {
    return this.#byAddress.get(address) ?? 0;
  }

  /** Counts one more connection from `address`, or says which cap refuses it (nothing counted). */
  admit(address: string): ConnectionRefusal | undefined {
    if (this.#total >= this.#max) return "global";
    const open = this.count(address);
    if (open >= this.#perAddress) return "per_address";
    this.#byAddress.set(address, open + 1);
    this.#total++;
    return undefined;
  }

  /** Uncounts one connection from `address` that `admit` let in. */
  release(address: string): void {
    const open = this.count(address);
    if (open <= 0) return;
    if (open === 1) this.#byAddress.delete(address);
    else this.#byAddress.set(address, open - 1);
    this.#total--;
  }
}
