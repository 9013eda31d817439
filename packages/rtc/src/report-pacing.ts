/*
 * When a connection's RTCP reports go out (RFC 3550 6.2): one compound packet (every stream's
 * sender report and the receiver report) at most every 5 s on average, randomised between 0.5 and
 * 1.5 times the interval so peers do not synchronise, as browsers pace their audio reports. A
 * rise in the loss to report goes out at the next check instead (RFC 4585's early feedback, which
 * the SAVPF profile every WebRTC client offers allows): the client's Opus encoder sizes its
 * in-band FEC by that loss, so it follows a loss onset within a check, not within five seconds.
 */

/** RFC 3550's minimum interval between a participant's reports (ms), on average. */
export const REPORT_INTERVAL_MS = 5000;
/** A loss to report at least this much (a fraction, 0..1) above the last one reported is sent early. */
export const LOSS_RISE = 0.02;

export class ReportPacing {
  #nextAt = 0;
  #lossReported = 0;

  /** Whether the reports are due at `now` (ms), with `loss` (0..1) the loss the receiver report would carry. */
  due(now: number, loss: number): boolean {
    return now >= this.#nextAt || loss >= this.#lossReported + LOSS_RISE;
  }

  /** The reports went out at `now` with `loss`: the next ones are due one randomised interval later. */
  sent(now: number, loss: number): void {
    this.#nextAt = now + REPORT_INTERVAL_MS * (0.5 + Math.random());
    this.#lossReported = loss;
  }
}
