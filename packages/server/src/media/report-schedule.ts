import { REPORT_CHECK_MS } from "@parley/rtc";

/** A period is cut into this many ticks; each check runs on one of them, so the checks spread over it. */
const TICKS = 10;

/**
 * One timer for the RTCP report checks of every leg of a relay (each leg's once a period, the
 * legs spread over ten ticks of it so no tick sends them all), instead of one interval per leg.
 * The timer runs only while some leg is scheduled and never keeps the process alive.
 */
export class ReportSchedule {
  readonly #periodMs: number;
  readonly #ticks: Set<() => void>[] = Array.from({ length: TICKS }, () => new Set());
  #tick = 0;
  #next = 0;
  #size = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(periodMs = REPORT_CHECK_MS) {
    this.#periodMs = periodMs;
  }

  /** Runs `check` once a period from now on; the returned function stops it (idempotent). */
  add(check: () => void): () => void {
    const tick = this.#ticks[this.#next]!;
    this.#next = (this.#next + 1) % TICKS;
    tick.add(check);
    this.#size++;
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#run(), this.#periodMs / TICKS);
      this.#timer.unref();
    }
    return () => {
      if (!tick.delete(check)) return;
      if (--this.#size === 0) {
        clearInterval(this.#timer);
        this.#timer = undefined;
      }
    };
  }

  /** Checks scheduled now. */
  get size(): number {
    return this.#size;
  }

  #run(): void {
    const tick = this.#ticks[this.#tick]!;
    this.#tick = (this.#tick + 1) % TICKS;
    for (const check of tick) check();
  }
}
