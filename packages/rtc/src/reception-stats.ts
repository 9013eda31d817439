import { packetIndex } from "./replay-window.js";

/** Opus's RTP clock (RFC 7587): 48 kHz whatever the audio's sample rate. */
const OPUS_CLOCK_RATE = 48_000;

/**
 * RFC 3550 reception statistics of a received stream (its latest SSRC), counted per packet:
 * A.3 (expected and lost from extended sequence numbers) and A.8 (interarrival jitter). They feed
 * a receiver's quality figures and its receiver reports (see sendReceiverReport). The caller
 * decodes the header, so any data plane can count: it hands over plain numbers.
 */
export class ReceptionStats {
  /** RTP timestamp ticks per ms of the stream's clock. */
  readonly #ticksPerMs: number;
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

  /** `clockRate`: the stream's RTP clock in Hz (Opus's 48 kHz unless told). */
  constructor(clockRate = OPUS_CLOCK_RATE) {
    this.#ticksPerMs = clockRate / 1000;
  }

  /**
   * Hot path, once per packet: counts a packet of `ssrc` with rollover counter `roc`, sequence
   * number `seq` and RTP `timestamp`, which arrived at `arrival` (ms on a monotonic clock; now
   * unless told). Returns how many RTP ticks its timestamp is past the previous packet's of the
   * same SSRC (a signed 32-bit number; 0 for a new SSRC).
   */
  count(ssrc: number, roc: number, seq: number, timestamp: number, arrival = performance.now()): number {
    const extended = packetIndex(roc, seq);
    let advance = 0;
    if (ssrc !== this.ssrc) {
      // A new source (the sender restarted its stream): its statistics start over.
      this.ssrc = ssrc;
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
      advance = (timestamp - this.lastTimestamp) | 0;
      const d = (arrival - this.lastArrival) * this.#ticksPerMs - advance;
      this.jitter += (Math.abs(d) - this.jitter) / 16;
    }
    this.lastArrival = arrival;
    this.lastTimestamp = timestamp;
    return advance;
  }

  /** Packets expected from the first to the highest extended sequence number. */
  get expected(): number {
    return this.max - this.base + 1;
  }

  /** Cumulative packets lost (never below 0: duplicates can outnumber losses). */
  get packetsLost(): number {
    return Math.max(0, this.expected - this.received);
  }

  /** Interarrival jitter in ms. */
  get jitterMs(): number {
    return this.jitter / this.#ticksPerMs;
  }

  /**
   * The fraction of packets lost since the previous call (RFC 3550 A.3), 0 to 1; starts the
   * next interval. Called once per receiver report.
   */
  fractionLostSinceLast(): number {
    const fraction = this.fractionLostSoFar();
    this.expectedPrior = this.expected;
    this.receivedPrior = this.received;
    return fraction;
  }

  /** The fraction lost in the interval fractionLostSinceLast would end now, without ending it. */
  fractionLostSoFar(): number {
    const expectedInterval = this.expected - this.expectedPrior;
    const lostInterval = expectedInterval - (this.received - this.receivedPrior);
    return expectedInterval > 0 && lostInterval > 0 ? lostInterval / expectedInterval : 0;
  }
}
