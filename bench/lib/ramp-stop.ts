import type { MeasuredWindow } from "./cluster.js";

/** Loss and added-delay limits a step must stay within to count towards capacity. */
export const LIMITS = { lossPct: 0.1, addedP99Ms: 10 };

/**
 * A step past saturation: losing packets, queueing the median packet 10 ms, or the slowest 1% for a
 * fifth of a second. The ramp goes on through steps that only miss the delay limit (to show where
 * the CPU runs out) and stops after two overloaded steps in a row.
 */
export function overloaded(step: MeasuredWindow): boolean {
  return step.lossPct >= LIMITS.lossPct || step.delay.p50 >= 10 || step.delay.p99 >= 200;
}

/**
 * When a relay ramp stops (Parley's and the peer relays' alike): after two overloaded steps in a
 * row, a step losing 2% or more, or a step where more than a tenth of the new calls failed to set
 * up. BENCH_RELAY_KEEP_GOING=1 ramps on through delay-only overload (on a machine shared with
 * other work, the relay's core can queue packets long before its own CPU runs out).
 */
export class RampStop {
  #overloadedInRow = 0;

  /** Takes a measured step (`calls` in it, `setupFailures` of its new calls): true when the ramp stops here. */
  after(window: MeasuredWindow, calls: number, setupFailures: number): boolean {
    const keepGoing = process.env.BENCH_RELAY_KEEP_GOING === "1" && window.lossPct < LIMITS.lossPct;
    this.#overloadedInRow = overloaded(window) && !keepGoing ? this.#overloadedInRow + 1 : 0;
    return this.#overloadedInRow >= 2 || window.lossPct >= 2 || setupFailures > calls / 10;
  }
}
