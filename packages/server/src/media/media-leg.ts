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
 * Voice activity from RFC 6464 audio levels (0 = 0 dBov, loudest; 127 = silence). A packet at
 * -50 dBov or louder counts as voiced; `activity` follows the share of voiced packets over the
 * last ~300 ms, and speaking turns on above 0.5 and off below 0.15 (hysteresis, so a word's pauses
 * do not flicker the indicator).
 */
const VOICED_LEVEL = 50;
const ACTIVITY_DECAY = 0.94;
const SPEAKING_ON = 0.5;
const SPEAKING_OFF = 0.15;
/** Loudness follows the level with a ~200 ms time constant; it ranks speakers for receive slots. */
const LOUDNESS_DECAY = 0.9;

/** One of the leg's outgoing audio streams (an m-line) and whose audio it carries. */
interface Slot {
  readonly sender: RTCRtpSender;
  source: MediaLeg | null;
  /** The leg whose packets this slot last sent, and when that packet had arrived. */
  lastSource: MediaLeg | null;
  lastOutAt: number;
}

/** A place this leg's incoming audio goes: one slot of one leg. */
interface Output {
  readonly target: MediaLeg;
  readonly slot: number;
}

/**
 * One client's audio connection to the relay: a werift peer connection that receives the
 * client's Opus RTP and sends other legs' audio back on its slots, unchanged but for the header.
 * Slot 0 is the client's sendrecv m-line; each further slot is one more stream the client hears
 * at once (a conference). Made by `MediaRelay.createLeg`.
 */
export class MediaLeg extends TypedEmitter<{ stateChange: [MediaLegState]; speaking: [boolean]; closed: [] }> {
  readonly id: string;
  readonly #counters: MediaLegCounters = { packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0, lastPacketAt: 0 };
  /** Live view of this leg's counters (the same object every time; copy it to keep a snapshot). */
  readonly counters: Readonly<MediaLegCounters> = this.#counters;
  readonly #pc: RTCPeerConnection;
  readonly #slots: Slot[];
  readonly #totals: ForwardTotals;
  readonly #logger: Logger;
  readonly #connectTimer: NodeJS.Timeout;
  readonly #unsubscribes: (() => void)[] = [];
  #state: MediaLegState = "connecting";
  /** Where this leg's incoming audio goes. */
  #outputs: readonly Output[] = [];
  /** The negotiated id of the audio level header extension, or null when the client sends none. */
  #audioLevelId: number | null = null;
  #activity = 0;
  #loudness = 0;
  #speaking = false;

  /** @internal Legs are made by `MediaRelay.createLeg`, which negotiates the peer connection. */
  constructor(
    id: string,
    pc: RTCPeerConnection,
    senders: readonly RTCRtpSender[],
    totals: ForwardTotals,
    logger: Logger,
    connectTimeoutMs: number,
  ) {
    super(logger);
    this.id = id;
    this.#pc = pc;
    this.#slots = senders.map((sender) => ({ sender, source: null, lastSource: null, lastOutAt: 0 }));
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

  /** How many streams this leg's client can hear at once (its offer's audio m-lines). */
  get slotCount(): number {
    return this.#slots.length;
  }

  /** The leg each slot currently carries (null: silent). */
  get slotSources(): (MediaLeg | null)[] {
    return this.#slots.map((slot) => slot.source);
  }

  /** True while the client's audio level says it is talking (needs the audio level extension). */
  get speaking(): boolean {
    return this.#speaking;
  }

  /** Smoothed loudness, 0 (silence or no audio level extension) to 127 (0 dBov): ranks speakers. */
  get loudness(): number {
    return this.#loudness;
  }

  /** @internal The relay tells the leg which header extension id carries the audio level. */
  setAudioLevelExtension(id: number | null): void {
    this.#audioLevelId = id;
  }

  /**
   * Makes slot `slot` of this leg carry `source`'s audio (null: nothing), replacing what it
   * carried. Closed sources are ignored; a source that closes later leaves the slot silent.
   * A leg may be its own source (an echo).
   */
  route(slot: number, source: MediaLeg | null): void {
    if (this.#state === "closed") return;
    const entry = this.#slots[slot];
    if (!entry) throw new RangeError(`leg ${this.id} has no slot ${slot}`);
    const next = source && source.#state !== "closed" ? source : null;
    if (entry.source === next) return;
    if (entry.source) {
      entry.source.#outputs = entry.source.#outputs.filter((o) => o.target !== this || o.slot !== slot);
    }
    entry.source = next;
    if (next) next.#outputs = [...next.#outputs, { target: this, slot }];
  }

  /** Empties every slot of this leg. */
  clearRoutes(): void {
    for (let slot = 0; slot < this.#slots.length; slot++) this.route(slot, null);
  }

  /**
   * Sends this leg's audio to slot 0 of each of `targets`, and nowhere else (`[]`: nowhere); the
   * 1:1 case of `route`.
   */
  forwardTo(targets: readonly MediaLeg[]): void {
    if (this.#state === "closed") return;
    for (const { target, slot } of [...this.#outputs]) target.route(slot, null);
    for (const target of new Set(targets)) target.route(0, this);
  }

  /** Closes the peer connection and frees its port. Idempotent; emits "closed" once. */
  close(): void {
    if (this.#state === "closed") return;
    clearTimeout(this.#connectTimer);
    for (const unsubscribe of this.#unsubscribes) unsubscribe();
    this.#unsubscribes.length = 0;
    this.forwardTo([]);
    this.clearRoutes();
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

  /** Hot path, once per packet from the client: count, measure the level, hand it to every output. */
  readonly #onRtp = (rtp: RtpPacket): void => {
    const counters = this.#counters;
    counters.packetsIn++;
    counters.bytesIn += rtp.payload.length;
    counters.lastPacketAt = Date.now();
    if (this.#audioLevelId !== null) this.#measure(rtp);
    const outputs = this.#outputs;
    for (let i = 0; i < outputs.length; i++) {
      const output = outputs[i]!;
      output.target.#send(output.slot, this, rtp);
    }
  };

  #measure(rtp: RtpPacket): void {
    const extensions = rtp.header.extensions;
    for (let i = 0; i < extensions.length; i++) {
      const extension = extensions[i]!;
      if (extension.id !== this.#audioLevelId || extension.payload.length < 1) continue;
      const level = extension.payload[0]! & 0x7f;
      this.#loudness = this.#loudness * LOUDNESS_DECAY + (127 - level) * (1 - LOUDNESS_DECAY);
      this.#activity = this.#activity * ACTIVITY_DECAY + (level <= VOICED_LEVEL ? 1 - ACTIVITY_DECAY : 0);
      const speaking = this.#speaking ? this.#activity > SPEAKING_OFF : this.#activity > SPEAKING_ON;
      if (speaking !== this.#speaking) {
        this.#speaking = speaking;
        this.emit("speaking", speaking);
      }
      return;
    }
  }

  /** Hot path, once per packet and output: no await, no logging. */
  #send(slotIndex: number, source: MediaLeg, rtp: RtpPacket): void {
    if (this.#state !== "connected") return;
    const slot = this.#slots[slotIndex]!;
    if (slot.lastSource !== source) this.#continueFrom(slot, source, rtp);
    // werift quirk: sendRtp rewrites the packet's header in place (SSRC, payload type, sequence
    // number and timestamp offsets) and keeps it for retransmission, so each output needs its own
    // packet; clone() copies the header and shares the payload. The source client's header
    // extensions (its own ids) are not passed on.
    const out = rtp.clone();
    out.header.extensions = [];
    slot.sender.sendRtp(out).catch(ignoreSendError);
    const bytes = rtp.payload.length;
    this.#counters.packetsOut++;
    this.#counters.bytesOut += bytes;
    this.#totals.packetsForwarded++;
    this.#totals.bytesForwarded += bytes;
    slot.lastOutAt = source.#counters.lastPacketAt;
  }

  /**
   * A new source brings its own random sequence numbers and timestamps. Offset them so the slot's
   * outgoing stream goes on from its last packet, with the timestamp advanced by the real gap, and
   * the client's jitter buffer sees a pause rather than a jump. Runs once per switch.
   * werift quirk: `replaceRTP(header, true)` adds its +1 to the 32-bit timestamp offset with a
   * 16-bit add (truncating it), so this passes a header one packet back with discontinuity off.
   * Before the first packet it does nothing and the first source's numbers pass through.
   */
  #continueFrom(slot: Slot, source: MediaLeg, rtp: RtpPacket): void {
    const gapMs = source.#counters.lastPacketAt - slot.lastOutAt;
    const ticks = Math.max(OPUS_FRAME_TICKS, Math.round(gapMs * OPUS_TICKS_PER_MS));
    slot.sender.replaceRTP({
      sequenceNumber: (rtp.header.sequenceNumber - 1) & 0xffff,
      timestamp: (rtp.header.timestamp - ticks) >>> 0,
    });
    slot.lastSource = source;
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
