import type { MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RtpPacket } from "werift";
import type { Logger } from "../logging/logger.js";
import { TypedEmitter } from "../util/typed-emitter.js";
import { canTransition, type MediaLegState } from "./media-leg-state.js";

export { MEDIA_LEG_STATES, type MediaLegState } from "./media-leg-state.js";

/** Per-leg traffic counters. Bytes are RTP payload bytes. */
export interface MediaLegCounters {
  /** RTP packets received from this leg's client. */
  packetsIn: number;
  /** RTP packets sent to this leg's client (audio forwarded from other legs). */
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** When the last RTP packet arrived from the client, in ms since the epoch; 0 before the first. */
  lastPacketAt: number;
}

/**
 * RTCP-derived quality of a leg, read from werift's stats (null until measured): loss and jitter
 * of the audio the relay receives from the client, round trip from the client's receiver reports.
 */
export interface MediaLegQuality {
  packetsLost: number | null;
  jitterMs: number | null;
  roundTripMs: number | null;
}

/** Relay-wide totals that every leg adds its forwarded packets to. */
export interface ForwardTotals {
  packetsForwarded: number;
  bytesForwarded: number;
}

/** Opus at 48 kHz: 960 timestamp ticks per 20 ms frame, 48 ticks per ms. */
const OPUS_TICKS_PER_MS = 48;
const OPUS_FRAME_TICKS = 960;

/** werift's sendRtp settles when the packet is handed to the socket; send failures are dropped packets. */
function ignoreSendError(): void {}

/**
 * One client's audio connection to the relay: a werift peer connection that receives the
 * client's Opus RTP and sends it on, unchanged but for the header, to the legs given to
 * `forwardTo`. Made by `MediaRelay.createLeg`.
 */
export class MediaLeg extends TypedEmitter<{ stateChange: [MediaLegState]; closed: [] }> {
  readonly id: string;
  readonly #counters: MediaLegCounters = { packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0, lastPacketAt: 0 };
  /** Live view of this leg's counters (the same object every time; copy it to keep a snapshot). */
  readonly counters: Readonly<MediaLegCounters> = this.#counters;
  readonly #pc: RTCPeerConnection;
  readonly #sender: RTCRtpSender;
  readonly #totals: ForwardTotals;
  readonly #logger: Logger;
  readonly #connectTimer: NodeJS.Timeout;
  readonly #unsubscribes: (() => void)[] = [];
  #state: MediaLegState = "connecting";
  /** Where this leg's incoming audio goes. */
  #targets: readonly MediaLeg[] = [];
  /** Legs whose audio comes here, so a closing leg can take itself out of their targets. */
  readonly #sources = new Set<MediaLeg>();
  /** The leg whose packets this leg's sender last sent, and when that packet had arrived. */
  #lastSource: MediaLeg | null = null;
  #lastOutAt = 0;

  /** @internal Legs are made by `MediaRelay.createLeg`, which negotiates the peer connection. */
  constructor(
    id: string,
    pc: RTCPeerConnection,
    sender: RTCRtpSender,
    totals: ForwardTotals,
    logger: Logger,
    connectTimeoutMs: number,
  ) {
    super(logger);
    this.id = id;
    this.#pc = pc;
    this.#sender = sender;
    this.#totals = totals;
    this.#logger = logger.child({ leg: id });
    // Subscribed before setRemoteDescription, which is where werift fires onTrack.
    this.#unsubscribes.push(
      pc.onTrack.subscribe((track) => this.#receive(track)).unSubscribe,
      pc.connectionStateChange.subscribe((state) => this.#onConnectionState(state)).unSubscribe,
    );
    this.#connectTimer = setTimeout(() => this.#fail(`not connected within ${connectTimeoutMs} ms`), connectTimeoutMs);
    this.#connectTimer.unref();
  }

  get state(): MediaLegState {
    return this.#state;
  }

  /**
   * Forwards every audio RTP packet this leg receives to these legs, replacing the previous set;
   * `[]` forwards nowhere. Closed legs and repeats are skipped; a leg that closes later drops
   * itself. This leg itself may be a target (an echo).
   */
  forwardTo(targets: readonly MediaLeg[]): void {
    if (this.#state === "closed") return;
    for (const old of this.#targets) old.#sources.delete(this);
    this.#targets = [...new Set(targets)].filter((target) => target.#state !== "closed");
    for (const target of this.#targets) target.#sources.add(this);
  }

  /** Closes the peer connection and frees its port. Idempotent; emits "closed" once. */
  close(): void {
    if (this.#state === "closed") return;
    clearTimeout(this.#connectTimer);
    for (const unsubscribe of this.#unsubscribes) unsubscribe();
    this.#unsubscribes.length = 0;
    for (const source of this.#sources) {
      source.#targets = source.#targets.filter((target) => target !== this);
    }
    this.#sources.clear();
    this.forwardTo([]);
    this.#transitionTo("closed");
    this.#pc.close().catch((error: unknown) => this.#logger.warn({ err: error }, "closing the peer connection failed"));
    this.emit("closed");
  }

  // ---- Quality (operator console and metrics; not on the packet path) ----------------------------

  /**
   * Reads this leg's RTCP statistics from werift: `inbound-rtp` (what the relay receives:
   * packets lost from sequence gaps, interarrival jitter) and `remote-inbound-rtp` (the client's
   * receiver reports on what the relay sends: round-trip time). Costs one getStats(); meant for
   * once-a-second views, never per packet.
   */
  async quality(): Promise<MediaLegQuality> {
    const quality: MediaLegQuality = { packetsLost: null, jitterMs: null, roundTripMs: null };
    if (this.#state === "closed") return quality;
    try {
      const report = await this.#pc.getStats();
      for (const stats of report.values()) {
        const s = stats as { type: string; packetsLost?: number; jitter?: number; roundTripTime?: number };
        if (s.type === "inbound-rtp") {
          if (typeof s.packetsLost === "number") quality.packetsLost = (quality.packetsLost ?? 0) + s.packetsLost;
          if (typeof s.jitter === "number") quality.jitterMs = s.jitter * 1000;
        } else if (s.type === "remote-inbound-rtp" && typeof s.roundTripTime === "number") {
          quality.roundTripMs = s.roundTripTime * 1000;
        }
      }
    } catch (error) {
      this.#logger.debug({ err: error }, "could not read media stats");
    }
    return quality;
  }

  #receive(track: MediaStreamTrack): void {
    if (track.kind !== "audio") return;
    this.#unsubscribes.push(track.onReceiveRtp.subscribe(this.#onRtp).unSubscribe);
  }

  /** Hot path, once per packet from the client: count, then hand the packet to every target. */
  readonly #onRtp = (rtp: RtpPacket): void => {
    const counters = this.#counters;
    counters.packetsIn++;
    counters.bytesIn += rtp.payload.length;
    counters.lastPacketAt = Date.now();
    const targets = this.#targets;
    for (let i = 0; i < targets.length; i++) targets[i]!.#send(this, rtp);
  };

  /** Hot path, once per packet and target: no await, no logging. */
  #send(source: MediaLeg, rtp: RtpPacket): void {
    if (this.#state !== "connected") return;
    if (this.#lastSource !== source) this.#continueFrom(source, rtp);
    // werift quirk: sendRtp rewrites the packet's header in place (SSRC, payload type, sequence
    // number and timestamp offsets, header extensions) and keeps it for retransmission, so each
    // target needs its own packet; clone() copies the header and shares the payload.
    this.#sender.sendRtp(rtp.clone()).catch(ignoreSendError);
    const bytes = rtp.payload.length;
    this.#counters.packetsOut++;
    this.#counters.bytesOut += bytes;
    this.#totals.packetsForwarded++;
    this.#totals.bytesForwarded += bytes;
    this.#lastOutAt = source.#counters.lastPacketAt;
  }

  /**
   * A new source brings its own random sequence numbers and timestamps. Offset them so this
   * leg's outgoing stream goes on from its last packet, with the timestamp advanced by the real
   * gap, and the client's jitter buffer sees a pause rather than a jump. Runs once per switch.
   * werift quirk: `replaceRTP(header, true)` adds its +1 to the 32-bit timestamp offset with a
   * 16-bit add (truncating it), so this passes a header one packet back with discontinuity off.
   * Before the first packet it does nothing and the first source's numbers pass through.
   */
  #continueFrom(source: MediaLeg, rtp: RtpPacket): void {
    const gapMs = source.#counters.lastPacketAt - this.#lastOutAt;
    const ticks = Math.max(OPUS_FRAME_TICKS, Math.round(gapMs * OPUS_TICKS_PER_MS));
    this.#sender.replaceRTP({
      sequenceNumber: (rtp.header.sequenceNumber - 1) & 0xffff,
      timestamp: (rtp.header.timestamp - ticks) >>> 0,
    });
    this.#lastSource = source;
  }

  #onConnectionState(state: string): void {
    switch (state) {
      case "connected":
        clearTimeout(this.#connectTimer);
        this.#transitionTo("connected");
        break;
      case "failed":
        this.#fail("ICE or DTLS failed");
        break;
      case "closed":
        this.close();
        break;
      case "disconnected":
        // Transient: werift reports "failed" if consent is not regained.
        this.#logger.info("media connection interrupted");
        break;
    }
  }

  /** A failed peer connection cannot recover (no ICE restart here): report it, then close. */
  #fail(reason: string): void {
    if (!this.#transitionTo("failed")) return;
    this.#logger.warn({ reason }, "media leg failed");
    this.close();
  }

  /** The one place state changes: ignores moves that are not allowed (stale or backward events). */
  #transitionTo(next: MediaLegState): boolean {
    const previous = this.#state;
    if (!canTransition(previous, next)) return false;
    this.#state = next;
    this.#logger.info({ from: previous, to: next }, "media leg state");
    this.emit("stateChange", next);
    return true;
  }
}
