import {
  compactNtp,
  type MediaStreamTrack,
  ntpTime,
  packetIndex,
  type ReceivedStream,
  ReplayVerdict,
  type RTCPeerConnection,
  type RTCRtpSender,
  RtcpReceiverInfo,
  RtcpRrPacket,
  RtcpSenderInfo,
  RtcpSrPacket,
  RtpHeader,
  RtpPacket,
  receivedStream,
  receiverReportState,
  senderReportState,
  timestampSeconds,
} from "@parley/rtc";
import type { Logger } from "../logging/logger.js";
import { TypedEmitter } from "../util/typed-emitter.js";
import { emptyInboundRtp, FastRtpPath, type InboundRtp } from "./fast-rtp.js";
import type { MediaDrops } from "./media-drops.js";
import { canTransition, type MediaLegState } from "./media-leg-state.js";
import { declaredSsrcs } from "./sdp-lines.js";
import { SocketGuard } from "./socket-guard.js";

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
 * Quality of a leg (null until measured): loss and interarrival jitter of the audio the relay
 * receives from the client (RFC 3550 A.3 and A.8, counted by the leg on either data plane), round
 * trip from the client's receiver reports on the relay's sender reports (werift's RTCP).
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
/** Sequence numbers per rollover-counter step (RFC 3711 packet index = ROC * 2^16 + SEQ). */
const SEQ_MODULO = 0x10000;

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

/**
 * One of the leg's outgoing audio streams (an m-line) and whose audio it carries. The slot keeps
 * its own numbering: a packet's outgoing SRTP index (ROC * 2^16 + sequence number) is its source
 * index plus `indexOffset`, and its timestamp is offset by `timestampOffset`; both offsets change
 * only when the slot's source changes (see MediaLeg.#continueFrom).
 */
interface Slot {
  readonly sender: RTCRtpSender;
  /** The SSRC and Opus payload type this slot sends with (from the answer), known once connected. */
  ssrc: number;
  payloadType: number;
  source: MediaLeg | null;
  /** The leg and SSRC whose packets this slot last sent, and when that packet had arrived. */
  lastSource: MediaLeg | null;
  lastSsrc: number;
  lastOutAt: number;
  indexOffset: number;
  timestampOffset: number;
  /** The highest outgoing index sent (-1 before the first packet) and that packet's timestamp. */
  lastOutIndex: number;
  lastOutTimestamp: number;
  /** When the fast path last took the (NTP, RTP) time pair for the slot's sender reports (ms). */
  reportedAt: number;
  /** When the slot's next RTCP sender report is due on the fast data plane (ms). */
  nextReportAt: number;
}

/** How often (ms) the fast path refreshes a slot's report time pair: werift's NTP clock is costly. */
const REPORT_CLOCK_MS = 200;
/**
 * RFC 3550 6.2: RTCP at most every 5 s on average (randomised between 0.5 and 1.5 times the
 * interval, so legs do not synchronise); the reports are checked for once a second.
 */
const REPORT_INTERVAL_MS = 5000;
const REPORT_CHECK_MS = 1000;

/** RFC 3550 reception statistics of the client's stream (its latest SSRC). */
interface Reception {
  ssrc: number;
  /** Extended sequence numbers: the first and the highest received. */
  base: number;
  max: number;
  received: number;
  /** The last packet's arrival (ms) and RTP timestamp, and the interarrival jitter in RTP ticks. */
  lastArrival: number;
  lastTimestamp: number;
  jitter: number;
  /** Expected and received packets at the last receiver report (RFC 3550 A.3 fraction lost). */
  expectedPrior: number;
  receivedPrior: number;
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
 *
 * Data plane: once connected, RTP goes through `FastRtpPath` (the client's SRTP taken off
 * werift's socket, decrypted once, re-encrypted per output with the slot's own numbering). A leg
 * whose connection the fast path cannot take (an unbundled offer, an SRTP profile it does not
 * support) or a relay made with `fastDataPlane: false` stays on werift's RTP stack (receive via
 * the track, send via the slot's RTCRtpSender); the two kinds of leg forward to each other.
 */
export class MediaLeg extends TypedEmitter<{ stateChange: [MediaLegState]; speaking: [boolean]; closed: [] }> {
  readonly id: string;
  readonly #counters: MediaLegCounters = { packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0, lastPacketAt: 0 };
  /** Live view of this leg's counters (the same object every time; copy it to keep a snapshot). */
  readonly counters: Readonly<MediaLegCounters> = this.#counters;
  readonly #reception: Reception = {
    ssrc: -1,
    base: 0,
    max: 0,
    received: 0,
    lastArrival: 0,
    lastTimestamp: 0,
    jitter: 0,
    expectedPrior: 0,
    receivedPrior: 0,
  };
  readonly #pc: RTCPeerConnection;
  readonly #slots: Slot[];
  readonly #totals: ForwardTotals;
  readonly #drops: MediaDrops;
  readonly #logger: Logger;
  readonly #connectTimer: NodeJS.Timeout;
  /** Sends the fast-path slots' RTCP sender reports (RFC 3550 pacing), once the fast path runs. */
  #reportTimer: NodeJS.Timeout | undefined;
  readonly #unsubscribes: (() => void)[] = [];
  readonly #useFastPath: boolean;
  #state: MediaLegState = "connecting";
  /** Filters the leg's UDP socket from the answer on (null before, or if werift's sockets were not found). */
  #guard: SocketGuard | null = null;
  /** The fast data plane, once connected (null: werift's RTP path, before or instead). */
  #fast: FastRtpPath | null = null;
  /** Rollover counters and replay windows of the client's SSRCs (both data planes share them). */
  readonly #streams = new Map<number, ReceivedStream>();
  /** werift path only: the packet decoded into. */
  readonly #weriftInbound: InboundRtp = emptyInboundRtp();
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
    drops: MediaDrops,
    logger: Logger,
    connectTimeoutMs: number,
    useFastPath = true,
  ) {
    super(logger);
    this.id = id;
    this.#pc = pc;
    this.#useFastPath = useFastPath;
    this.#slots = senders.map((sender) => ({
      sender,
      ssrc: sender.ssrc,
      payloadType: 0,
      source: null,
      lastSource: null,
      lastSsrc: 0,
      lastOutAt: 0,
      reportedAt: 0,
      nextReportAt: 0,
      indexOffset: 0,
      timestampOffset: 0,
      lastOutIndex: -1,
      lastOutTimestamp: 0,
    }));
    this.#totals = totals;
    this.#drops = drops;
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
    this.#fast?.setAudioLevelExtension(id);
  }

  /**
   * @internal The relay calls this once the answer is made (the leg's socket is bound): from then
   * on RTP and RTCP are taken only from the selected ICE pair, and replays are dropped before
   * werift decrypts them (see SocketGuard). A leg whose socket cannot be guarded fails and closes
   * (false).
   */
  guardSocket(): boolean {
    if (this.#guard) return true;
    if (this.#state === "closed") return false;
    const guard = SocketGuard.install(this.#pc, this.#drops, this.#streams);
    if (typeof guard === "string") {
      this.#fail(`its socket cannot be guarded: ${guard}`);
      return false;
    }
    this.#guard = guard;
    return true;
  }

  /** Which data plane carries this leg's RTP: "fast" once connected, else "werift". */
  get dataPlane(): "fast" | "werift" {
    return this.#fast ? "fast" : "werift";
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
    clearInterval(this.#reportTimer);
    for (const unsubscribe of this.#unsubscribes) unsubscribe();
    this.#unsubscribes.length = 0;
    this.#fast?.detach();
    this.forwardTo([]);
    this.clearRoutes();
    this.#transitionTo("closed");
    this.#pc.close().catch((error: unknown) => this.#logger.warn({ err: error }, "closing the peer connection failed"));
    this.emit("closed");
  }

  // ---- Quality (operator console and metrics; not on the packet path) ----------------------------

  /**
   * This leg's quality: loss and jitter of what the relay receives, from the leg's own reception
   * statistics (werift's receiver does not see RTP on the fast data plane), and the round trip
   * from werift's `remote-inbound-rtp` (the client's receiver reports on the relay's sender
   * reports). Costs one getStats(); meant for once-a-second views, never per packet.
   */
  async quality(): Promise<MediaLegQuality> {
    const quality: MediaLegQuality = { packetsLost: null, jitterMs: null, roundTripMs: null };
    const r = this.#reception;
    if (r.ssrc !== -1) {
      quality.packetsLost = Math.max(0, r.max - r.base + 1 - r.received);
      quality.jitterMs = r.jitter / OPUS_TICKS_PER_MS;
    }
    if (this.#state === "closed") return quality;
    try {
      const report = await this.#pc.getStats();
      for (const stats of report.values()) {
        const s = stats as { type: string; roundTripTime?: number };
        if (s.type === "remote-inbound-rtp" && typeof s.roundTripTime === "number") {
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
    this.#unsubscribes.push(track.onReceiveRtp.subscribe(this.#onWeriftRtp).unSubscribe);
  }

  /**
   * werift path (before the fast path takes over, or instead of it): decode its RtpPacket, which
   * werift decrypted and authenticated. The socket guard dropped replays before werift saw them;
   * the window is checked again here for the first packets of an SSRC the guard did not know yet.
   */
  readonly #onWeriftRtp = (rtp: RtpPacket): void => {
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
    const inbound = this.#weriftInbound;
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
    this.#onRtp(inbound);
  };

  /** Hot path, once per packet from the client: count, measure the level, hand it to every output. */
  readonly #onRtp = (rtp: InboundRtp): void => {
    const counters = this.#counters;
    counters.packetsIn++;
    counters.bytesIn += rtp.payload.length;
    counters.lastPacketAt = Date.now();
    const previousTimestamp = this.#reception.ssrc === rtp.ssrc ? this.#reception.lastTimestamp : rtp.timestamp;
    this.#receptionOf(rtp);
    if (rtp.audioLevel >= 0)
      this.#measure(rtp.audioLevel, ((rtp.timestamp - previousTimestamp) | 0) / OPUS_FRAME_TICKS);
    const outputs = this.#outputs;
    for (let i = 0; i < outputs.length; i++) {
      const output = outputs[i]!;
      output.target.#send(output.slot, this, rtp);
    }
  };

  /** RFC 3550 A.3 (expected and lost from extended sequence numbers) and A.8 (jitter), per packet. */
  #receptionOf(rtp: InboundRtp): void {
    const r = this.#reception;
    const extended = rtp.roc * SEQ_MODULO + rtp.sequenceNumber;
    const arrival = performance.now();
    if (rtp.ssrc !== r.ssrc) {
      // A new source (the client restarted its stream): its statistics start over.
      r.ssrc = rtp.ssrc;
      r.base = extended;
      r.max = extended;
      r.received = 1;
      r.jitter = 0;
      r.expectedPrior = 0;
      r.receivedPrior = 0;
    } else {
      r.received++;
      if (extended > r.max) r.max = extended;
      // D(i-1, i) in RTP ticks; the timestamp difference as a signed 32-bit number survives wraps.
      const d = (arrival - r.lastArrival) * OPUS_TICKS_PER_MS - ((rtp.timestamp - r.lastTimestamp) | 0);
      r.jitter += (Math.abs(d) - r.jitter) / 16;
    }
    r.lastArrival = arrival;
    r.lastTimestamp = rtp.timestamp;
  }

  /**
   * One packet's level; `frames` is how many 20 ms frames its timestamp is past the previous
   * packet's. With DTX a silent client sends a packet every ~400 ms instead of every 20 ms: the
   * frames it skipped count as silence, so speaking ends and loudness falls as fast as without DTX.
   */
  #measure(level: number, frames: number): void {
    const skipped = Math.min(Math.round(frames) - 1, 1000);
    if (skipped > 0) {
      this.#loudness *= LOUDNESS_DECAY ** skipped;
      this.#activity *= ACTIVITY_DECAY ** skipped;
    }
    this.#loudness = this.#loudness * LOUDNESS_DECAY + (127 - level) * (1 - LOUDNESS_DECAY);
    this.#activity = this.#activity * ACTIVITY_DECAY + (level <= VOICED_LEVEL ? 1 - ACTIVITY_DECAY : 0);
    const speaking = this.#speaking ? this.#activity > SPEAKING_OFF : this.#activity > SPEAKING_ON;
    if (speaking !== this.#speaking) {
      this.#speaking = speaking;
      this.emit("speaking", speaking);
    }
  }

  /**
   * Hot path, once per packet and output: no await, no logging. The packet goes out with the
   * slot's SSRC and payload type, its sequence number and timestamp moved by the slot's offsets,
   * and no header extensions (the source client's ids mean nothing to this client).
   */
  #send(slotIndex: number, source: MediaLeg, rtp: InboundRtp): void {
    if (this.#state !== "connected") return;
    const slot = this.#slots[slotIndex]!;
    if (slot.lastSource !== source || slot.lastSsrc !== rtp.ssrc) this.#continueFrom(slot, source, rtp);
    const index = rtp.roc * SEQ_MODULO + rtp.sequenceNumber + slot.indexOffset;
    // A packet from before the slot's first one (reordered across a source switch): too late.
    if (index < 0) return;
    const timestamp = (rtp.timestamp + slot.timestampOffset) >>> 0;
    if (index > slot.lastOutIndex) {
      slot.lastOutIndex = index;
      slot.lastOutTimestamp = timestamp;
    }
    const sequenceNumber = index % SEQ_MODULO;
    const fast = this.#fast;
    if (fast) {
      const header = Buffer.allocUnsafe(12);
      header[0] = 0x80;
      header[1] = (rtp.marker ? 0x80 : 0) | slot.payloadType;
      header.writeUInt16BE(sequenceNumber, 2);
      header.writeUInt32BE(timestamp, 4);
      header.writeUInt32BE(slot.ssrc, 8);
      fast.send(header, rtp.payload, (index - sequenceNumber) / SEQ_MODULO);
      this.#report(slot, timestamp, rtp.payload.length, source.#counters.lastPacketAt);
    } else {
      // werift's sender sets its SSRC and payload type, and adds its offsets (zero: replaceRTP is
      // never called) and the rollover counter itself; it keeps the packet for retransmission.
      const header = new RtpHeader({ sequenceNumber, timestamp, marker: rtp.marker, payloadType: slot.payloadType });
      slot.sender.sendRtp(new RtpPacket(header, rtp.payload)).catch(ignoreSendError);
    }
    const bytes = rtp.payload.length;
    this.#counters.packetsOut++;
    this.#counters.bytesOut += bytes;
    this.#totals.packetsForwarded++;
    this.#totals.bytesForwarded += bytes;
    slot.lastOutAt = source.#counters.lastPacketAt;
  }

  /**
   * Counts a fast-path packet for the slot's sender reports. On the fast data plane its RTP never
   * passes werift's sender: the leg keeps its counts and time pair current (see SenderReportState).
   */
  #report(slot: Slot, timestamp: number, bytes: number, now: number): void {
    const sender = senderReportState(slot.sender);
    sender.packetCount = (sender.packetCount + 1) >>> 0;
    sender.octetCount += bytes;
    if (now - slot.reportedAt < REPORT_CLOCK_MS) return;
    slot.reportedAt = now;
    sender.ntpTimestamp = ntpTime();
    sender.rtpTimestamp = timestamp;
  }

  /**
   * Sends the RTCP sender report of every fast-path slot that is due and has sent audio, and a
   * receiver report on the client's stream (see #sendReceiverReport).
   */
  #sendReports(): void {
    const now = Date.now();
    this.#sendReceiverReport();
    for (const slot of this.#slots) {
      const sender = senderReportState(slot.sender);
      if (sender.packetCount === 0 || now < slot.nextReportAt) continue;
      slot.nextReportAt = now + REPORT_INTERVAL_MS * (0.5 + Math.random());
      const report = new RtcpSrPacket({
        ssrc: sender.ssrc,
        senderInfo: new RtcpSenderInfo({
          ntpTimestamp: sender.ntpTimestamp,
          rtpTimestamp: sender.rtpTimestamp,
          packetCount: sender.packetCount,
          octetCount: sender.octetCount,
        }),
      });
      sender.lastSRtimestamp = compactNtp(sender.ntpTimestamp);
      sender.lastSentSRTimestamp = now / 1000;
      sender.dtlsTransport.sendRtcp([report]).catch(ignoreSendError);
    }
  }

  /**
   * The fast path's receiver report to the client about its audio: the reception statistics the
   * leg keeps (RFC 3550 A.3, A.8), the last sender report's time (for the client's round trip),
   * and as fraction lost the worst of what reaches the relay and what the listeners of this audio
   * report losing on their way from the relay (their receiver reports on the slots that carry it).
   * The client's Opus encoder sizes its in-band FEC by this fraction (libopus adds none at 0 %),
   * so the loss is where it counts: between the speaker and each listener, not just to the relay.
   */
  #sendReceiverReport(): void {
    const r = this.#reception;
    if (r.ssrc === -1) return;
    const transceiver = this.#pc.getTransceivers()[0];
    if (!transceiver) return;
    const receiver = receiverReportState(transceiver.receiver);
    const expected = r.max - r.base + 1;
    const expectedInterval = expected - r.expectedPrior;
    const lostInterval = expectedInterval - (r.received - r.receivedPrior);
    r.expectedPrior = expected;
    r.receivedPrior = r.received;
    let fraction = expectedInterval > 0 && lostInterval > 0 ? lostInterval / expectedInterval : 0;
    for (const { target, slot } of this.#outputs) {
      if (target.#state !== "connected") continue;
      const downstreamSender = target.#slots[slot]?.sender;
      const downstream = downstreamSender && senderReportState(downstreamSender).remoteFractionLost;
      if (typeof downstream === "number" && downstream > fraction) fraction = downstream;
    }
    let lsr = 0;
    let dlsr = 0;
    const lastSr = receiver.lastSRtimestamp[r.ssrc];
    if (lastSr) {
      lsr = lastSr;
      const delay = timestampSeconds() - (receiver.receiveLastSRTimestamp[r.ssrc] ?? 0);
      if (delay > 0 && delay < 65536) dlsr = Math.floor(delay * 65536);
    }
    const report = new RtcpRrPacket({
      ssrc: receiver.rtcpSsrc,
      reports: [
        new RtcpReceiverInfo({
          ssrc: r.ssrc,
          fractionLost: Math.min(255, Math.floor(fraction * 256)),
          packetsLost: Math.max(0, Math.min(0x7fffff, expected - r.received)),
          highestSequence: r.max >>> 0,
          jitter: Math.floor(r.jitter),
          lsr,
          dlsr,
        }),
      ],
    });
    const first = this.#slots[0]?.sender;
    if (first) senderReportState(first).dtlsTransport.sendRtcp([report]).catch(ignoreSendError);
  }

  /**
   * A new source (or a new SSRC from the same client) brings its own random sequence numbers and
   * timestamps. Offset them so the slot's outgoing stream goes on from its highest packet, with
   * the timestamp advanced by the real gap, and the client's jitter buffer sees a pause rather
   * than a jump. Runs once per switch. The slot's first source's numbers pass through, with the
   * rollover counter restarted at 0: the client's SRTP context starts counting wraps at its first
   * packet (RFC 3711 3.3.1), whatever the source had wrapped before.
   */
  #continueFrom(slot: Slot, source: MediaLeg, rtp: InboundRtp): void {
    const sourceIndex = rtp.roc * SEQ_MODULO + rtp.sequenceNumber;
    if (slot.lastOutIndex < 0) {
      slot.indexOffset = -rtp.roc * SEQ_MODULO;
      slot.timestampOffset = 0;
    } else {
      const gapMs = source.#counters.lastPacketAt - slot.lastOutAt;
      const ticks = Math.max(OPUS_FRAME_TICKS, Math.round(gapMs * OPUS_TICKS_PER_MS));
      slot.indexOffset = slot.lastOutIndex + 1 - sourceIndex;
      slot.timestampOffset = (slot.lastOutTimestamp + ticks - rtp.timestamp) >>> 0;
    }
    slot.lastSource = source;
    slot.lastSsrc = rtp.ssrc;
  }

  /**
   * Connected: learn each slot's negotiated payload type, and move RTP to the fast data plane
   * when the connection allows it (else it stays on werift's path, which still works).
   */
  #onConnected(): void {
    for (const slot of this.#slots) {
      slot.ssrc = slot.sender.ssrc;
      slot.payloadType = slot.sender.codec?.payloadType ?? 111;
    }
    if (!this.#useFastPath) return;
    const guard = this.#guard;
    const ssrcs = declaredSsrcs(this.#pc.remoteDescription?.sdp ?? "");
    const fast = guard
      ? FastRtpPath.attach(this.#pc, guard, this.#streams, ssrcs, this.#drops, this.#onRtp)
      : "its socket is not guarded";
    if (typeof fast === "string") {
      this.#logger.warn({ reason: fast }, "media leg stays on werift's RTP path");
      return;
    }
    fast.setAudioLevelExtension(this.#audioLevelId);
    this.#fast = fast;
    // werift's receiver no longer sees RTP: its reports would be stale; the leg sends its own.
    const receiver = this.#pc.getTransceivers()[0]?.receiver;
    if (receiver) receiverReportState(receiver).rtcpCancel?.abort();
    this.#reportTimer = setInterval(() => this.#sendReports(), REPORT_CHECK_MS);
    this.#reportTimer.unref();
    this.#logger.info({ srtpProfile: fast.profile }, "media leg on the fast data plane");
  }

  #onConnectionState(state: string): void {
    switch (state) {
      case "connected":
        clearTimeout(this.#connectTimer);
        if (this.#state === "connecting") this.#onConnected();
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
