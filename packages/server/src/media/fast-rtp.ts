import {
  audioLevelOf,
  type IceConnectionLike,
  isSupportedProfile,
  packetIndex,
  type ReceivedStream,
  ReplayVerdict,
  type RTCPeerConnection,
  receivedStream,
  rtpHasPadding,
  rtpHeaderLength,
  rtpMarker,
  rtpSequenceNumber,
  rtpSsrc,
  rtpTimestamp,
  type SrtpContextLike,
  type SrtpKeys,
  SrtpReceiver,
  SrtpSender,
  srtpSessionOf,
  tagLength,
} from "@parley/rtc";
import type { MediaDrops } from "./media-drops.js";
import type { SocketGuard } from "./socket-guard.js";

/** One authenticated RTP packet from the client, decoded just enough to forward it. */
export interface InboundRtp {
  ssrc: number;
  sequenceNumber: number;
  /** The SRTP rollover counter of the sequence number (how often it wrapped). */
  roc: number;
  timestamp: number;
  marker: boolean;
  /** The payload without RTP padding. */
  payload: Buffer;
  /** RFC 6464 level (0 loudest .. 127 silence) of the audio level extension, or -1 when absent. */
  audioLevel: number;
}

/** A blank `InboundRtp`, for the one object each leg decodes every packet into. */
export function emptyInboundRtp(): InboundRtp {
  return { ssrc: 0, sequenceNumber: 0, roc: 0, timestamp: 0, marker: false, payload: Buffer.alloc(0), audioLevel: -1 };
}

/**
 * The relay's fast data plane for one connected leg: RTP in and out without werift's RTP stack.
 *
 * werift keeps what is hard and rare: ICE (and its consent checks), the DTLS handshake, SRTP key
 * derivation, and RTCP both ways. Once the leg is connected, the leg's `SocketGuard` hands the
 * client's SRTP packets (from the selected ICE pair only) here before werift parses them (werift
 * would try them as STUN, decrypt them with a new cipher object, build an RtpPacket, keep
 * reception statistics and dispatch it through two event layers); each is checked against its
 * SSRC's replay window, decrypted once, and handed to the leg. The leg's outgoing RTP is
 * encrypted here and written straight to the socket (werift's sender would rewrite a header
 * object, keep a 128-packet retransmission history, serialise, encrypt and send behind promises).
 *
 * What werift no longer sees, and what that changes: its senders' packet counts and report times,
 * which MediaLeg keeps current for them (werift then sends the relay's RTCP sender reports and
 * computes the round trip from the client's receiver reports), and its receivers' reception
 * statistics (MediaLeg counts loss and jitter itself; werift's receiver reports to the client
 * carry none). Everything else on the socket (STUN, DTLS, SRTCP) still goes to werift.
 */
export class FastRtpPath {
  readonly profile: number;
  readonly #connection: IceConnectionLike;
  readonly #guard: SocketGuard;
  readonly #receiver: SrtpReceiver;
  readonly #sender: SrtpSender;
  readonly #tag: number;
  readonly #drops: MediaDrops;
  /** Rollover counters and replay windows of the SSRCs the client declared; any other is dropped. */
  readonly #streams = new Map<number, ReceivedStream>();
  /** The one object every packet is decoded into (the leg forwards it synchronously). */
  readonly #inbound: InboundRtp = emptyInboundRtp();
  #audioLevelId: number | null = null;
  #onRtp: (rtp: InboundRtp) => void;

  private constructor(
    guard: SocketGuard,
    local: SrtpKeys,
    remote: SrtpKeys,
    streams: Map<number, ReceivedStream>,
    ssrcs: Iterable<number>,
    drops: MediaDrops,
    onRtp: (rtp: InboundRtp) => void,
  ) {
    this.profile = local.profile;
    this.#guard = guard;
    this.#connection = guard.connection;
    this.#receiver = new SrtpReceiver(remote);
    this.#sender = new SrtpSender(local);
    this.#tag = tagLength(local.profile);
    this.#drops = drops;
    for (const declared of ssrcs) {
      // Streams werift's path already received go on with their rollover counter and window.
      const ssrc = declared >>> 0;
      let stream = streams.get(ssrc);
      if (!stream) {
        stream = receivedStream();
        streams.set(ssrc, stream);
      }
      this.#streams.set(ssrc, stream);
    }
    this.#onRtp = onRtp;
    guard.rtpHandler = this.#receive;
  }

  /**
   * Takes over RTP on a connected werift peer connection whose sockets `guard` guards, or tells
   * why it cannot (the leg then stays on werift's RTP path): SRTP must be up with a profile
   * supported here, all m-lines bundled on one transport, and werift's internals shaped as in
   * 0.24.4. `ssrcs` are the SSRCs the client declared (werift too drops RTP from any other);
   * `streams` the leg's received SSRCs, shared with werift's path; drops are counted in `drops`.
   */
  static attach(
    pc: RTCPeerConnection,
    guard: SocketGuard,
    streams: Map<number, ReceivedStream>,
    ssrcs: Iterable<number>,
    drops: MediaDrops,
    onRtp: (rtp: InboundRtp) => void,
  ): FastRtpPath | string {
    const srtp = srtpSessionOf(pc);
    if (typeof srtp === "string") return srtp;
    const profile = srtp.config?.profile;
    if (profile === undefined || !isSupportedProfile(profile)) return `SRTP profile ${profile} not supported`;
    const keys = (context: SrtpContextLike | undefined): SrtpKeys | null =>
      context?.srtpSessionKey && context.srtpSessionSalt && context.srtpSessionAuthTag
        ? { profile, key: context.srtpSessionKey, salt: context.srtpSessionSalt, authKey: context.srtpSessionAuthTag }
        : null;
    const local = keys(srtp.localContext);
    const remote = keys(srtp.remoteContext);
    if (!local || !remote) return "werift's SRTP session keys not found";
    if (typeof guard.connection.canSendApplicationData !== "function") return "werift's ICE connection not found";
    return new FastRtpPath(guard, local, remote, streams, ssrcs, drops, onRtp);
  }

  /** Which header extension id carries the audio level (null: none negotiated). */
  setAudioLevelExtension(id: number | null): void {
    this.#audioLevelId = id;
  }

  /**
   * Hot path: one RTP datagram (12 bytes or more) from the selected pair. RFC 3711 3.3.2: the
   * replay window is checked before decrypting and updated only once the packet authenticated.
   */
  readonly #receive = (packet: Buffer): void => {
    const drops = this.#drops;
    const ssrc = rtpSsrc(packet);
    const stream = this.#streams.get(ssrc);
    if (!stream) {
      drops.unknown_ssrc++;
      return;
    }
    const headerLength = rtpHeaderLength(packet);
    if (headerLength < 0 || packet.length < headerLength + this.#tag) {
      drops.malformed++;
      return;
    }
    const seq = rtpSequenceNumber(packet);
    const index = packetIndex(stream.rocs.guess(seq), seq);
    const verdict = stream.replay.check(index);
    if (verdict !== ReplayVerdict.FRESH) {
      if (verdict === ReplayVerdict.REPLAY) drops.replay++;
      else drops.too_old++;
      return;
    }
    let payload = this.#receiver.unprotect(packet, headerLength, stream.rocs);
    if (!payload) {
      drops.auth_failed++;
      return;
    }
    stream.replay.accept(index);
    if (rtpHasPadding(packet)) {
      // RTP padding: its last byte says how many bytes to drop.
      const padding = payload.length > 0 ? payload[payload.length - 1]! : 0;
      if (padding === 0 || padding > payload.length) {
        drops.malformed++;
        return;
      }
      payload = payload.subarray(0, payload.length - padding);
    }
    const inbound = this.#inbound;
    inbound.ssrc = ssrc;
    inbound.sequenceNumber = seq;
    inbound.roc = this.#receiver.lastRoc;
    inbound.timestamp = rtpTimestamp(packet);
    inbound.marker = rtpMarker(packet);
    inbound.payload = payload;
    inbound.audioLevel = this.#audioLevelId === null ? -1 : audioLevelOf(packet, headerLength, this.#audioLevelId);
    this.#onRtp(inbound);
  };

  /**
   * Hot path: encrypts one RTP packet (`header` is its complete 12-byte header, `roc` the rollover
   * counter of its sequence number) and sends it to the client on the nominated candidate pair.
   * Nothing is sent without ICE consent (RFC 7675), as werift would do.
   */
  send(header: Buffer, payload: Buffer, roc: number): void {
    const connection = this.#connection;
    const pair = connection.nominated;
    if (!pair || !connection.canSendApplicationData!()) return;
    const transport = pair.protocol.transport;
    if (!transport || transport.closed) return;
    const remote = pair.remoteCandidate;
    transport.socket.send(this.#sender.protect(header, payload, roc), remote.port, remote.host);
  }

  /** Gives RTP back to werift (before the peer connection closes); the guard stays. */
  detach(): void {
    if (this.#guard.rtpHandler === this.#receive) this.#guard.rtpHandler = null;
    this.#onRtp = () => undefined;
  }
}
