import { dominantFrequency, OpusDecoder, OpusEncoder, rms, SAMPLE_RATE, tone, toneLevel } from "@parley/audio";
import {
  RocTracker,
  type RTCPeerConnection,
  RTP_FIXED_HEADER_BYTES,
  rtpHeaderLength,
  SrtpReceiver,
  SrtpSender,
  tapDatagrams,
  writeRtpHeader,
} from "@parley/rtc";
import { connectedPeer, type SrtpContextLike } from "./fast-leg.js";

/**
 * The one-way-audio hunt's media legs: a werift peer connection (ICE, DTLS, SRTP keys, made for
 * the SDK's `createPeerConnection`), whose RTP is then taken off werift's socket as the load
 * generator's fast legs do (fast-leg.ts), but carrying real audio: each party sends its own tone
 * (pre-encoded Opus, one frame every 20 ms from the moment the leg connects, like a live
 * microphone), and every received packet is authenticated and decrypted in full. Per 1 s window
 * (epoch seconds) the leg counts packets and decodes the first ten (200 ms) to measure how much of
 * what it heard is the tone it expects from the other party: the tone's level and its share of the
 * received energy (a party hearing someone else's call would have energy but not that tone).
 */

const FRAME_MS = 20;
const FRAME_SAMPLES = 960;
/** Frames decoded per 1 s window. */
const DECODED_FRAMES = 10;
/** Tone amplitude (relative to full scale) every party sends: -12 dBFS. */
const AMPLITUDE = 0.25;
/** The tone is there: its level (squared amplitude, see toneLevel) is above -40 dBFS... */
const MIN_LEVEL = 1e-4;
/** ...and it carries most of the received energy. */
const MIN_PURITY = 0.5;

/** One party's tone: a second of it (an integer frequency loops seamlessly), encoded once. */
export function encodeTone(frequencyHz: number): Buffer[] {
  const samples = tone(frequencyHz, 1, AMPLITUDE);
  const encoder = new OpusEncoder();
  try {
    const frames: Buffer[] = [];
    for (let at = 0; at + FRAME_SAMPLES <= samples.length; at += FRAME_SAMPLES) {
      frames.push(encoder.encode(samples.subarray(at, at + FRAME_SAMPLES)));
    }
    return frames;
  } finally {
    encoder.close();
  }
}

/** What one leg received in one 1 s window. */
export interface ReceivedWindow {
  packets: number;
  /** The expected tone's level in the decoded part (squared amplitude relative to full scale). */
  level: number;
  /** The expected tone's share of the decoded energy, 0..1. */
  purity: number;
  /** Samples decoded. */
  decoded: number;
  /** When the expected tone was not there: the strongest frequency heard instead (0: silence). */
  otherHz?: number;
}

/** A window heard the expected party: packets arrived and they carry that party's tone. */
export function heardTone(window: ReceivedWindow | undefined): boolean {
  return window !== undefined && window.decoded > 0 && window.level >= MIN_LEVEL && window.purity >= MIN_PURITY;
}

/** A window had audio, but not the expected party's tone (someone else's, or noise). */
export function heardOther(window: ReceivedWindow | undefined): boolean {
  return window !== undefined && window.decoded > 0 && !heardTone(window);
}

interface OpenWindow {
  second: number;
  packets: number;
  /** The current run of consecutive packets (by sequence number), decoded. */
  pcm: Int16Array;
  filled: number;
  lastSeq: number;
  /** The longest run so far, if the run had to restart after a gap. */
  best: Int16Array | undefined;
}

/** One party's media leg in one call. */
export class HuntLeg {
  /** Epoch ms: created (offer), connected (ICE + DTLS), first RTP packet received. */
  readonly createdAt = Date.now();
  connectedAt: number | undefined;
  firstPacketAt: number | undefined;
  sent = 0;
  received = 0;
  authFailures = 0;
  /** Why the leg never carried media, if it did not. */
  failure: string | undefined;
  readonly windows = new Map<number, ReceivedWindow>();
  /** The frequency this leg should hear (the other party's tone), set when the call knows its peer. */
  expectHz = 0;
  readonly #frames: Buffer[];
  #open: OpenWindow | undefined;
  #decoder: OpusDecoder | undefined;
  #sender: SrtpSender | undefined;
  #receiver: SrtpReceiver | undefined;
  readonly #rocs = new RocTracker();
  #send: ((packet: Buffer[]) => void) | undefined;
  #untap: (() => void) | undefined;
  #frame = 0;
  #next = 0;
  #seq = Math.floor(Math.random() * 30000);
  #roc = 0;
  #timestamp = Math.floor(Math.random() * 0x7fffffff);
  #ssrc = 0;
  #payloadType = 111;
  #stopped = false;

  constructor(frames: Buffer[]) {
    this.#frames = frames;
  }

  get live(): boolean {
    return this.#send !== undefined && !this.#stopped;
  }

  /** Takes RTP over on the connected peer connection and starts sending the tone. */
  attach(pc: RTCPeerConnection, ssrc: number): void {
    if (this.#stopped) return;
    const peer = connectedPeer(pc);
    const keys = (context: SrtpContextLike) => ({
      profile: peer.profile,
      key: context.srtpSessionKey,
      salt: context.srtpSessionSalt,
      authKey: context.srtpSessionAuthTag,
    });
    this.#sender = new SrtpSender(keys(peer.local));
    this.#receiver = new SrtpReceiver(keys(peer.remote));
    this.#decoder = new OpusDecoder();
    this.#ssrc = ssrc;
    this.#payloadType = peer.payloadType;
    const socket = peer.socket;
    // werift's own listener keeps STUN (consent checks) and DTLS; RTP and RTCP (RFC 7983: first
    // byte 128-191) come here, RTCP to be dropped.
    this.#untap = tapDatagrams(socket, (werift) => (data, info) => {
      const b0 = data[0]!;
      if (b0 >= 128 && b0 <= 191) {
        if (data[1]! < 192 || data[1]! > 223) this.#receive(data);
      } else for (const l of werift) l(data, info);
    });
    const ignore = () => undefined;
    this.#send = (packet) => socket.send(packet, peer.remotePort, peer.remoteHost, ignore);
    this.connectedAt = Date.now();
    this.#next = performance.now();
  }

  /** Sends every frame due by `now` (performance.now()); after a stall, skips ahead rather than bursting. */
  tick(now: number): void {
    const send = this.#send;
    if (!send || this.#stopped) return;
    if (now - this.#next > 200) {
      // A stall (this process was busy): skip the frames rather than burst them, and keep the RTP
      // timestamps on the wall clock, as a live microphone would.
      const skipped = Math.floor((now - this.#next) / FRAME_MS);
      this.#next += skipped * FRAME_MS;
      this.#timestamp = (this.#timestamp + skipped * FRAME_SAMPLES) >>> 0;
      this.#frame = (this.#frame + skipped) % this.#frames.length;
    }
    while (this.#next <= now) {
      const header = writeRtpHeader(
        Buffer.allocUnsafe(RTP_FIXED_HEADER_BYTES),
        false,
        this.#payloadType,
        this.#seq,
        this.#timestamp,
        this.#ssrc,
      );
      const frame = this.#frames[this.#frame]!;
      this.#frame = (this.#frame + 1) % this.#frames.length;
      try {
        send(this.#sender!.protect(header, frame, this.#roc));
      } catch {
        this.stop();
        return;
      }
      this.sent++;
      this.#timestamp = (this.#timestamp + FRAME_SAMPLES) >>> 0;
      this.#seq = (this.#seq + 1) & 0xffff;
      if (this.#seq === 0) this.#roc++;
      this.#next += FRAME_MS;
    }
  }

  #receive(packet: Buffer): void {
    const headerLength = rtpHeaderLength(packet);
    const payload = headerLength < 0 ? null : this.#receiver!.unprotect(packet, headerLength, this.#rocs);
    if (!payload) {
      this.authFailures++;
      return;
    }
    const now = Date.now();
    this.received++;
    this.firstPacketAt ??= now;
    const second = Math.floor(now / 1000);
    if (this.#open?.second !== second) {
      this.#close();
      this.#open = {
        second,
        packets: 0,
        pcm: new Int16Array(DECODED_FRAMES * FRAME_SAMPLES),
        filled: 0,
        lastSeq: -1,
        best: undefined,
      };
    }
    const open = this.#open!;
    open.packets++;
    const seq = packet.readUInt16BE(2);
    if (open.filled + FRAME_SAMPLES <= open.pcm.length && payload.length > 0) {
      // The tone is measured over consecutive frames only: a lost packet inside the run would be a
      // phase jump, which a coherent measurement over the run reads as a weaker, detuned tone.
      if (open.filled > 0 && seq !== ((open.lastSeq + 1) & 0xffff)) {
        if (!open.best || open.filled > open.best.length) open.best = open.pcm.slice(0, open.filled);
        open.filled = 0;
      }
      open.lastSeq = seq;
      try {
        const pcm = this.#decoder!.decode(payload);
        const n = Math.min(pcm.length, open.pcm.length - open.filled);
        open.pcm.set(pcm.subarray(0, n), open.filled);
        open.filled += n;
      } catch {
        // an undecodable payload counts as a packet without audio
      }
    }
  }

  /** Analyses the open window (its decoded audio against the expected tone). */
  #close(): void {
    const open = this.#open;
    if (!open) return;
    this.#open = undefined;
    let pcm = open.pcm.subarray(0, open.filled);
    if (open.best && open.best.length > pcm.length) pcm = open.best;
    let level = 0;
    let purity = 0;
    if (pcm.length >= FRAME_SAMPLES && this.expectHz > 0) {
      // Frame by frame (20 ms each), averaged: a phase jump between frames (a lost packet, a
      // sender that skipped frames after a stall) does not weaken the measure. Party tones are
      // 200 Hz apart, well outside a 20 ms frame's main lobe.
      let energy = 0;
      const frames = Math.floor(pcm.length / FRAME_SAMPLES);
      for (let f = 0; f < frames; f++) {
        const frame = pcm.subarray(f * FRAME_SAMPLES, (f + 1) * FRAME_SAMPLES);
        level += toneLevel(frame, this.expectHz, SAMPLE_RATE) / frames;
        energy += (2 * rms(frame) ** 2) / frames;
      }
      purity = energy > 0 ? Math.min(1, level / energy) : 0;
    }
    const window: ReceivedWindow = { packets: open.packets, level, purity, decoded: pcm.length };
    // Rare (a bad window), so the FFT is affordable: whose audio was it?
    if (pcm.length > 0 && !heardTone(window)) window.otherHz = Math.round(dominantFrequency(pcm, SAMPLE_RATE));
    this.windows.set(open.second, window);
  }

  /** Stops sending and receiving and gives the socket back to werift (before the connection closes). */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#untap?.();
    this.#untap = undefined;
    this.#close();
    this.#decoder?.close();
    this.#decoder = undefined;
  }
}

/** A tick this much later than due means this process stalled: it could neither send nor receive on time. */
const STALL_MS = 250;

/**
 * Drives every live leg's sending from one 10 ms timer, and notes when this process stalled (epoch
 * ms): packets that arrived then were read late and counted in a later second, so those seconds
 * say nothing about the server.
 */
export class ToneClock {
  readonly legs = new Set<HuntLeg>();
  readonly stalls: { from: number; to: number }[] = [];
  readonly #timer: NodeJS.Timeout;
  #last = Date.now();

  constructor() {
    this.#timer = setInterval(() => {
      const epoch = Date.now();
      if (epoch - this.#last > STALL_MS) this.stalls.push({ from: this.#last, to: epoch });
      this.#last = epoch;
      const now = performance.now();
      for (const leg of this.legs) {
        if (leg.live) leg.tick(now);
      }
    }, FRAME_MS / 2);
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
