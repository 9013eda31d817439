import type { Socket } from "node:dgram";
// Peers with Parley's settings and werift fixes, and the relay's own SRTP code (its fast data
// plane), not a copy: the generator encrypts and authenticates exactly as the relay does.
import {
  AUDIO_LEVEL_EXTENSION_BYTES,
  cmCounter,
  createPeer,
  gcmIv,
  MediaStreamTrack,
  nominatedPath,
  PROFILE_AEAD_AES_128_GCM,
  RocTracker,
  type RTCPeerConnection,
  RTP_FIXED_HEADER_BYTES,
  type SrtpContextLike as RtcSrtpContextLike,
  rtpHeaderLength,
  rtpSequenceNumber,
  rtpSsrc,
  type SrtpKeys,
  SrtpReceiver,
  SrtpSender,
  srtpSessionOf,
  tapDatagrams,
  writeAudioLevelExtension,
  writeRtpHeader,
} from "@parley/rtc";

/**
 * The load generator's client legs. werift does what is hard and rare (ICE, DTLS handshake, SRTP
 * key derivation, RTCP); once the leg is connected, RTP bypasses werift's RTP stack in both
 * directions: packets are built from pre-encoded Opus frames and encrypted here (with the
 * relay's SRTP module) and written to werift's own UDP socket; received RTP is taken off that
 * socket's data callback before werift's demultiplexing, and only its trailing send time is
 * decrypted. Everything else (STUN consent checks, DTLS, SRTCP) still reaches werift.
 */

export const BIND_ADDRESS = "127.0.0.1";
export { PROFILE_AEAD_AES_128_GCM };

/** Bytes appended to every payload: the send time (performance.now(), float64). */
export const STAMP_BYTES = 8;

/** Hands out two-port ranges from this process's own slice of ports, so its legs never race for one. */
export class PortAllocator {
  #next: number;
  readonly #min: number;
  readonly #max: number;

  constructor(min: number, max: number) {
    this.#min = min;
    this.#max = max;
    this.#next = min;
  }

  range(): [number, number] {
    if (this.#next + 1 > this.#max) this.#next = this.#min;
    const range: [number, number] = [this.#next, this.#next + 1];
    this.#next += 2;
    return range;
  }
}

/**
 * A werift peer connection configured like Parley's bots: one address, no STUN, Opus only, bundled.
 * A 1:1 leg has one sendrecv m-line and no header extensions; a conference leg (`slots` > 1) adds
 * recvonly m-lines (streams it hears at once, as the web client does) and the RFC 6464 audio level
 * extension (the server ranks speakers by it).
 */
export function createClientPeer(ports: PortAllocator, slots = 1): { pc: RTCPeerConnection; ssrc: number } {
  const pc = createPeer({
    address: BIND_ADDRESS,
    portRange: ports.range(),
    audioLevel: slots > 1,
    bundlePolicy: "max-bundle",
  });
  const transceiver = pc.addTransceiver(new MediaStreamTrack({ kind: "audio" }), { direction: "sendrecv" });
  for (let slot = 1; slot < slots; slot++) pc.addTransceiver("audio", { direction: "recvonly" });
  return { pc, ssrc: transceiver.sender.ssrc };
}

/** Resolves once werift's connection state is "connected"; rejects on failure or timeout. */
export function connected(pc: RTCPeerConnection, timeoutMs = 20_000): Promise<void> {
  if (pc.connectionState === "connected") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unSubscribe();
      reject(new Error(`not connected within ${timeoutMs} ms (${pc.connectionState})`));
    }, timeoutMs);
    const { unSubscribe } = pc.connectionStateChange.subscribe((state) => {
      if (state === "connected") {
        clearTimeout(timer);
        unSubscribe();
        resolve();
      } else if (state === "failed" || state === "closed") {
        clearTimeout(timer);
        unSubscribe();
        reject(new Error(`connection ${state}`));
      }
    });
  });
}

/** Waits for werift's ICE gathering (it normally completes inside setLocalDescription). */
export async function gathered(pc: RTCPeerConnection): Promise<string> {
  const deadline = Date.now() + 5000;
  while (pc.iceGatheringState !== "complete") {
    if (Date.now() > deadline) throw new Error("ICE gathering did not complete");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const sdp = pc.localDescription?.sdp;
  if (!sdp) throw new Error("no local description");
  return sdp;
}

/** One direction's SRTP context in werift: its master keys and the session keys derived from them. */
export type SrtpContextLike = Required<RtcSrtpContextLike>;

/**
 * What a connected werift peer connection's RTP runs on (read by @parley/rtc): the SRTP profile
 * and contexts, the nominated pair's UDP socket and remote address, the Opus payload type of the
 * local description's m-line (werift numbers it 96 in its offers).
 */
export function connectedPeer(pc: RTCPeerConnection) {
  const path = nominatedPath(pc);
  const srtp = srtpSessionOf(pc);
  const profile = typeof srtp === "string" ? undefined : srtp.config?.profile;
  if (!path || typeof srtp === "string" || profile === undefined || !srtp.localContext || !srtp.remoteContext) {
    throw new Error("the peer connection is not connected");
  }
  const mline = /^m=audio \d+ \S+ (\d+)/m.exec(pc.localDescription?.sdp ?? "");
  if (!mline) throw new Error("no audio m-line in the local description");
  return {
    profile,
    local: srtp.localContext as SrtpContextLike,
    remote: srtp.remoteContext as SrtpContextLike,
    socket: path.socket,
    remoteHost: path.remoteHost,
    remotePort: path.remotePort,
    payloadType: Number(mline[1]),
  };
}

/** Called for every RTP packet received on a leg: the stamp it carried (or NaN) and when it arrived. */
export type ReceiveHandler = (sentAt: number, now: number, payloadBytes: number) => void;

/**
 * Reads the last `length` (<= 16) plaintext bytes of an SRTP packet's payload without decrypting
 * the rest or checking its tag: both profiles are AES counter mode, so those bytes are the
 * ciphertext XOR one or two keystream blocks, made with the receiver's long-lived ECB cipher (no
 * per-packet cipher object). `roc` is the packet's rollover counter. Null for a packet too short.
 */
function tail(receiver: SrtpReceiver, packet: Buffer, roc: number, length: number, scratch: Buffer): Buffer | null {
  const keys = receiver.keys;
  const gcm = keys.profile === PROFILE_AEAD_AES_128_GCM;
  const headerLength = rtpHeaderLength(packet);
  const payloadLength = packet.length - (gcm ? 16 : 10) - headerLength;
  if (headerLength < 0 || payloadLength < length) return null;
  const seq = rtpSequenceNumber(packet);
  const ssrc = rtpSsrc(packet);
  const offset = payloadLength - length;
  const first = offset >> 4;
  const last = (offset + length - 1) >> 4;
  const blocks = Buffer.allocUnsafe(16 * (last - first + 1));
  for (let b = first; b <= last; b++) {
    const block = blocks.subarray(16 * (b - first), 16 * (b - first + 1));
    if (gcm) {
      // RFC 7714 / GCM: payload block i is encrypted with counter (IV || i + 2).
      gcmIv(scratch, keys.salt, ssrc, roc, seq).copy(block, 0, 0, 12);
      block.writeUInt32BE(b + 2, 12);
    } else {
      // RFC 3711: block i uses the counter with i added to its (zero) low 16 bits.
      cmCounter(scratch, keys.salt, ssrc, roc, seq).copy(block);
      block.writeUInt16BE(b, 14);
    }
  }
  const keystream = receiver.ecb.update(blocks);
  const out = Buffer.allocUnsafe(length);
  const at = headerLength + offset;
  for (let i = 0; i < length; i++) out[i] = packet[at + i]! ^ keystream[(offset & 15) + i]!;
  return out;
}

/** Where a fast leg's packets go and come from, and how it gets its datagrams. */
export interface LegWiring {
  socket: Socket;
  remoteHost: string;
  remotePort: number;
  /** The socket is connect()ed to the remote address (sends then take no address). */
  connected?: boolean;
  /** Routes the socket's datagrams to `handler`; returns how to undo that. */
  tap(handler: (data: Buffer) => void): () => void;
}

/** One connected leg's RTP fast path. */
export class FastLeg {
  readonly ssrc: number;
  readonly profile: number;
  /** The Opus payload type of the local description's m-line (werift numbers it 96 in its offers). */
  readonly payloadType: number;
  #seq = Math.floor(Math.random() * 30000);
  #roc = 0;
  #timestamp = Math.floor(Math.random() * 0x7fffffff);
  readonly #sender: SrtpSender;
  readonly #receiver: SrtpReceiver;
  readonly #socket: Socket;
  readonly #remoteHost: string;
  readonly #remotePort: number;
  readonly #connected: boolean;
  readonly #untap: () => void;
  /** Rollover counters of the SSRCs received (a conference leg hears up to one per slot). */
  readonly #rocs = new Map<number, RocTracker>();
  readonly #scratch = Buffer.alloc(16);
  /** RFC 6464 audio level extension id and the level sent in it (null: no extension). */
  #audioLevel: { id: number; level: number } | null = null;
  onReceive: ReceiveHandler | undefined;
  sent = 0;
  received = 0;
  /** RTCP from the relay, dropped here: the generator keeps no RTP statistics for werift to report. */
  rtcpDropped = 0;

  constructor(options: { wiring: LegWiring; local: SrtpKeys; remote: SrtpKeys; ssrc: number; payloadType: number }) {
    this.profile = options.local.profile;
    this.#sender = new SrtpSender(options.local);
    this.#receiver = new SrtpReceiver(options.remote);
    this.ssrc = options.ssrc;
    this.payloadType = options.payloadType;
    this.#socket = options.wiring.socket;
    this.#remoteHost = options.wiring.remoteHost;
    this.#remotePort = options.wiring.remotePort;
    this.#connected = options.wiring.connected === true;
    this.#untap = options.wiring.tap((data) => {
      if (data[1]! >= 192 && data[1]! <= 223) this.rtcpDropped++;
      else this.#receive(data);
    });
  }

  /** Takes over RTP on a connected werift peer connection. */
  static fromPeer(pc: RTCPeerConnection, ssrc: number): FastLeg {
    const peer = connectedPeer(pc);
    const keys = (context: SrtpContextLike): SrtpKeys => ({
      profile: peer.profile,
      key: context.srtpSessionKey,
      salt: context.srtpSessionSalt,
      authKey: context.srtpSessionAuthTag,
    });
    return new FastLeg({
      local: keys(peer.local),
      remote: keys(peer.remote),
      ssrc,
      payloadType: peer.payloadType,
      wiring: {
        socket: peer.socket,
        remoteHost: peer.remoteHost,
        remotePort: peer.remotePort,
        tap(handler) {
          // werift's own 'message' listener (UdpTransport) records the sender, allocates an address
          // array and calls its onData for every datagram; RTP and RTCP (RFC 7983: first byte
          // 128-191) skip it and come straight here, everything else (STUN consent checks, DTLS)
          // still goes to werift.
          return tapDatagrams(peer.socket, (werift) => (data, info) => {
            const b0 = data[0]!;
            if (b0 >= 128 && b0 <= 191) handler(data);
            else for (const l of werift) l(data, info);
          });
        },
      },
    });
  }

  get authFailures(): number {
    return this.#receiver.authFailures;
  }

  get gcm(): boolean {
    return this.profile === PROFILE_AEAD_AES_128_GCM;
  }

  /** Sends the RFC 6464 audio level extension `id` with `level` (0 loudest .. 127 silence) in every packet. */
  setAudioLevel(id: number, level: number): void {
    this.#audioLevel = { id, level };
  }

  /** Sends one 20 ms Opus frame with the current time appended. */
  send(frame: Buffer, now: number): void {
    const audioLevel = this.#audioLevel;
    const header = writeRtpHeader(
      Buffer.allocUnsafe(RTP_FIXED_HEADER_BYTES + (audioLevel ? AUDIO_LEVEL_EXTENSION_BYTES : 0)),
      false,
      this.payloadType,
      this.#seq,
      this.#timestamp,
      this.ssrc,
    );
    if (audioLevel) writeAudioLevelExtension(header, audioLevel.id, audioLevel.level);
    const payload = Buffer.allocUnsafe(frame.length + STAMP_BYTES);
    frame.copy(payload, 0);
    payload.writeDoubleLE(now, frame.length);
    const packet = this.#sender.protect(header, payload, this.#roc);
    if (this.#connected) this.#socket.send(packet);
    else this.#socket.send(packet, this.#remotePort, this.#remoteHost);
    this.sent++;
    this.#timestamp = (this.#timestamp + 960) >>> 0;
    this.#seq = (this.#seq + 1) & 0xffff;
    if (this.#seq === 0) this.#roc++;
  }

  /**
   * Only the send time at the end of the payload is decrypted (see SrtpReceiver.tail); every 50th
   * packet is decrypted and authenticated in full, so a relay that corrupted packets would show
   * up as authentication failures.
   */
  #receive(packet: Buffer): void {
    const now = performance.now();
    const ssrc = rtpSsrc(packet);
    let rocs = this.#rocs.get(ssrc);
    if (!rocs) {
      rocs = new RocTracker();
      this.#rocs.set(ssrc, rocs);
    }
    const seq = rtpSequenceNumber(packet);
    const roc = rocs.guess(seq);
    if (this.received % 50 === 0) {
      const headerLength = rtpHeaderLength(packet);
      if (headerLength < 0 || !this.#receiver.unprotect(packet, headerLength, rocs)) return;
    } else {
      rocs.accept(seq, roc);
    }
    const stamp = tail(this.#receiver, packet, roc, STAMP_BYTES, this.#scratch);
    this.received++;
    this.onReceive?.(stamp ? stamp.readDoubleLE(0) : Number.NaN, now, packet.length);
  }

  /** Gives RTP back to werift, or stops listening (before closing the connection or socket). */
  release(): void {
    this.#untap();
    this.onReceive = undefined;
  }
}
