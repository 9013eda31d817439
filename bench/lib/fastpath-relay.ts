/**
 * A prototype of the data plane proposed in docs/performance.md, to measure what it costs: RTP
 * relayed between two SRTP legs in plain Node, without werift's RTP stack. Per packet: one UDP
 * receive, SRTP authentication and decryption (AES-128-GCM, node:crypto), the SSRC rewritten for
 * the target leg, encryption with the target leg's key, one UDP send. No ICE or DTLS here: the keys
 * come over IPC (in the design they come from werift's DTLS handshake, which stays as it is), and
 * each leg learns its client's address from the first authenticated packet (as ICE would).
 * This is a benchmark prototype, not part of the server.
 */
import dgram from "node:dgram";
import { Rpc } from "./ipc.js";
import { rtpHeaderLength, type SrtpKeys, SrtpReceiver, SrtpSender } from "./srtp.js";

interface WireKeys {
  profile: number;
  key: string;
  salt: string;
  authKey: string;
}

const toKeys = (k: WireKeys): SrtpKeys => ({
  profile: k.profile,
  key: Buffer.from(k.key, "base64"),
  salt: Buffer.from(k.salt, "base64"),
  authKey: Buffer.from(k.authKey, "base64"),
});

const portMin = Number(process.env.BENCH_RELAY_PORT_MIN ?? 30000);
const portMax = Number(process.env.BENCH_RELAY_PORT_MAX ?? 32700);
let nextPort = portMin;

class Leg {
  readonly socket = dgram.createSocket("udp4");
  /** Decrypts what this leg's client sends. */
  readonly #receiver: SrtpReceiver;
  /** Encrypts what this leg sends to its client. */
  readonly #sender: SrtpSender;
  readonly #ssrc: number;
  peer: Leg | undefined;
  /** The client's address is known (learned from its first authenticated packet) and connected to. */
  #connected = false;
  forwarded = 0;
  dropped = 0;

  constructor(fromClient: SrtpKeys, toClient: SrtpKeys) {
    this.#receiver = new SrtpReceiver(fromClient);
    this.#sender = new SrtpSender(toClient);
    this.#ssrc = (Math.random() * 0xffffffff) >>> 0;
    this.socket.on("message", (packet, rinfo) => this.#onPacket(packet, rinfo));
    // A connected socket reports the client's closed port (ICMP) as ECONNREFUSED; not an error here.
    this.socket.on("error", () => undefined);
  }

  async bind(): Promise<number> {
    for (;;) {
      const port = nextPort;
      nextPort = nextPort >= portMax ? portMin : nextPort + 1;
      try {
        await new Promise<void>((resolve, reject) => {
          this.socket.once("error", reject);
          this.socket.bind(port, "127.0.0.1", () => {
            this.socket.off("error", reject);
            resolve();
          });
        });
        return port;
      } catch {
        // taken: try the next one
      }
    }
  }

  #onPacket(packet: Buffer, rinfo: dgram.RemoteInfo): void {
    const b0 = packet[0]!;
    if (b0 < 128 || b0 > 191 || (packet[1]! >= 192 && packet[1]! <= 223)) return; // RTP only
    const payload = this.#receiver.unprotect(packet);
    if (!payload) {
      this.dropped++;
      return;
    }
    if (!this.#connected) {
      // A connected UDP socket sends without an address lookup per packet (dgram's lookup path).
      this.#connected = true;
      this.socket.connect(rinfo.port, rinfo.address);
      return;
    }
    this.peer?.forward(packet, payload, this.#receiver.lastRoc);
  }

  /** Sends a packet from the other leg on to this leg's client, under this leg's SSRC and key. */
  forward(original: Buffer, payload: Buffer, roc: number): void {
    if (!this.#connected) return;
    // The received buffer is ours: rewrite its header in place.
    const header = original.subarray(0, rtpHeaderLength(original));
    header.writeUInt32BE(this.#ssrc, 8);
    this.socket.send(this.#sender.protect(header, payload, roc));
    this.forwarded++;
  }

  close(): void {
    this.socket.close();
  }
}

const legs: Leg[] = [];

new Rpc(process, {
  /** One call: two legs, each with the keys of its client's two directions. */
  createCall: async (args: { a: { fromClient: WireKeys; toClient: WireKeys }; b: typeof args.a }) => {
    const a = new Leg(toKeys(args.a.fromClient), toKeys(args.a.toClient));
    const b = new Leg(toKeys(args.b.fromClient), toKeys(args.b.toClient));
    a.peer = b;
    b.peer = a;
    legs.push(a, b);
    return { portA: await a.bind(), portB: await b.bind() };
  },
  stats: () => ({
    legs: legs.length,
    forwarded: legs.reduce((n, l) => n + l.forwarded, 0),
    dropped: legs.reduce((n, l) => n + l.dropped, 0),
  }),
  reset: () => {
    for (const leg of legs) leg.close();
    legs.length = 0;
    return {};
  },
  exit: () => {
    for (const leg of legs) leg.close();
    setTimeout(() => process.exit(0), 10);
    return {};
  },
});

process.on("disconnect", () => process.exit(0));
