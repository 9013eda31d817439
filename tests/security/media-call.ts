import dgram from "node:dgram";
import { AudioRecorder, AudioSource, dominantFrequency, tone, toneLevel } from "@parley/audio";
import { type BotPeer, createBotPeer } from "@parley/cli";
import type { Call, ParleyClient } from "@parley/client";
import { nominatedPath, type RTCPeerConnection, restrictSrtpProfiles, srtpProfileOf } from "@parley/rtc";
import { sdkClient, TEST_PASSWORD, waitFor } from "@parley/testkit";

/**
 * What the media attack tests share: softphones in the test process (the SDK on a real WebSocket,
 * werift peer connections like the `parley call` bot's) calling each other through a real server,
 * with the client's side of the wire within reach: its UDP socket, the relay's address, and the
 * SRTP packets it sends.
 */

export const IP = "127.0.0.1";
export const AES_CM_128_HMAC_SHA1_80 = 0x0001;
export const AEAD_AES_128_GCM = 0x0007;

/** RFC 7983: RTP (not RTCP) starts with 128-191 and has no RTCP packet type (192-223) next. */
export function isRtp(data: Uint8Array): boolean {
  return data.length >= 12 && data[0]! >= 128 && data[0]! <= 191 && (data[1]! < 192 || data[1]! > 223);
}

export class Phone {
  readonly username: string;
  readonly client: ParleyClient;
  #peer: BotPeer | undefined;
  #source: AudioSource | undefined;
  #recorder = new AudioRecorder();
  /** Sequence numbers received on the first stream (the other participant), in arrival order. */
  readonly received: number[] = [];
  readonly #srtpProfile: number | undefined;

  constructor(url: string, username: string, srtpProfile?: number) {
    this.username = username;
    this.#srtpProfile = srtpProfile;
    this.client = sdkClient(url, { createPeerConnection: () => this.#createPeer().pc });
  }

  /** Only `srtpProfile` offered and accepted, when given (werift prefers AEAD_AES_128_GCM). */
  #createPeer(): BotPeer {
    const peer = createBotPeer(IP, (frame, stream) => {
      if (stream !== 0) return;
      this.received.push(frame.sequenceNumber);
      this.#recorder.push(frame);
    });
    const pc = peer.pc as unknown as RTCPeerConnection;
    const profile = this.#srtpProfile;
    if (profile !== undefined) {
      const setRemoteDescription = pc.setRemoteDescription.bind(pc);
      pc.setRemoteDescription = (description) => {
        restrictSrtpProfiles(pc, [profile]);
        return setRemoteDescription(description);
      };
    }
    this.#peer = peer;
    return peer;
  }

  async register(): Promise<void> {
    await this.client.connect();
    await this.client.register({ username: this.username, password: TEST_PASSWORD, deviceName: "attack test" });
  }

  get pc(): RTCPeerConnection {
    const pc = this.#peer?.pc;
    if (!pc) throw new Error(`${this.username} has no peer connection`);
    return pc as unknown as RTCPeerConnection;
  }

  /** The SRTP profile the connection negotiated. */
  srtpProfile(): number | undefined {
    return srtpProfileOf(this.pc);
  }

  #pair() {
    const path = nominatedPath(this.pc);
    if (!path) throw new Error(`${this.username} has no nominated ICE pair`);
    return path;
  }

  /** The relay leg's address and port, as the client's ICE selected it. */
  relayAddress(): { address: string; port: number } {
    const { remoteHost, remotePort } = this.#pair();
    return { address: remoteHost, port: remotePort };
  }

  /** The client's own UDP socket (werift's), from which its media goes out. */
  socket(): dgram.Socket {
    return this.#pair().socket;
  }

  /** Plays a looped tone as the microphone. */
  talk(hz: number): void {
    const peer = this.#peer;
    if (!peer) throw new Error(`${this.username} is not in a call`);
    this.#source = new AudioSource(tone(hz, 2), (frame) => peer.send(frame));
    this.#source.start();
  }

  /** Starts copying every SRTP packet the client sends (taps werift's socket.send). */
  capture(): Buffer[] {
    const socket = this.socket();
    let tap = taps.get(socket);
    if (!tap) {
      const installed: { packets: Buffer[] | null } = { packets: null };
      tap = installed;
      taps.set(socket, installed);
      const send = socket.send;
      socket.send = function (this: dgram.Socket, ...args: unknown[]) {
        const data = args[0];
        if (installed.packets && Buffer.isBuffer(data) && isRtp(data)) installed.packets.push(Buffer.from(data));
        return (send as (...a: unknown[]) => void).apply(this, args);
      } as typeof socket.send;
    }
    const captured: Buffer[] = [];
    tap.packets = captured;
    return captured;
  }

  stopCapture(): void {
    const tap = taps.get(this.socket());
    if (tap) tap.packets = null;
  }

  /** Starts a new recording of what this phone hears (the previous one is dropped). */
  record(): void {
    this.#recorder.close();
    this.#recorder = new AudioRecorder();
  }

  /** The dominant frequency and the level of `hz` in the current recording, its first 0.3 s skipped. */
  heard(hz: number): { dominant: number; level: number; samples: number } {
    const samples = this.#recorder.samples.subarray(48_000 * 0.3);
    return { dominant: dominantFrequency(samples), level: toneLevel(samples, hz), samples: samples.length };
  }

  /** Packets of the current recording. */
  get recorded(): number {
    return this.#recorder.packetsReceived;
  }

  close(): void {
    this.#source?.stop();
    this.#recorder.close();
    this.#peer?.close();
    this.client.disconnect();
  }
}

/** The send taps on clients' sockets, and where each copies packets to (null: nowhere). */
const taps = new WeakMap<dgram.Socket, { packets: Buffer[] | null }>();

/** `caller` calls `callee`, who answers; resolves once both media connections are up. */
export async function callBetween(caller: Phone, callee: Phone): Promise<Call> {
  const answered = new Promise<void>((resolve, reject) => {
    callee.client.delegate = {
      onIncomingCall: (call) => {
        call.answer().then(resolve, reject);
      },
    };
  });
  const call = await caller.client.call(callee.username);
  await answered;
  await waitFor(
    () => caller.pc.connectionState === "connected" && callee.pc.connectionState === "connected",
    "both media connections up",
    { timeoutMs: 20_000 },
  );
  return call;
}

/** The duplicates in `seqs` (sequence numbers received more than once). */
export function duplicates(seqs: readonly number[]): number[] {
  const seen = new Set<number>();
  const twice: number[] = [];
  for (const seq of seqs) {
    if (seen.has(seq)) twice.push(seq);
    seen.add(seq);
  }
  return twice;
}

/** Reads parley_media_dropped_total by reason from the server's /metrics. */
export async function mediaDrops(httpUrl: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const drops: Record<string, number> = {};
  for (const match of text.matchAll(/^parley_media_dropped_total\{reason="(\w+)"\} (\d+)/gm)) {
    drops[match[1]!] = Number(match[2]);
  }
  return drops;
}

/** A UDP socket on the loopback address, on a port of its own. */
export function otherSocket(): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket("udp4");
    socket.once("error", reject);
    socket.bind({ address: IP, port: 0 }, () => resolve(socket));
  });
}

/** Sends `packets` one after another from `socket` to `to` (each handed to the kernel before the next). */
export async function sendAll(
  socket: dgram.Socket,
  packets: readonly Buffer[],
  to: { address: string; port: number },
): Promise<void> {
  for (const packet of packets) {
    await new Promise<void>((resolve, reject) =>
      socket.send(packet, to.port, to.address, (error) => (error ? reject(error) : resolve())),
    );
  }
}
