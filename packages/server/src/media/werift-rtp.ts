import { packetIndex, type ReceivedStream, ReplayVerdict, type RtpPacket, receivedStream } from "@parley/rtc";
import { emptyInboundRtp, type InboundRtp } from "./fast-rtp.js";
import type { MediaDrops } from "./media-drops.js";

/**
 * werift's data plane, receive side (before the fast path takes over, or instead of it): decodes
 * the RtpPackets werift decrypted and authenticated into the InboundRtp both planes deliver. The
 * socket guard dropped replays before werift saw them; the window is checked again here for the
 * first packets of an SSRC the guard did not know yet.
 */
export class WeriftRtpDecoder {
  /** Rollover counters and replay windows of the client's SSRCs (shared with the guard and fast path). */
  readonly #streams: Map<number, ReceivedStream>;
  readonly #drops: MediaDrops;
  readonly #deliver: (rtp: InboundRtp) => void;
  /** The packet decoded into. */
  readonly #inbound: InboundRtp = emptyInboundRtp();
  /** The negotiated id of the audio level header extension, or null when the client sends none. */
  #audioLevelId: number | null = null;

  constructor(streams: Map<number, ReceivedStream>, drops: MediaDrops, deliver: (rtp: InboundRtp) => void) {
    this.#streams = streams;
    this.#drops = drops;
    this.#deliver = deliver;
  }

  setAudioLevelExtension(id: number | null): void {
    this.#audioLevelId = id;
  }

  /** Hot path, once per packet werift received: subscribe it to the track's onReceiveRtp. */
  readonly onRtp = (rtp: RtpPacket): void => {
    const header = rtp.header;
    let stream = this.#streams.get(header.ssrc);
    if (!stream) {
      stream = receivedStream();
      this.#streams.set(header.ssrc, stream);
    }
    const roc = stream.rocs.guess(header.sequenceNumber);
    const index = packetIndex(roc, header.sequenceNumber);
    const verdict = stream.replay.check(index);
    if (verdict !== ReplayVerdict.FRESH) {
      if (verdict === ReplayVerdict.REPLAY) this.#drops.replay++;
      else this.#drops.too_old++;
      return;
    }
    stream.replay.accept(index);
    stream.rocs.accept(header.sequenceNumber, roc);
    const inbound = this.#inbound;
    inbound.ssrc = header.ssrc;
    inbound.sequenceNumber = header.sequenceNumber;
    inbound.roc = roc;
    inbound.timestamp = header.timestamp;
    inbound.marker = header.marker;
    inbound.payload = rtp.payload;
    inbound.audioLevel = -1;
    if (this.#audioLevelId !== null) {
      for (const extension of header.extensions) {
        if (extension.id === this.#audioLevelId && extension.payload.length >= 1) {
          inbound.audioLevel = extension.payload[0]! & 0x7f;
          break;
        }
      }
    }
    this.#deliver(inbound);
  };
}
