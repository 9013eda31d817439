import { ParleyError } from "@parley/protocol";

/**
 * Who a password hash is computed for, which decides its place in the queue:
 * - `anonymous`: registrations and logins without a trusted device; waits behind the others.
 * - `priority`: logins from a trusted device and a logged-in user's own re-checks (change
 *   password, delete account); a flood of anonymous guesses cannot starve them.
 * - `operator`: operator actions (create user, reset password); like `priority`, and never
 *   refused for a full queue (they still wait for a free slot).
 */
export type HashLane = "anonymous" | "priority" | "operator";

interface Waiting {
  start: () => void;
}

/**
 * The one gate in front of scrypt (128 MiB and ~0.3 s of a core per hash, on the scrypt threads):
 * at most `concurrency` hashes run at once, and at most `queue` wait per lane (anonymous,
 * priority) beyond those. A job that finds its lane full fails at once with SERVER_BUSY, before
 * anything is changed. Priority jobs start before anonymous ones.
 */
export class HashPool {
  readonly #concurrency: number;
  readonly #queue: number;
  readonly #priority: Waiting[] = [];
  readonly #anonymous: Waiting[] = [];
  #running = 0;

  constructor(limits: { hashConcurrency: number; hashQueue: number }) {
    this.#concurrency = Math.max(1, limits.hashConcurrency);
    this.#queue = Math.max(0, limits.hashQueue);
  }

  /** Runs `job` when a slot is free; rejects with SERVER_BUSY at once when the lane is full. */
  async run<T>(lane: HashLane, job: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#concurrency) {
      const waiting = lane === "anonymous" ? this.#anonymous : this.#priority;
      if (lane !== "operator" && waiting.length >= this.#queue) throw new ParleyError("SERVER_BUSY");
      await new Promise<void>((start) => waiting.push({ start }));
    } else {
      this.#running++;
    }
    try {
      return await job();
    } finally {
      this.#next();
    }
  }

  /** Hashes running and waiting, for tests and metrics. */
  get load(): { running: number; priority: number; anonymous: number } {
    return { running: this.#running, priority: this.#priority.length, anonymous: this.#anonymous.length };
  }

  /** A job ended: its slot goes to the next waiting job (priority first) or is freed. */
  #next(): void {
    const next = this.#priority.shift() ?? this.#anonymous.shift();
    if (next) next.start();
    else this.#running--;
  }
}
