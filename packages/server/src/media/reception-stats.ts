import type { InboundRtp } from "./fast-rtp.js";
import { OPUS_TICKS_PER_MS, SEQ_MODULO } from "./rtp-clock.js";

/**
 * RFC 3550 reception statistics of a client's stream (its latest SSRC), counted per packet on
 * either data plane: A.3 (expected and lost from extended sequence numbers) and A.8 (interarrival
 * jitter). They feed the leg's quality and its receiver reports.
 */
export class ReceptionStats {
  /** The stream's SSRC, -1 before the first packet. */
  ssrc = -1;
  /** Extended sequence numbers: the first and the highest received. */
  base = 0;
  max = 0;
  received = 0;
  /** The last packet's arrival (ms) and RTP timestamp, and the interarrival jitter in RTP ticks. */
  lastArrival = 0;
  lastTimestamp = 0;
  jitter = 0;
  /** Expected and received packets at the last receiver report (RFC 3550 A.3 fraction lost). */
  expectedPrior = 0;
  receivedPrior = 0;

  /**
   * Hot path, once per packet: counts it. Returns how many RTP ticks its timestamp is past the
   * previous packet's of the same SSRC (a signed 32-bit number; 0 for a new SSRC).
   */
  count(rtp: InboundRtp): number {
    const extended = rtp.roc * SEQ_MODULO + rtp.sequenceNumber;
    const arrival = performance.now();
    let advance = 0;
    if (rtp.ssrc !== this.ssrc) {
      // A new source (the client restarted its stream): its statistics start over.
      this.ssrc = rtp.ssrc;
      this.base = extended;
      this.max = extended;
      this.received = 1;
      this.jitter = 0;
      this.expectedPrior = 0;
      this.receivedPrior = 0;
    } else {
      this.received++;
      if (extended > this.max) this.max = extended;
      // D(i-1, i) in RTP ticks; the timestamp difference as a signed 32-bit number survives wraps.
      advance = (rtp.timestamp - this.lastTimestamp) | 0;
      const d = (arrival - this.lastArrival) * OPUS_TICKS_PER_MS - advance;
      this.jitter += (Math.abs(d) - this.jitter) / 16;
    }
    this.lastArrival = arrival;
    this.lastTimestamp = rtp.timestamp;
    return advance;
  }

  /** Packets expected from the first to the highest extended sequence number. */
  get expected(): number {
    return this.max - this.base + 1;
  }

  /** Cumulative packets lost (never below 0), for the leg's quality. */
  get packetsLost(): number {
    return Math.max(0, this.expected - this.received);
  }

  /** Interarrival jitter in ms. */
  get jitterMs(): number {
    return this.jitter / OPUS_TICKS_PER_MS;
  }

  /**
   * The fraction of packets lost since the previous call (RFC 3550 A.3), 0 to 1; starts the
   * next interval. Called once per receiver report.
   */
  fractionLostSinceLast(): number {
    const expected = this.expected;
    const expectedInterval = expected - this.expectedPrior;
    const lostInterval = expectedInterval - (this.received - this.receivedPrior);
    this.expectedPrior = expected;
    this.receivedPrior = this.received;
    return expectedInterval > 0 && lostInterval > 0 ? lostInterval / expectedInterval : 0;
  }
}
