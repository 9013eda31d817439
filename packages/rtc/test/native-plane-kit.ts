/**
 * What the native data plane's tests share: the addon (a test fails if it is not built), relay
 * sockets taken from Node as the server takes werift's, and simulated clients on loopback that
 * send and receive SRTP with @parley/rtc's JavaScript SRTP (checked against the RFC vectors in
 * srtp-vectors.test.ts), keyed from DTLS-SRTP master keys by werift's own key derivation.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import dgram, { type Socket } from "node:dgram";
import {
  loadNativePlane,
  type NativeLeg,
  type NativeLegOptions,
  type NativePlane,
  type NativePlaneModule,
  PROFILE_AEAD_AES_128_GCM,
  RocTracker,
  RTP_FIXED_HEADER_BYTES,
  rtpHeaderLength,
  type SrtpKeys,
  SrtpReceiver,
  SrtpSender,
  udpHandleOf,
  writeAudioLevelExtension,
  writeRtpHeader,
} from "@parley/rtc";
import { SrtpSession } from "werift";

export const IP = "127.0.0.1";
export const AUDIO_LEVEL_ID = 1;
export const OPUS = 111;

/** The addon, or a failed assertion saying why it cannot be loaded. */
export function nativePlane(): NativePlaneModule {
  const module = loadNativePlane();
  assert.notEqual(typeof module, "string", `the native data plane must be built here: ${module}`);
  return module as NativePlaneModule;
}

/** DTLS-SRTP master key and salt (the GCM salt is 12 bytes, AES-CM's 14). */
export interface MasterKeys {
  masterKey: Buffer;
  masterSalt: Buffer;
}

export function masterKeys(profile: number): MasterKeys {
  return { masterKey: randomBytes(16), masterSalt: randomBytes(profile === PROFILE_AEAD_AES_128_GCM ? 12 : 14) };
}

/** The SRTP session keys werift derives from master keys (RFC 3711 4.3), for the JavaScript SRTP. */
export function sessionKeys(profile: number, keys: MasterKeys): SrtpKeys {
  const session = new SrtpSession({
    profile,
    keys: {
      localMasterKey: keys.masterKey,
      localMasterSalt: Buffer.from(keys.masterSalt),
      remoteMasterKey: keys.masterKey,
      remoteMasterSalt: Buffer.from(keys.masterSalt),
    },
  });
  const context = session.localContext;
  return { profile, key: context.srtpSessionKey, salt: context.srtpSessionSalt, authKey: context.srtpSessionAuthTag };
}

export async function bound(): Promise<Socket> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, IP, resolve));
  return socket;
}

/** One RTP packet a client received from the relay, decrypted. */
export interface Received {
  ssrc: number;
  payloadType: number;
  seq: number;
  roc: number;
  timestamp: number;
  marker: boolean;
  payload: Buffer;
  at: number;
}

export interface SendOptions {
  ssrc?: number;
  marker?: boolean;
  /** RFC 6464 level to send in the audio level extension (none when undefined). */
  level?: number;
  roc?: number;
  to?: Socket;
}

/**
 * A client on loopback: sends SRTP with its keys (from `ssrc`), decrypts what the relay sends it
 * with the relay's keys and keeps every packet; counts what did not authenticate.
 */
export class Client {
  readonly profile: number;
  readonly ssrc: number;
  readonly socket: Socket;
  /** Keys for what the client sends (the relay leg's remote keys), and for what it receives. */
  readonly keys: MasterKeys;
  readonly relayKeys: MasterKeys;
  readonly received: Received[] = [];
  authFailures = 0;
  readonly #sender: SrtpSender;
  readonly #receiver: SrtpReceiver;
  readonly #rocs = new Map<number, RocTracker>();

  constructor(profile: number, ssrc: number, socket: Socket) {
    this.profile = profile;
    this.ssrc = ssrc;
    this.socket = socket;
    this.keys = masterKeys(profile);
    this.relayKeys = masterKeys(profile);
    this.#sender = new SrtpSender(sessionKeys(profile, this.keys));
    this.#receiver = new SrtpReceiver(sessionKeys(profile, this.relayKeys));
    socket.on("message", (packet) => this.#receive(packet));
  }

  static async create(profile: number, ssrc: number): Promise<Client> {
    return new Client(profile, ssrc, await bound());
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** The SRTP packet of one RTP packet from this client. */
  packet(seq: number, timestamp: number, payload: Buffer, options: SendOptions = {}): Buffer {
    const level = options.level;
    const header = Buffer.alloc(RTP_FIXED_HEADER_BYTES + (level === undefined ? 0 : 8));
    writeRtpHeader(header, options.marker ?? false, OPUS, seq & 0xffff, timestamp, options.ssrc ?? this.ssrc);
    if (level !== undefined) writeAudioLevelExtension(header, AUDIO_LEVEL_ID, level);
    return Buffer.concat(this.#sender.protect(header, payload, options.roc ?? 0));
  }

  /** Sends to `relay` (a relay leg's socket, or its port). */
  send(relay: Socket | number, seq: number, timestamp: number, payload: Buffer, options: SendOptions = {}): Buffer {
    const packet = this.packet(seq, timestamp, payload, options);
    this.sendRaw(relay, packet, options.to);
    return packet;
  }

  sendRaw(relay: Socket | number, packet: Buffer, from: Socket = this.socket): void {
    from.send(packet, typeof relay === "number" ? relay : relay.address().port, IP);
  }

  #receive(packet: Buffer): void {
    const headerLength = rtpHeaderLength(packet);
    const ssrc = packet.readUInt32BE(8);
    let rocs = this.#rocs.get(ssrc);
    if (!rocs) {
      rocs = new RocTracker();
      this.#rocs.set(ssrc, rocs);
    }
    const payload = headerLength < 0 ? null : this.#receiver.unprotect(packet, headerLength, rocs);
    if (!payload) {
      this.authFailures++;
      return;
    }
    this.received.push({
      ssrc,
      payloadType: packet[1]! & 0x7f,
      seq: packet.readUInt16BE(2),
      roc: this.#receiver.lastRoc,
      timestamp: packet.readUInt32BE(4),
      marker: (packet[1]! & 0x80) !== 0,
      payload,
      at: Date.now(),
    });
  }

  close(): void {
    this.socket.close();
  }
}

/** A datagram the plane handed to JavaScript. */
export interface Datagram {
  data: Buffer;
  address: string;
  port: number;
}

/** A relay leg on the plane: its socket (taken from Node) and everything handed to JavaScript. */
export interface RelayLeg {
  leg: NativeLeg;
  socket: Socket;
  client: Client;
  datagrams: Datagram[];
  slotSsrcs: number[];
}

/** The sockets of legs `addRelayLeg` made, closed by `closeRelaySockets`. */
const sockets: Socket[] = [];

export async function addRelayLeg(
  plane: NativePlane,
  client: Client,
  options: Partial<NativeLegOptions> & { slotCount?: number } = {},
): Promise<RelayLeg> {
  const socket = await bound();
  sockets.push(socket);
  const handle = udpHandleOf(socket);
  assert.notEqual(typeof handle, "string");
  if (typeof handle === "string") throw new Error(handle);
  handle.recvStop();
  const datagrams: Datagram[] = [];
  const slotSsrcs = Array.from({ length: options.slotCount ?? 1 }, () => randomBytes(4).readUInt32BE(0));
  const leg = plane.addLeg({
    thread: 0,
    fd: handle.fd,
    remoteAddress: IP,
    remotePort: client.port,
    profile: client.profile,
    local: client.relayKeys,
    remote: client.keys,
    ssrcs: [client.ssrc],
    audioLevelId: AUDIO_LEVEL_ID,
    slots: slotSsrcs.map((ssrc) => ({ ssrc, payloadType: OPUS })),
    onDatagram: (data, address, port) => datagrams.push({ data, address, port }),
    ...options,
  });
  return { leg, socket, client, datagrams, slotSsrcs };
}

export function closeRelaySockets(): void {
  for (const socket of sockets.splice(0)) {
    try {
      socket.close();
    } catch {
      // closed already
    }
  }
}

/** A payload that names its packet, so a test can tell which arrived. */
export function payloadOf(tag: string, n: number): Buffer {
  return Buffer.from(`${tag}:${n}:${"x".repeat(40)}`);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends `count` packets 20 ms of media apart (paced by `gapMs`), from sequence number `seq`. */
export async function talk(
  client: Client,
  relay: Socket,
  tag: string,
  seq: number,
  timestamp: number,
  count: number,
  options: SendOptions & { gapMs?: number } = {},
): Promise<void> {
  for (let i = 0; i < count; i++) {
    const s = seq + i;
    client.send(relay, s, timestamp + i * 960, payloadOf(tag, i), { ...options, roc: (options.roc ?? 0) + (s >> 16) });
    if (options.gapMs !== 0) await sleep(options.gapMs ?? 2);
  }
}
