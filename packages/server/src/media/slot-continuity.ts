import type { InboundRtp } from "./fast-rtp.js";
import { OPUS_FRAME_TICKS, OPUS_TICKS_PER_MS, SEQ_MODULO } from "./rtp-clock.js";

/**
 * The numbering of one of a leg's outgoing audio streams (a slot). A packet's outgoing SRTP index
 * (ROC * 2^16 + sequence number) is its source index plus the index offset, and its timestamp is
 * moved by the timestamp offset; both offsets change only when the slot's source (or the source's
 * SSRC) changes (see #continueFrom). One per slot; `next` runs once per packet and slot.
 */
export class SlotContinuity {
  /** The outgoing index and timestamp of the packet `next` last accepted. */
  index = 0;
  timestamp = 0;
  /** The source and SSRC whose packets this slot last sent, and when that packet had arrived. */
  #lastSource: object | null = null;
  #lastSsrc = 0;
  #lastOutAt = 0;
  #indexOffset = 0;
  #timestampOffset = 0;
  /** The highest outgoing index sent (-1 before the first packet) and that packet's timestamp. */
  #lastOutIndex = -1;
  #lastOutTimestamp = 0;

  /**
   * Hot path: numbers `rtp` from `source` (which it received at `arrivedAt`, ms) for this slot
   * into `index` and `timestamp`. False: a packet from before the slot's first one (reordered
   * across a source switch), too late to send.
   */
  next(source: object, arrivedAt: number, rtp: InboundRtp): boolean {
    if (this.#lastSource !== source || this.#lastSsrc !== rtp.ssrc) this.#continueFrom(source, arrivedAt, rtp);
    const index = rtp.roc * SEQ_MODULO + rtp.sequenceNumber + this.#indexOffset;
    if (index < 0) return false;
    const timestamp = (rtp.timestamp + this.#timestampOffset) >>> 0;
    if (index > this.#lastOutIndex) {
      this.#lastOutIndex = index;
      this.#lastOutTimestamp = timestamp;
    }
    this.index = index;
    this.timestamp = timestamp;
    return true;
  }

  /** The packet `next` numbered went out; it had arrived from its source at `arrivedAt` (ms). */
  sent(arrivedAt: number): void {
    this.#lastOutAt = arrivedAt;
  }

  /**
   * A new source (or a new SSRC from the same client) brings its own random sequence numbers and
   * timestamps. Offset them so the slot's outgoing stream goes on from its highest packet, with
   * the timestamp advanced by the real gap, and the client's jitter buffer sees a pause rather
   * than a jump. Runs once per switch. The slot's first source's numbers pass through, with the
   * rollover counter restarted at 0: the client's SRTP context starts counting wraps at its first
   * packet (RFC 3711 3.3.1), whatever the source had wrapped before.
   */
  #continueFrom(source: object, arrivedAt: number, rtp: InboundRtp): void {
    const sourceIndex = rtp.roc * SEQ_MODULO + rtp.sequenceNumber;
    if (this.#lastOutIndex < 0) {
      this.#indexOffset = -rtp.roc * SEQ_MODULO;
      this.#timestampOffset = 0;
    } else {
      const gapMs = arrivedAt - this.#lastOutAt;
      const ticks = Math.max(OPUS_FRAME_TICKS, Math.round(gapMs * OPUS_TICKS_PER_MS));
      this.#indexOffset = this.#lastOutIndex + 1 - sourceIndex;
      this.#timestampOffset = (this.#lastOutTimestamp + ticks - rtp.timestamp) >>> 0;
    }
    this.#lastSource = source;
    this.#lastSsrc = rtp.ssrc;
  }
}
