import type { AuditAction, AuditLog } from "./audit-log.js";

/** One refused attempt: a failed or throttled login, a refused connection, a refused registration. */
export interface Refusal {
  action: AuditAction;
  /** The client address the attempt came from (the summary key, with the action and reason). */
  address: string;
  /** Why it was refused, as the audit entry's `detail.reason` says (e.g. "rate_limited"). */
  reason: string;
  username?: string | null;
}

/** Most distinct (action, address, reason) keys counted per interval; beyond, one overflow key. */
const MAX_KEYS = 10_000;

interface Pending {
  refusal: Refusal;
  /** Refusals after the first, not yet written. */
  more: number;
}

/**
 * Audit entries for refused attempts, written once per (action, address, reason) per interval
 * instead of once per attempt: the first refusal is written at once (the operator sees an attack
 * start), the ones after it are counted in memory and written as one summary entry
 * (`detail.count`, `detail.summary: true`) when the interval ends. A flood of refused attempts
 * thus costs a few rows a minute, not a disk write each on the event loop that also relays media.
 * `onRefused` listeners (metrics) still see every single refusal.
 */
export class RefusalSummary {
  readonly #audit: AuditLog;
  readonly #intervalMs: number;
  readonly #pending = new Map<string, Pending>();
  readonly #listeners: ((refusal: Refusal) => void)[] = [];
  readonly #timer: NodeJS.Timeout;

  constructor(audit: AuditLog, intervalMs = 60_000) {
    this.#audit = audit;
    this.#intervalMs = intervalMs;
    this.#timer = setInterval(() => this.flush(), intervalMs);
    this.#timer.unref();
  }

  /** Counts one refused attempt (see the class comment for when it is written). */
  refused(refusal: Refusal): void {
    for (const listener of this.#listeners) listener(refusal);
    let key = `${refusal.action}|${refusal.address}|${refusal.reason}`;
    let pending = this.#pending.get(key);
    if (!pending && this.#pending.size >= MAX_KEYS) {
      // Too many distinct sources at once: they are summarised together rather than one row each.
      key = `${refusal.action}|*|${refusal.reason}`;
      refusal = { action: refusal.action, address: "*", reason: refusal.reason };
      pending = this.#pending.get(key);
    }
    if (pending) {
      pending.more++;
      return;
    }
    this.#pending.set(key, { refusal, more: 0 });
    this.#write(refusal, 1, false);
  }

  /** Calls `listener` for every refusal, written or only counted. */
  onRefused(listener: (refusal: Refusal) => void): void {
    this.#listeners.push(listener);
  }

  /** Writes the summaries of the interval that ends now and starts a new one. */
  flush(): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    // A summary may cover several accounts: it names none.
    for (const { refusal, more } of pending) if (more > 0) this.#write({ ...refusal, username: null }, more, true);
  }

  /** Writes what is pending and stops the interval timer. */
  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }

  #write(refusal: Refusal, count: number, summary: boolean): void {
    this.#audit.record({
      action: refusal.action,
      username: refusal.username ?? null,
      address: refusal.address === "*" ? null : refusal.address,
      detail: {
        reason: refusal.reason,
        count,
        ...(summary ? { summary: true, windowSeconds: Math.round(this.#intervalMs / 1000) } : {}),
      },
    });
  }
}
