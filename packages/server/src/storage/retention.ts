import type { Logger } from "pino";
import { nowIso } from "./database.js";

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Rows deleted per statement: a batch takes milliseconds, then the event loop (and, on
 * PostgreSQL, other transactions waiting on those rows) gets a turn.
 */
export const RETENTION_BATCH = 500;

/** One kind of row kept for a number of days. */
export interface RetentionTarget {
  /** Names the kind in the log and in the result, e.g. "audit". */
  name: string;
  /** Days the rows are kept; 0 keeps them forever. */
  days: number;
  /** Deletes at most `limit` rows older than `before` (ISO 8601); resolves with how many. */
  deleteOlderThan(before: string, limit: number): Promise<number>;
}

/** Rows deleted by one retention pass, per target name (targets kept forever are absent). */
export type RetentionResult = Record<string, number>;

/**
 * Deletes rows past their retention, at start and then once a day: in batches of RETENTION_BATCH,
 * yielding to the event loop between batches so that a first pass over a large, old database
 * never stalls signaling or the media relay. Each pass logs how many rows it deleted.
 */
export class RetentionSweeper {
  readonly #targets: RetentionTarget[];
  readonly #logger: Logger;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<RetentionResult> | undefined;
  #closed = false;

  constructor(deps: { targets: RetentionTarget[]; logger: Logger; intervalMs?: number }) {
    this.#targets = deps.targets;
    this.#logger = deps.logger;
    this.#intervalMs = deps.intervalMs ?? DAY_MS;
  }

  /** Runs a pass now and then every interval (the timer never keeps the process alive). */
  start(): void {
    if (this.#closed || this.#timer) return;
    const pass = () => {
      this.runNow().catch((error: unknown) => this.#logger.error({ err: error }, "retention pass failed"));
    };
    pass();
    this.#timer = setInterval(pass, this.#intervalMs);
    this.#timer.unref();
  }

  /**
   * One pass now (after the one running, if any): deletes what is older than each target's days,
   * measured from `now`. Resolves with the rows deleted per target.
   */
  runNow(now = Date.now()): Promise<RetentionResult> {
    const previous = this.#running ?? Promise.resolve({});
    const run = previous.catch(() => ({})).then(() => this.#pass(now));
    this.#running = run;
    return run;
  }

  /** Stops the timer; a pass under way stops after its current batch. Idempotent. */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #pass(now: number): Promise<RetentionResult> {
    const result: RetentionResult = {};
    for (const target of this.#targets) {
      if (this.#closed) break;
      if (target.days <= 0) continue;
      const before = nowIso(now - target.days * DAY_MS);
      let deleted = 0;
      for (;;) {
        if (this.#closed) break;
        const n = await target.deleteOlderThan(before, RETENTION_BATCH);
        deleted += n;
        if (n < RETENTION_BATCH) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
      result[target.name] = deleted;
      this.#logger.info({ target: target.name, days: target.days, before, deleted }, "retention: old rows deleted");
    }
    return result;
  }
}
