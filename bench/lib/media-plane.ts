/**
 * The load generator's RTP data plane, behind one interface with two implementations:
 *
 * - `native` (the default): `bench/native/rtp-engine.c`, one engine process per generator, taking
 *   each connected leg's socket over (pidfd_getfd), SRTP by libsrtp, batched receives. It costs a
 *   small fraction of what the server pays per packet, so the generators never limit a ramp.
 * - `node`: the same work in this process (`fast-leg.ts`: the server's own SRTP module, Node's
 *   UDP sockets). About as costly per packet as the server; kept as the fallback where the engine
 *   cannot be built (no C compiler or libsrtp2), and selectable with BENCH_LOADGEN=node.
 *
 * werift does ICE and the DTLS handshake either way, and keeps STUN and DTLS after that.
 */
import dgram, { type RemoteInfo, type Socket } from "node:dgram";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { RTCPeerConnection } from "@parley/rtc";
import { connectedPeer, FastLeg, PROFILE_AEAD_AES_128_GCM, type SrtpContextLike } from "./fast-leg.js";
import { Histogram, type SparseHistogram } from "./hist.js";
import { NativeEngine } from "./native-engine.js";

const FRAME_MS = 20;

/** What one generator counted over a measurement window. */
export interface PlaneWindow {
  sent: number;
  expected: number;
  received: number;
  delay: SparseHistogram;
  lateness: SparseHistogram;
  legs: number;
  streams: number;
  authFailures: number;
  /** Packets refused as replayed or too old (native data plane only). */
  replays?: number;
  /** Packets the kernel gave no receive stamp (their delay taken at processing; native data plane only). */
  unstamped?: number;
  /** The native engine's own CPU accounting over the window and its grace (native data plane only). */
  engine?: { cpuMs: number; receiveMs: number; sendMs: number; received: number; sent: number; rounds: number };
}

/** One connected client leg on the data plane. */
export interface PlaneLeg {
  /** When the leg's first RTP packet arrived (performance.now()). */
  readonly firstAudio: Promise<number>;
  /** Starts sending a frame every 20 ms, each expected at `fanout` legs; or updates the fanout. */
  stream(fanout: number): Promise<void>;
  /** Sends the RFC 6464 audio level extension `id` with `level` in every packet from now on. */
  audioLevel(id: number, level: number): Promise<void>;
  /** Stops sending and receiving and gives the socket back to werift (before the peer closes). */
  release(): Promise<void>;
}

export interface MediaPlane {
  readonly kind: "native" | "node";
  /** The engine's process, when the data plane runs in one (its CPU counts as the generator's). */
  readonly enginePid: number | undefined;
  /** Why the Node plane runs where the native one was asked for (the engine could not be used). */
  readonly fallbackReason?: string | undefined;
  /** Takes RTP over on a connected werift peer connection (`ssrc`: its sending SSRC). */
  attach(pc: RTCPeerConnection, ssrc: number): Promise<PlaneLeg>;
  /** Counts packets sent in [start, end) (epoch ms) and arrived up to `graceMs` after `end`. */
  measure(startEpoch: number, endEpoch: number, graceMs: number): Promise<PlaneWindow>;
  /** Stops every stream and releases every leg. */
  releaseAll(): Promise<void>;
  /** Releases everything and stops the engine process, if any. */
  close(): Promise<void>;
}

/**
 * The native plane if `engineBinary` is given and the engine may take this process's sockets;
 * otherwise (with the reason on stderr) the Node plane.
 */
export async function createMediaPlane(engineBinary: string | null, frames: Buffer[]): Promise<MediaPlane> {
  if (!engineBinary) return new NodePlane(frames);
  let engine: NativeEngine | undefined;
  const probe = dgram.createSocket("udp4");
  try {
    engine = await NativeEngine.start(engineBinary);
    await new Promise<void>((resolve) => probe.bind(0, "127.0.0.1", resolve));
    await engine.call("probe", process.pid, udpHandle(probe).fd);
  } catch (error) {
    const reason = `the native RTP engine cannot be used here (${(error as Error).message})`;
    console.error(`load generator: ${reason}; Node data plane`);
    engine?.close();
    return new NodePlane(frames, reason);
  } finally {
    probe.close();
  }
  const file = path.join(os.tmpdir(), `parley-bench-frames-${process.pid}.bin`);
  fs.writeFileSync(file, Buffer.concat(frames.flatMap((f) => [Buffer.from([f.length >> 8, f.length & 255]), f])));
  await engine.call("frames", file);
  fs.rmSync(file, { force: true });
  return new NativePlane(engine);
}

interface UdpHandle {
  fd: number;
  recvStart(): number;
  recvStop(): number;
}

/** The libuv UDP handle behind a dgram socket (its file descriptor, and reading on or off). */
function udpHandle(socket: Socket): UdpHandle {
  // dgram keeps it in its state object (`socket._handle` is the deprecated accessor to the same).
  const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === "state symbol");
  const handle = state && (socket as unknown as Record<symbol, { handle?: UdpHandle }>)[state]?.handle;
  if (!handle || typeof handle.fd !== "number" || handle.fd < 0) throw new Error("no UDP handle on the socket");
  return handle;
}

/** Gives a socket's reading back to Node (werift); nothing to do once werift has closed it. */
function resumeReading(handle: UdpHandle): void {
  try {
    handle.recvStart();
  } catch {
    // the socket is closed already
  }
}

/** What the native engine needs from a connected werift peer: its socket, the remote end, the SRTP master keys. */
function peerWiring(pc: RTCPeerConnection) {
  const peer = connectedPeer(pc);
  // werift keeps a GCM master salt (12 bytes, RFC 7714) zero-padded to 14.
  const saltLength = peer.profile === PROFILE_AEAD_AES_128_GCM ? 12 : 14;
  const keyHex = (c: SrtpContextLike) =>
    Buffer.concat([c.masterKey, c.masterSalt.subarray(0, saltLength)]).toString("hex");
  return {
    socket: peer.socket,
    handle: udpHandle(peer.socket),
    remote: [peer.remoteHost, peer.remotePort] as const,
    profile: peer.profile,
    tx: keyHex(peer.local),
    rx: keyHex(peer.remote),
    payloadType: peer.payloadType,
  };
}

function deferred(): { promise: Promise<number>; resolve: (at: number) => void } {
  let resolve!: (at: number) => void;
  const promise = new Promise<number>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

class NativePlane implements MediaPlane {
  readonly kind = "native";
  readonly #engine: NativeEngine;
  #nextId = 0;
  readonly #legs = new Map<
    number,
    { werift: ((data: Buffer, info: RemoteInfo) => void)[]; first: (at: number) => void; handle: UdpHandle }
  >();

  constructor(engine: NativeEngine) {
    this.#engine = engine;
    engine.onFirst = (id, epochMs) => this.#legs.get(id)?.first(epochMs - performance.timeOrigin);
    engine.onDatagram = (id, data, address, port) => {
      const leg = this.#legs.get(id);
      if (!leg) return;
      const info: RemoteInfo = { address, port, family: "IPv4", size: data.length };
      for (const listener of leg.werift) listener(data, info);
    };
  }

  get enginePid(): number {
    return this.#engine.pid;
  }

  async attach(pc: RTCPeerConnection, ssrc: number): Promise<PlaneLeg> {
    const wiring = peerWiring(pc);
    const id = this.#nextId++;
    const first = deferred();
    // From here the engine reads the socket; werift still writes to it and gets STUN and DTLS back.
    wiring.handle.recvStop();
    this.#legs.set(id, {
      werift: wiring.socket.listeners("message") as ((data: Buffer, info: RemoteInfo) => void)[],
      first: first.resolve,
      handle: wiring.handle,
    });
    const [host, port] = wiring.remote;
    try {
      await this.#engine.call(
        "leg",
        id,
        process.pid,
        wiring.handle.fd,
        host,
        port,
        wiring.profile,
        wiring.tx,
        wiring.rx,
        ssrc >>> 0,
        wiring.payloadType,
      );
    } catch (error) {
      this.#legs.delete(id);
      resumeReading(wiring.handle);
      throw error;
    }
    const engine = this.#engine;
    return {
      firstAudio: first.promise,
      stream: (fanout) => engine.call("stream", id, fanout),
      audioLevel: (ext, level) => engine.call("level", id, ext, level),
      release: async () => {
        if (!this.#legs.delete(id)) return;
        await engine.call("drop", id).catch(() => undefined);
        resumeReading(wiring.handle);
      },
    };
  }

  async measure(startEpoch: number, endEpoch: number, graceMs: number): Promise<PlaneWindow> {
    await this.#engine.call("window", startEpoch, endEpoch);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, endEpoch + graceMs - Date.now())));
    return this.#engine.call<PlaneWindow>("report");
  }

  async releaseAll(): Promise<void> {
    await this.#engine.call("dropall");
    for (const leg of this.#legs.values()) resumeReading(leg.handle);
    this.#legs.clear();
  }

  async close(): Promise<void> {
    await this.releaseAll().catch(() => undefined);
    this.#engine.close();
  }
}

interface Stream {
  leg: FastLeg;
  next: number;
  frame: number;
  /** How many legs the relay forwards this leg's packets to (packets expected per packet sent). */
  fanout: number;
}

interface Window {
  start: number;
  end: number;
  sent: number;
  expected: number;
  received: number;
  delay: Histogram;
  lateness: Histogram;
}

/** The data plane in this Node process (fast-leg.ts), paced by a 1 ms timer. */
class NodePlane implements MediaPlane {
  readonly kind = "node";
  readonly enginePid = undefined;
  readonly #frames: Buffer[];
  readonly #streams: Stream[] = [];
  readonly #legs = new Set<FastLeg>();
  #window: Window | undefined;
  #ticker: NodeJS.Timeout | undefined;

  readonly fallbackReason: string | undefined;

  constructor(frames: Buffer[], fallbackReason?: string) {
    this.#frames = frames;
    this.fallbackReason = fallbackReason;
  }

  async attach(pc: RTCPeerConnection, ssrc: number): Promise<PlaneLeg> {
    const leg = FastLeg.fromPeer(pc, ssrc);
    this.#legs.add(leg);
    const first = deferred();
    leg.onReceive = (sentAt, now) => {
      first.resolve(now);
      const w = this.#window;
      if (!w || !(sentAt >= w.start && sentAt < w.end)) return;
      w.received++;
      w.delay.record(now - sentAt);
    };
    return {
      firstAudio: first.promise,
      stream: async (fanout) => {
        const stream = this.#streams.find((s) => s.leg === leg);
        if (stream) stream.fanout = fanout;
        else this.#streams.push({ leg, next: performance.now() + Math.random() * FRAME_MS, frame: 0, fanout });
        this.#ticker ??= setInterval(() => this.#tick(), 1);
      },
      audioLevel: async (id, level) => leg.setAudioLevel(id, level),
      release: async () => {
        const at = this.#streams.findIndex((s) => s.leg === leg);
        if (at >= 0) this.#streams.splice(at, 1);
        leg.release();
        this.#legs.delete(leg);
      },
    };
  }

  /** Every millisecond: send the frames that are due (each stream every 20 ms, phases spread at random). */
  #tick(): void {
    const now = performance.now();
    const w = this.#window;
    for (const stream of this.#streams) {
      if (stream.next > now) continue;
      const frame = this.#frames[stream.frame]!;
      stream.frame = (stream.frame + 1) % this.#frames.length;
      stream.leg.send(frame, now);
      if (w && now >= w.start && now < w.end) {
        w.sent++;
        w.expected += stream.fanout;
        w.lateness.record(now - stream.next);
      }
      stream.next += FRAME_MS;
      // After a long stall (GC, setup burst) skip the missed frames instead of sending a burst,
      // keeping the stream's phase (moving every late stream to now + 20 ms would line them up).
      if (now - stream.next > 5 * FRAME_MS) stream.next += (Math.floor((now - stream.next) / FRAME_MS) + 1) * FRAME_MS;
    }
  }

  async measure(startEpoch: number, endEpoch: number, graceMs: number): Promise<PlaneWindow> {
    const offset = performance.timeOrigin;
    const w: Window = {
      start: startEpoch - offset,
      end: endEpoch - offset,
      sent: 0,
      expected: 0,
      received: 0,
      delay: new Histogram(),
      lateness: new Histogram(),
    };
    this.#window = w;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, w.end + graceMs - performance.now())));
    if (this.#window === w) this.#window = undefined;
    let authFailures = 0;
    for (const leg of this.#legs) authFailures += leg.authFailures;
    return {
      sent: w.sent,
      expected: w.expected,
      received: w.received,
      delay: w.delay.toSparse(),
      lateness: w.lateness.toSparse(),
      legs: this.#legs.size,
      streams: this.#streams.length,
      authFailures,
    };
  }

  async releaseAll(): Promise<void> {
    if (this.#ticker) clearInterval(this.#ticker);
    this.#ticker = undefined;
    this.#streams.length = 0;
    this.#window = undefined;
    for (const leg of this.#legs) leg.release();
    this.#legs.clear();
  }

  close(): Promise<void> {
    return this.releaseAll();
  }
}
