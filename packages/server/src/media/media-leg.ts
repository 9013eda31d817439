import {
  declaredSsrcs,
  type MediaStreamTrack,
  type ReceivedStream,
  ReceptionStats,
  ReportPacing,
  type RTCPeerConnection,
  type RTCRtpSender,
  RTP_FIXED_HEADER_BYTES,
  type RtcpReport,
  RtpHeader,
  RtpPacket,
  receiverReport,
  SenderReports,
  sendRtcp,
  stopWeriftReceiverReports,
  writeRtpHeader,
} from "@parley/rtc";
import type { Logger } from "../logging/logger.js";
import { TypedEmitter } from "../util/typed-emitter.js";
import type { DataPlane } from "./data-plane.js";
import { emptyInboundRtp, FastRtpPath, type InboundRtp } from "./fast-rtp.js";
import type { MediaDrops } from "./media-drops.js";
import type { ForwardTotals, MediaLegCounters, MediaLegQuality } from "./media-leg-counters.js";
import { canTransition, type MediaLegState } from "./media-leg-state.js";
import type { NativeMedia } from "./native-media.js";
import type { NativeRtpPath } from "./native-rtp-path.js";
import { ReportSchedule } from "./report-schedule.js";
import { SEQ_MODULO } from "./rtp-clock.js";
import { SlotContinuity } from "./slot-continuity.js";
import { SocketGuard } from "./socket-guard.js";
import { VoiceActivity } from "./voice-activity.js";
import { WeriftRtpDecoder } from "./werift-rtp.js";

export type { ForwardTotals, MediaLegCounters, MediaLegQuality } from "./media-leg-counters.js";
export { MEDIA_LEG_STATES, type MediaLegState } from "./media-leg-state.js";

/**
 * @internal The data plane a leg asks for once connected and, for the native plane, the relay's
 * native media (null where it cannot be loaded: the leg then runs on the JS plane) and the leg's
 * placement group (a call: its legs share a media thread).
 */
export interface LegPlaneChoice {
  kind: DataPlane;
  native: NativeMedia | null;
  group: string | undefined;
  /** The relay's one timer for its legs' RTCP report checks (a leg's own when not given). */
  reports?: ReportSchedule;
}

/** Keys that tell legs apart to the native plane's slot numbering (NativeLeg.sendFrom). */
let nextSourceKey = 1;

/** werift's sendRtp settles when the packet is handed to the socket; send failures are dropped packets. */
function ignoreSendError(): void {}

/**
 * One of the leg's outgoing audio streams (an m-line) and whose audio it carries. The slot keeps
 * its own numbering (see SlotContinuity).
 */
interface Slot {
  readonly sender: RTCRtpSender;
  /** The SSRC and Opus payload type this slot sends with (from the answer), known once connected. */
  ssrc: number;
  payloadType: number;
  source: MediaLeg | null;
  readonly continuity: SlotContinuity;
  /** Its RTCP sender reports on the relay's own data planes (JS and native). */
  readonly reports: SenderReports;
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
 * Data plane (see data-plane.ts): once connected, RTP goes through the native plane
 * (`NativeRtpPath`: the addon's media thread reads the socket, decrypts, routes to native targets
 * and encrypts per output, no JavaScript per packet) or the JS fast plane (`FastRtpPath`: the
 * client's SRTP taken off werift's socket, decrypted once, re-encrypted per output with the
 * slot's own numbering), whichever the relay asks for. A leg whose connection neither can take
 * (an unbundled offer, an SRTP profile they do not support) or a relay on the werift plane stays
 * on werift's RTP stack (receive via the track, send via the slot's RTCRtpSender). Legs on
 * different planes forward to each other: a native source hands its RTP to JavaScript only while
 * one of its outputs is not native (setForwardToJs), and a native target takes RTP from a
 * JavaScript source with `sendFrom`, numbered by the native slot's own continuity.
 */
export class MediaLeg extends TypedEmitter<{ stateChange: [MediaLegState]; speaking: [boolean]; closed: [] }> {
  readonly id: string;
  readonly #counters: MediaLegCounters = { packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0, lastPacketAt: 0 };
  readonly #reception = new ReceptionStats();
  /** When the leg's own RTCP reports go out (fast and native planes; see #sendReports). */
  readonly #reportPacing = new ReportPacing();
  readonly #voice = new VoiceActivity();
  readonly #pc: RTCPeerConnection;
  readonly #slots: Slot[];
  readonly #totals: ForwardTotals;
  readonly #drops: MediaDrops;
  readonly #logger: Logger;
  readonly #connectTimer: NodeJS.Timeout;
  /** Stops the leg's RTCP report checks (on the relay's report schedule), once its own reports run. */
  #stopReports: (() => void) | undefined;
  readonly #unsubscribes: (() => void)[] = [];
  readonly #plane: LegPlaneChoice;
  #state: MediaLegState = "connecting";
  /** Filters the leg's UDP socket from the answer on (null before, or if werift's sockets were not found). */
  #guard: SocketGuard | null = null;
  /** The JS fast data plane, once connected (null: another plane, or before). */
  #fast: FastRtpPath | null = null;
  /** The native data plane, once connected (null: another plane, or before, or after it let go). */
  #native: NativeRtpPath | null = null;
  /** This leg as a source to native targets' slots (NativeLeg.sendFrom). */
  readonly #sourceKey = nextSourceKey++;
  /** The packet RTP from the native plane is decoded into, for outputs on other planes. */
  readonly #nativeInbound: InboundRtp = emptyInboundRtp();
  /** Rollover counters and replay windows of the client's SSRCs (both data planes share them). */
  readonly #streams = new Map<number, ReceivedStream>();
  /** werift's data plane: decodes what werift received. */
  readonly #weriftRtp: WeriftRtpDecoder;
  /** Where this leg's incoming audio goes. */
  #outputs: readonly Output[] = [];
  /** The negotiated id of the audio level header extension, or null when the client sends none. */
  #audioLevelId: number | null = null;

  /** @internal Legs are made by `MediaRelay.createLeg`, which negotiates the peer connection. */
  constructor(
    id: string,
    pc: RTCPeerConnection,
    senders: readonly RTCRtpSender[],
    totals: ForwardTotals,
    drops: MediaDrops,
    logger: Logger,
    connectTimeoutMs: number,
    plane: LegPlaneChoice = { kind: "js", native: null, group: undefined },
  ) {
    super(logger);
    this.id = id;
    this.#pc = pc;
    this.#plane = plane;
    this.#slots = senders.map((sender) => ({
      sender,
      ssrc: sender.ssrc,
      payloadType: 0,
      source: null,
      continuity: new SlotContinuity(),
      reports: new SenderReports(sender),
    }));
    this.#totals = totals;
    this.#drops = drops;
    this.#logger = logger.child({ leg: id });
    this.#weriftRtp = new WeriftRtpDecoder(this.#streams, drops, this.#onRtp);
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

  /**
   * Live view of this leg's counters (the same object every time; copy it to keep a snapshot).
   * On the native plane it is brought up to the media thread's counts when read.
   */
  get counters(): Readonly<MediaLegCounters> {
    this.#native?.readings.counters(this.#counters);
    return this.#counters;
  }

  /**
   * True while the client's audio level says it is talking (needs the audio level extension). On
   * the native plane: as the relay's last poll of the media thread saw it (and the events said).
   */
  get speaking(): boolean {
    return this.#native ? this.#native.speaking : this.#voice.speaking;
  }

  /** Smoothed loudness, 0 (silence or no audio level extension) to 127 (0 dBov): ranks speakers. */
  get loudness(): number {
    return this.#native ? this.#native.readings.loudness : this.#voice.loudness;
  }

  /** @internal The relay tells the leg which header extension id carries the audio level. */
  setAudioLevelExtension(id: number | null): void {
    this.#audioLevelId = id;
    this.#weriftRtp.setAudioLevelExtension(id);
    this.#fast?.setAudioLevelExtension(id);
    this.#native?.setAudioLevelExtension(id);
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

  /** Which data plane carries this leg's RTP: "native" or "js" once connected there, else "werift". */
  get dataPlane(): DataPlane {
    return this.#native ? "native" : this.#fast ? "js" : "werift";
  }

  /** The media thread a native leg runs on (undefined on the other planes). */
  get mediaThread(): number | undefined {
    return this.#native?.thread;
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
    const previous = entry.source;
    entry.source = next;
    if (next) next.#outputs = [...next.#outputs, { target: this, slot }];
    this.#routeNative(slot);
    if (previous) previous.#forwardNativeToJs();
    if (next) next.#forwardNativeToJs();
  }

  /** Slot `slot` on the native plane: carried natively when both this leg and its source are native. */
  #routeNative(slot: number): void {
    const native = this.#native;
    if (!native) return;
    const source = this.#slots[slot]?.source ?? null;
    native.route(slot, source ? source.#native : null);
  }

  /**
   * A native leg hands its RTP to JavaScript only while a connected output is on another plane
   * (where `#send` takes it); its native outputs get it from the media thread.
   */
  #forwardNativeToJs(): void {
    const native = this.#native;
    if (!native) return;
    native.setForwardToJs(this.#outputs.some((o) => !o.target.#native && o.target.#state === "connected"));
  }

  /** This leg's plane changed (connected, or left the native plane): its routes and its neighbours' follow. */
  #planeChanged(): void {
    for (let slot = 0; slot < this.#slots.length; slot++) {
      this.#routeNative(slot);
      const source = this.#slots[slot]!.source;
      if (source) source.#forwardNativeToJs();
    }
    this.#forwardNativeToJs();
    for (const { target, slot } of this.#outputs) target.#routeNative(slot);
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
    this.#stopReports?.();
    for (const unsubscribe of this.#unsubscribes) unsubscribe();
    this.#unsubscribes.length = 0;
    this.#fast?.detach();
    this.forwardTo([]);
    this.clearRoutes();
    // After the routes: no native leg routes from this one when it leaves the plane.
    this.#native?.detach();
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
    this.#native?.readings.reception(r);
    if (r.ssrc !== -1) {
      quality.packetsLost = r.packetsLost;
      quality.jitterMs = r.jitterMs;
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
    this.#unsubscribes.push(track.onReceiveRtp.subscribe(this.#weriftRtp.onRtp).unSubscribe);
  }

  /** Hot path, once per packet from the client: count, measure the level, hand it to every output. */
  readonly #onRtp = (rtp: InboundRtp): void => {
    const counters = this.#counters;
    counters.packetsIn++;
    counters.bytesIn += rtp.payload.length;
    counters.lastPacketAt = Date.now();
    const timestampAdvance = this.#reception.count(rtp.ssrc, rtp.roc, rtp.sequenceNumber, rtp.timestamp);
    if (rtp.audioLevel >= 0 && this.#voice.hear(rtp.audioLevel, timestampAdvance)) {
      this.emit("speaking", this.#voice.speaking);
    }
    const outputs = this.#outputs;
    for (let i = 0; i < outputs.length; i++) {
      const output = outputs[i]!;
      output.target.#send(output.slot, this, rtp);
    }
  };

  /**
   * Hot path, once per packet the native plane hands over (only while an output is on another
   * plane: the media thread counted it, measured its level and sent it to the native outputs).
   */
  readonly #onNativeRtp = (
    ssrc: number,
    roc: number,
    seq: number,
    timestamp: number,
    marker: boolean,
    payload: Buffer,
    audioLevel: number,
  ): void => {
    const rtp = this.#nativeInbound;
    rtp.ssrc = ssrc;
    rtp.roc = roc;
    rtp.sequenceNumber = seq;
    rtp.timestamp = timestamp;
    rtp.marker = marker;
    rtp.payload = payload;
    rtp.audioLevel = audioLevel;
    this.#counters.lastPacketAt = Date.now();
    const outputs = this.#outputs;
    for (let i = 0; i < outputs.length; i++) {
      const output = outputs[i]!;
      if (!output.target.#native) output.target.#send(output.slot, this, rtp);
    }
  };

  /**
   * Hot path, once per packet and output: no await, no logging. The packet goes out with the
   * slot's SSRC and payload type, its sequence number and timestamp moved by the slot's offsets,
   * and no header extensions (the source client's ids mean nothing to this client). A native
   * leg numbers, counts and sends it on its media thread's slot (from a source on another plane).
   */
  #send(slotIndex: number, source: MediaLeg, rtp: InboundRtp): void {
    if (this.#state !== "connected") return;
    const native = this.#native;
    if (native) {
      native.leg.sendFrom(
        slotIndex,
        source.#sourceKey,
        rtp.ssrc,
        rtp.roc,
        rtp.sequenceNumber,
        rtp.timestamp,
        rtp.marker,
        rtp.payload,
        source.#counters.lastPacketAt,
      );
      return;
    }
    const slot = this.#slots[slotIndex]!;
    const continuity = slot.continuity;
    const arrivedAt = source.#counters.lastPacketAt;
    // A packet from before the slot's first one (reordered across a source switch): too late.
    if (!continuity.next(source, arrivedAt, rtp)) return;
    const index = continuity.index;
    const timestamp = continuity.timestamp;
    const sequenceNumber = index % SEQ_MODULO;
    const fast = this.#fast;
    if (fast) {
      const header = writeRtpHeader(
        Buffer.allocUnsafe(RTP_FIXED_HEADER_BYTES),
        rtp.marker,
        slot.payloadType,
        sequenceNumber,
        timestamp,
        slot.ssrc,
      );
      fast.send(header, rtp.payload, (index - sequenceNumber) / SEQ_MODULO);
      slot.reports.count(timestamp, rtp.payload.length, arrivedAt);
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
    continuity.sent(arrivedAt);
  }

  /**
   * Checked once a second; when the leg's reports are due (ReportPacing: every ~5 s, sooner when
   * the loss to report rises), sends the RTCP sender report of every slot that has sent audio and
   * a receiver report on the client's stream (see #lossToReport), in one compound packet: the
   * slots share the leg's one bundled transport, so one SRTCP protection and one datagram.
   */
  #sendReports(): void {
    const now = Date.now();
    const native = this.#native;
    native?.readings.reception(this.#reception);
    const loss = this.#lossToReport();
    if (!this.#reportPacing.due(now, loss)) return;
    if (native) for (let i = 0; i < this.#slots.length; i++) native.readings.slotReport(i, this.#slots[i]!.reports);
    const packets: RtcpReport[] = [];
    for (const slot of this.#slots) {
      const report = slot.reports.report(now);
      if (report) packets.push(report);
    }
    const receiver = this.#receiverReport(loss);
    if (receiver) packets.push(receiver);
    const via = this.#slots[0]?.sender;
    if (!via || packets.length === 0) return;
    sendRtcp(via, packets);
    this.#reportPacing.sent(now, loss);
  }

  /**
   * The fraction lost the receiver report to the client about its audio carries: the worst of
   * what reaches the relay since the last report and what the listeners of this audio report
   * losing on their way from the relay (their receiver reports on the slots that carry it). The
   * client's Opus encoder sizes its in-band FEC by this fraction (libopus adds none at 0 %), so
   * the loss is where it counts: between the speaker and each listener, not just to the relay.
   */
  #lossToReport(): number {
    const r = this.#reception;
    let fraction = r.ssrc === -1 ? 0 : r.fractionLostSoFar();
    for (const { target, slot } of this.#outputs) {
      if (target.#state !== "connected") continue;
      const downstream = target.#slots[slot]?.reports.remoteFractionLost;
      if (typeof downstream === "number" && downstream > fraction) fraction = downstream;
    }
    return fraction;
  }

  /**
   * The receiver report to the client about its audio (null before any): the reception
   * statistics the leg keeps (RFC 3550 A.3, A.8), the last sender report's time (for the client's
   * round trip) and `loss` as fraction lost; starts the next loss interval.
   */
  #receiverReport(loss: number): RtcpReport | null {
    const r = this.#reception;
    if (r.ssrc === -1) return null;
    const transceiver = this.#pc.getTransceivers()[0];
    if (!transceiver) return null;
    r.fractionLostSinceLast();
    return receiverReport(transceiver.receiver, r, loss);
  }

  /**
   * Connected: learn each slot's negotiated payload type, and move RTP to the data plane the
   * relay asks for when the connection allows it: the native plane, else the JS fast plane, else
   * werift's RTP path (which still works).
   */
  #onConnected(): void {
    for (const slot of this.#slots) {
      slot.ssrc = slot.sender.ssrc;
      slot.payloadType = slot.sender.codec?.payloadType ?? 111;
    }
    const kind = this.#plane.kind;
    if (kind === "werift") return;
    const guard = this.#guard;
    if (!guard) {
      this.#logger.warn({ reason: "its socket is not guarded" }, "media leg stays on werift's RTP path");
      return;
    }
    const ssrcs = declaredSsrcs(this.#pc.remoteDescription?.sdp ?? "");
    if (kind === "native") {
      const native = this.#attachNative(guard, ssrcs);
      if (typeof native !== "string") {
        this.#native = native;
        this.#sendOwnReports();
        this.#logger.info({ srtpProfile: native.profile, thread: native.thread }, "media leg on the native data plane");
        return;
      }
      this.#logger.warn({ reason: native }, "media leg not on the native data plane: JS fast plane");
    }
    const fast = FastRtpPath.attach(this.#pc, guard, this.#streams, ssrcs, this.#drops, this.#onRtp);
    if (typeof fast === "string") {
      this.#logger.warn({ reason: fast }, "media leg stays on werift's RTP path");
      return;
    }
    fast.setAudioLevelExtension(this.#audioLevelId);
    this.#fast = fast;
    this.#sendOwnReports();
    this.#logger.info({ srtpProfile: fast.profile }, "media leg on the fast data plane");
  }

  /** The leg on the relay's native plane, or why not. */
  #attachNative(guard: SocketGuard, ssrcs: Iterable<number>): NativeRtpPath | string {
    const media = this.#plane.native;
    if (!media) return "the native data plane is not loaded";
    return media.attach(
      {
        pc: this.#pc,
        guard,
        ssrcs: [...ssrcs],
        audioLevelId: this.#audioLevelId,
        slots: this.#slots.map(({ ssrc, payloadType }) => ({ ssrc, payloadType })),
        counters: this.#counters,
        totals: this.#totals,
        drops: this.#drops,
        onRtp: this.#onNativeRtp,
        onSpeaking: (speaking) => this.emit("speaking", speaking),
        onDetached: (path) => {
          if (this.#native !== path) return;
          // Its last counts stay: the JS side keeps them from here on.
          path.readings.counters(this.#counters);
          path.readings.reception(this.#reception);
          this.#native = null;
          this.#planeChanged();
        },
      },
      this.#plane.group,
    );
  }

  /**
   * The leg's RTP no longer passes werift's sender and receiver: werift's receiver reports would
   * be stale, so the leg sends its own RTCP reports from its own counts (RFC 3550 pacing).
   */
  #sendOwnReports(): void {
    const receiver = this.#pc.getTransceivers()[0]?.receiver;
    if (receiver) stopWeriftReceiverReports(receiver);
    const schedule = this.#plane.reports ?? new ReportSchedule();
    this.#stopReports = schedule.add(() => this.#sendReports());
  }

  #onConnectionState(state: string): void {
    switch (state) {
      case "connected":
        clearTimeout(this.#connectTimer);
        if (this.#state === "connecting") this.#onConnected();
        if (this.#transitionTo("connected")) this.#planeChanged();
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
