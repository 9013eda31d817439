import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/*
 * The native media data plane (packages/rtc/native, an N-API addon built by native/build.mjs with
 * the system compiler against OpenSSL 3's libcrypto): media threads that take a connected leg's UDP socket over
 * from Node once ICE and DTLS are up, and do per packet what the JavaScript fast plane does (SRTP
 * with replay protection, audio level, routing into slots with continuous numbering, SRTP per
 * output) with no JavaScript and no allocation per packet. Everything that is not the client's RTP
 * (STUN consent checks, DTLS, RTCP, datagrams from any other address) comes back to JavaScript
 * through `onDatagram`; counters, reception statistics and voice activity are in each leg's
 * `stats`, written by the media thread and read by JavaScript without a call.
 */

/** Where native/build.mjs puts the addon (dist/ and src/ are both one level under the package). */
export const NATIVE_PLANE_FILE = fileURLToPath(new URL("../native/build/parley-data-plane.node", import.meta.url));

/** Indexes into NativeLeg.stats (a Float64Array the media thread writes and JS reads, no call). */
export const NativeLegStat = {
  /** RTP packets and payload bytes from the client (authenticated) and to it (all slots). */
  packetsIn: 0,
  packetsOut: 1,
  bytesIn: 2,
  bytesOut: 3,
  /** When the last RTP packet from the client arrived (the kernel's stamp, ms since the epoch), 0 before. */
  lastPacketAt: 4,
  /** Reception statistics of the client's latest SSRC (-1 before): RFC 3550 A.3 extended sequence
   *  numbers (first and highest), packets received, A.8 interarrival jitter in RTP ticks. */
  ssrc: 5,
  base: 6,
  max: 7,
  received: 8,
  jitter: 9,
  /** Voice activity exactly as server/src/media/voice-activity.ts: 1 while speaking; loudness 0..127. */
  speaking: 10,
  loudness: 11,
  /** Per-leg drops: a replayed packet, one behind the replay window, one that did not authenticate,
   *  an SSRC the client did not declare, anything malformed (junk, truncated, bad padding). */
  dropReplay: 12,
  dropTooOld: 13,
  dropAuthFailed: 14,
  dropUnknownSsrc: 15,
  dropMalformed: 16,
  /** Datagrams (or forwarded RTP) dropped because JavaScript's queue for the leg was full. */
  dropJsQueueFull: 17,
  /** Packets for the client that SRTP or the socket refused. */
  dropSendFailed: 18,
  /** Datagrams (and forwarded RTP) handed to JavaScript. */
  datagramsToJs: 19,
  /** Then per slot i at SLOT_BASE + i * SLOT_STRIDE + one of the SLOT_* offsets below. */
  SLOT_BASE: 20,
  SLOT_STRIDE: 4,
  /** RTP packets and payload octets sent on the slot (what RTCP sender reports carry). */
  SLOT_PACKETS_SENT: 0,
  SLOT_OCTETS_SENT: 1,
  /** The RTP timestamp of the last packet sent on the slot, and when that packet had arrived (ms epoch). */
  SLOT_LAST_TIMESTAMP: 2,
  SLOT_LAST_SENT_AT: 3,
} as const;

/** The index in NativeLeg.stats of slot `slot`'s field `field` (one of NativeLegStat.SLOT_*). */
export function slotStat(slot: number, field: number): number {
  return NativeLegStat.SLOT_BASE + slot * NativeLegStat.SLOT_STRIDE + field;
}

/**
 * One direction's SRTP keys: the DTLS-SRTP master key (16 bytes) and salt (14 bytes; GCM 12, or 14
 * zero-padded as werift keeps it), derived into session keys by the plane (RFC 3711 4.3); or session
 * keys as they are (published test vectors give those; `authKey` empty for GCM). Both directions of
 * a leg take the same form.
 */
export type NativeSrtpKeys =
  | { masterKey: Buffer; masterSalt: Buffer }
  | { sessionKey: Buffer; sessionSalt: Buffer; authKey: Buffer };

export interface NativeLegOptions {
  /** 0..threads-1 (the server puts all legs of a call on one thread). */
  thread: number;
  /** The leg's UDP socket (Node keeps owning and closing it; stop Node reading it first). */
  fd: number;
  /** The nominated ICE pair's remote end (IPv4 or IPv6). */
  remoteAddress: string;
  remotePort: number;
  /** DTLS-SRTP profile: 1 AES_CM_128_HMAC_SHA1_80, 7 AEAD_AES_128_GCM. */
  profile: number;
  /** The relay's keys (what it sends) and the client's (what it receives): DTLS-SRTP master keys. */
  local: NativeSrtpKeys;
  remote: NativeSrtpKeys;
  /** SSRCs the client declared; RTP with any other is dropped (dropUnknownSsrc). At most 64. */
  ssrcs: number[];
  /** RFC 6464 one-byte header extension id, -1: none. */
  audioLevelId: number;
  /** The leg's outgoing streams (slot 0 = sendrecv). At most 64. */
  slots: { ssrc: number; payloadType: number }[];
  /** Every datagram that is not RTP from the remote end (STUN, DTLS, RTCP, anything from another
   *  address), handed to JS unchanged for werift / the socket guard. Called on the JS thread. */
  onDatagram(data: Buffer, address: string, port: number): void;
  /** Optional: RTP received from this client, for outputs that are not native legs. Only called
   *  while setForwardToJs(true). */
  onRtp?(
    ssrc: number,
    roc: number,
    seq: number,
    timestamp: number,
    marker: boolean,
    payload: Buffer,
    audioLevel: number,
  ): void;
}

export interface NativePlane {
  readonly threads: number;
  /** How the media threads batch their system calls: "io_uring", or why they make plain ones. */
  readonly batching: string;
  addLeg(options: NativeLegOptions): NativeLeg;
  /** How many open legs each thread serves (for placing calls by load). */
  legCounts(): number[];
  /** Stops every thread; legs are closed. */
  close(): void;
}

export interface NativeLeg {
  readonly stats: Float64Array;
  /** The nominated pair changed. */
  setRemote(address: string, port: number): void;
  /** ICE consent (RFC 7675): nothing sent while false; starts true. */
  setCanSend(canSend: boolean): void;
  setAudioLevelId(id: number): void;
  /** Slot `slot` of THIS leg carries `source`'s audio (null: silent); the numbering continues
   *  across source switches and timestamps advance by the real gap (server slot-continuity.ts).
   *  A closed source counts as null. */
  route(slot: number, source: NativeLeg | null): void;
  setForwardToJs(on: boolean): void;
  /** A packet from a source that is not a native leg (identified by sourceKey, any stable int),
   *  sent out on `slot` with the same continuity rules, synchronously on the calling thread. */
  sendFrom(
    slot: number,
    sourceKey: number,
    ssrc: number,
    roc: number,
    seq: number,
    timestamp: number,
    marker: boolean,
    payload: Buffer,
    arrivedAtMs: number,
  ): void;
  /** Removes the leg; when it returns no media thread touches its fd or keys again. Idempotent. */
  close(): void;
}

/** Options of a plane: `ioUring` false makes its threads use plain system calls (default true). */
export interface NativePlaneOptions {
  ioUring?: boolean;
}

export interface NativePlaneModule {
  createPlane(threads: number, options?: NativePlaneOptions): NativePlane;
  /** Planes and legs whose native memory is still held (for leak checks). */
  counts(): { planes: number; legs: number };
}

/** The addon's own functions (native/addon.c). */
interface Addon {
  layout: { SLOT_BASE: number; SLOT_STRIDE: number; MAX_SLOTS: number; MAX_SSRCS: number };
  createPlane(threads: number, ioUring: boolean): object;
  closePlane(plane: object): void;
  batching(plane: object): string;
  legCounts(plane: object): number[];
  addLeg(
    plane: object,
    thread: number,
    fd: number,
    address: string,
    port: number,
    profile: number,
    localKey: Buffer,
    localSalt: Buffer,
    remoteKey: Buffer,
    remoteSalt: Buffer,
    ssrcs: Uint32Array,
    audioLevelId: number,
    slotSsrcs: Uint32Array,
    slotPayloadTypes: Uint8Array,
    stats: Float64Array,
    onDatagram: NativeLegOptions["onDatagram"],
    onRtp: NativeLegOptions["onRtp"] | null,
    localAuthKey?: Buffer,
    remoteAuthKey?: Buffer,
  ): object;
  closeLeg(leg: object): void;
  setRemote(leg: object, address: string, port: number): void;
  set(leg: object, setting: Setting, value: boolean | number): void;
  route(leg: object, slot: number, source: object | null): void;
  sendFrom(
    leg: object,
    slot: number,
    sourceKey: number,
    ssrc: number,
    roc: number,
    seq: number,
    timestamp: number,
    marker: boolean,
    payload: Buffer,
    arrivedAtMs: number,
  ): void;
  counts(): { planes: number; legs: number };
}

const Setting = { CAN_SEND: 0, FORWARD_TO_JS: 1, AUDIO_LEVEL_ID: 2 } as const;
type Setting = (typeof Setting)[keyof typeof Setting];

class Leg implements NativeLeg {
  readonly stats: Float64Array;
  readonly #addon: Addon;
  /** The addon's handle (an External), used by `route` of other legs too. */
  readonly handle: object;
  /** Tells the plane the leg is gone. */
  readonly #forget: (leg: Leg) => void;
  #closed = false;

  constructor(addon: Addon, handle: object, stats: Float64Array, forget: (leg: Leg) => void) {
    this.#addon = addon;
    this.handle = handle;
    this.stats = stats;
    this.#forget = forget;
  }

  get closed(): boolean {
    return this.#closed;
  }

  setRemote(address: string, port: number): void {
    if (!this.#closed) this.#addon.setRemote(this.handle, address, port);
  }

  setCanSend(canSend: boolean): void {
    if (!this.#closed) this.#addon.set(this.handle, Setting.CAN_SEND, canSend);
  }

  setAudioLevelId(id: number): void {
    if (!this.#closed) this.#addon.set(this.handle, Setting.AUDIO_LEVEL_ID, id);
  }

  route(slot: number, source: NativeLeg | null): void {
    if (this.#closed) return;
    if (source !== null && !(source instanceof Leg)) throw new TypeError("the source is not a native leg");
    this.#addon.route(this.handle, slot, source && !source.closed ? source.handle : null);
  }

  setForwardToJs(on: boolean): void {
    if (!this.#closed) this.#addon.set(this.handle, Setting.FORWARD_TO_JS, on);
  }

  sendFrom(
    slot: number,
    sourceKey: number,
    ssrc: number,
    roc: number,
    seq: number,
    timestamp: number,
    marker: boolean,
    payload: Buffer,
    arrivedAtMs: number,
  ): void {
    if (this.#closed) return;
    this.#addon.sendFrom(this.handle, slot, sourceKey, ssrc, roc, seq, timestamp, marker, payload, arrivedAtMs);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#forget(this);
    this.#addon.closeLeg(this.handle);
  }

  /** The plane closed every leg. */
  markClosed(): void {
    this.#closed = true;
  }
}

class Plane implements NativePlane {
  readonly threads: number;
  readonly #addon: Addon;
  readonly #handle: object;
  readonly #legs = new Set<Leg>();
  readonly #forget = (leg: Leg): void => {
    this.#legs.delete(leg);
  };
  #closed = false;

  constructor(addon: Addon, threads: number, options: NativePlaneOptions) {
    this.#addon = addon;
    this.threads = threads;
    this.#handle = addon.createPlane(threads, options.ioUring ?? true);
  }

  get batching(): string {
    return this.#addon.batching(this.#handle);
  }

  addLeg(options: NativeLegOptions): NativeLeg {
    if (this.#closed) throw new Error("the native plane is closed");
    const addon = this.#addon;
    const stats = new Float64Array(NativeLegStat.SLOT_BASE + options.slots.length * NativeLegStat.SLOT_STRIDE);
    const local = keyParts(options.local);
    const remote = keyParts(options.remote);
    if ((local.authKey === undefined) !== (remote.authKey === undefined)) {
      throw new TypeError("both directions' SRTP keys must be master keys, or both session keys");
    }
    const handle = addon.addLeg(
      this.#handle,
      options.thread,
      options.fd,
      options.remoteAddress,
      options.remotePort,
      options.profile,
      local.key,
      local.salt,
      remote.key,
      remote.salt,
      Uint32Array.from(options.ssrcs, (ssrc) => ssrc >>> 0),
      options.audioLevelId,
      Uint32Array.from(options.slots, (slot) => slot.ssrc >>> 0),
      Uint8Array.from(options.slots, (slot) => slot.payloadType),
      stats,
      options.onDatagram,
      options.onRtp ?? null,
      local.authKey,
      remote.authKey,
    );
    const leg = new Leg(addon, handle, stats, this.#forget);
    this.#legs.add(leg);
    return leg;
  }

  legCounts(): number[] {
    return this.#closed ? [] : this.#addon.legCounts(this.#handle);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const leg of this.#legs) leg.markClosed();
    this.#legs.clear();
    this.#addon.closePlane(this.#handle);
  }
}

/** The addon's key arguments: an authentication key (possibly empty) says they are session keys. */
function keyParts(keys: NativeSrtpKeys): { key: Buffer; salt: Buffer; authKey?: Buffer } {
  return "masterKey" in keys
    ? { key: keys.masterKey, salt: keys.masterSalt }
    : { key: keys.sessionKey, salt: keys.sessionSalt, authKey: keys.authKey };
}

let cached: NativePlaneModule | string | undefined;

/**
 * Loads the addon, or returns why it cannot be used (not built, dlopen error, built from other
 * sources than this binding). Cached for the default file; `file` loads another (tests).
 */
export function loadNativePlane(file?: string): NativePlaneModule | string {
  if (file === undefined && cached !== undefined) return cached;
  const result = load(file ?? NATIVE_PLANE_FILE);
  if (file === undefined) cached = result;
  return result;
}

function load(file: string): NativePlaneModule | string {
  let addon: Addon;
  try {
    addon = createRequire(import.meta.url)(file) as Addon;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "MODULE_NOT_FOUND" || code === "ENOENT") return `the native data plane is not built (${file})`;
    return `the native data plane cannot be loaded: ${(error as Error).message}`;
  }
  const layout = addon.layout;
  if (
    typeof addon.createPlane !== "function" ||
    typeof addon.batching !== "function" ||
    layout?.SLOT_BASE !== NativeLegStat.SLOT_BASE ||
    layout.SLOT_STRIDE !== NativeLegStat.SLOT_STRIDE
  ) {
    return "the native data plane was built from other sources (run npm run build)";
  }
  return {
    createPlane: (threads: number, options: NativePlaneOptions = {}) => new Plane(addon, threads, options),
    counts: () => addon.counts(),
  };
}
