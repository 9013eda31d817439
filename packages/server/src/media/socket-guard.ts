import type { RemoteInfo, Socket } from "node:dgram";
import {
  type CandidatePairLike,
  type IceConnectionLike,
  iceConnectionOf,
  iceSocketsOf,
  PAIR_SUCCEEDED,
  packetIndex,
  type ReceivedStream,
  ReplayVerdict,
  type RTCPeerConnection,
  tapDatagrams,
  type UdpTransportLike,
} from "@parley/rtc";
import type { MediaDrops } from "./media-drops.js";

/**
 * The one 'message' listener on a leg's UDP socket(s), from the answer until the socket closes.
 * werift accepts RTP and RTCP from any address and has no SRTP replay protection, so a packet
 * captured on the network and re-sent would be decrypted and forwarded. By the first byte
 * (RFC 7983):
 * - STUN (0-3) and DTLS (20-63) go to werift from anywhere: ICE connectivity and consent checks
 *   (authenticated by werift) and the handshake come before a pair is selected;
 * - RTP and RTCP (128-191) are taken only once werift's ICE nominated a pair, and only from its
 *   remote address and port or from those of another pair that passed a connectivity check, both
 *   ways authenticated with the ICE password (a browser may move its media to a pair it prefers
 *   after werift, as the controlled agent, kept the first one nominated: seen with Chromium on a
 *   host with two addresses). RTP then goes to the fast data plane (`rtpHandler`), or,
 *   on werift's path, to werift after a replay check (so werift never decrypts a replay, whose
 *   sequence number could also move werift's rollover counter); RTCP goes to werift;
 * - anything else is dropped.
 * Every drop is counted by reason. Per datagram: a byte test, two property reads and a string and
 * number comparison; nothing allocated.
 */
export class SocketGuard {
  readonly #connection: IceConnectionLike;
  readonly #drops: MediaDrops;
  readonly #streams: ReadonlyMap<number, ReceivedStream>;
  readonly #uninstalls: (() => void)[] = [];
  /** The listener in front of werift on each guarded socket (see `deliver`). */
  readonly #listeners = new Map<Socket, (data: Buffer, info: RemoteInfo) => void>();
  /** The last pair other than the nominated one that media came from (see #fromValidatedPair). */
  #alternate: CandidatePairLike | null = null;
  /**
   * Where RTP from the selected pair goes once a data plane of the relay's own runs (null: to
   * werift): the JS fast plane decrypts it; for the native plane, whose threads take RTP from the
   * pair it was given, RTP reaching here came from another validated pair (see `deliver`).
   */
  rtpHandler: ((packet: Buffer, info: RemoteInfo) => void) | null = null;

  private constructor(
    connection: IceConnectionLike,
    transports: UdpTransportLike[],
    drops: MediaDrops,
    streams: ReadonlyMap<number, ReceivedStream>,
  ) {
    this.#connection = connection;
    this.#drops = drops;
    this.#streams = streams;
    for (const transport of transports) {
      const socket = transport.socket;
      // werift's own listener (its UdpTransport) records the sender and hands the datagram to ICE.
      const untap = tapDatagrams(socket, (werift) => {
        const listener = (data: Buffer, info: RemoteInfo): void => {
          // A throw here would be an uncaught exception in a socket event, ending the server: a
          // datagram that trips anything (a malformed packet, a socket closing under it) is dropped.
          try {
            if (this.#admit(data, info, transport)) for (const l of werift) l.call(socket, data, info);
          } catch {
            this.#drops.malformed++;
          }
        };
        this.#listeners.set(socket, listener);
        return listener;
      });
      this.#uninstalls.push(untap);
    }
  }

  /**
   * Guards the UDP sockets of a peer connection whose answer is made (its sockets are bound), or
   * tells why it cannot. `streams` are the leg's received SSRCs (rollover counters and replay
   * windows), read for werift's path.
   */
  static install(
    pc: RTCPeerConnection,
    drops: MediaDrops,
    streams: ReadonlyMap<number, ReceivedStream>,
  ): SocketGuard | string {
    const connection = iceConnectionOf(pc);
    if (typeof connection === "string") return connection;
    const transports = iceSocketsOf(connection);
    if (typeof transports === "string") return transports;
    return new SocketGuard(connection, transports, drops, streams);
  }

  /** The connection the guarded sockets belong to (the fast data plane sends on its nominated pair). */
  get connection(): IceConnectionLike {
    return this.#connection;
  }

  /**
   * A datagram read from `socket` by someone else than Node (the native plane's media thread,
   * which hands over everything that is not RTP from its leg's remote end), taken exactly as if
   * it had come from the socket: the same rules, drops and werift listeners.
   */
  deliver(socket: Socket, data: Buffer, address: string, port: number): void {
    const family = address.includes(":") ? "IPv6" : "IPv4";
    this.#listeners.get(socket)?.(data, { address, port, family, size: data.length });
  }

  /** Hot path: true when werift should see the datagram; false when it was handled or dropped. */
  #admit(data: Buffer, info: RemoteInfo, transport: UdpTransportLike): boolean {
    const b0 = data.length > 0 ? data[0]! : 255;
    if (b0 < 4 || (b0 >= 20 && b0 <= 63)) return true;
    if (b0 < 128 || b0 > 191 || data.length < 8) {
      this.#drops.malformed++;
      return false;
    }
    const pair = this.#connection.nominated;
    if (!pair || (!isFrom(pair, info, transport) && !this.#fromValidatedPair(info, transport))) {
      this.#drops.wrong_source++;
      return false;
    }
    const b1 = data[1]!;
    if (b1 >= 192 && b1 <= 223) return true; // RTCP (RFC 5761)
    if (data.length < 12) {
      this.#drops.malformed++;
      return false;
    }
    const fast = this.rtpHandler;
    if (fast) {
      fast(data, info);
      return false;
    }
    const stream = this.#streams.get(data.readUInt32BE(8));
    if (!stream) return true; // werift drops an SSRC it does not know; the leg learns the others
    const seq = data.readUInt16BE(2);
    const verdict = stream.replay.check(packetIndex(stream.rocs.guess(seq), seq));
    if (verdict === ReplayVerdict.FRESH) return true;
    if (verdict === ReplayVerdict.REPLAY) this.#drops.replay++;
    else this.#drops.too_old++;
    return false;
  }

  /**
   * Whether the datagram comes from the remote end of a pair in ICE's valid list other than the
   * nominated one. The pair found last is checked first, so a client sending on such a pair costs
   * one more comparison per packet; other senders cost a scan of the (short) check list.
   */
  #fromValidatedPair(info: RemoteInfo, transport: UdpTransportLike): boolean {
    const last = this.#alternate;
    if (last && last.state === PAIR_SUCCEEDED && isFrom(last, info, transport)) return true;
    const pairs = this.#connection.checkList ?? [];
    for (let i = 0; i < pairs.length; i++) {
      const pair = pairs[i]!;
      if (pair.state === PAIR_SUCCEEDED && isFrom(pair, info, transport)) {
        this.#alternate = pair;
        return true;
      }
    }
    return false;
  }

  /** Hands the sockets back to werift alone. */
  uninstall(): void {
    for (const uninstall of this.#uninstalls) uninstall();
    this.#uninstalls.length = 0;
    this.#listeners.clear();
    this.rtpHandler = null;
  }
}

/** Whether a datagram that arrived on `transport` from `info` comes from `pair`'s remote candidate. */
function isFrom(pair: CandidatePairLike, info: RemoteInfo, transport: UdpTransportLike): boolean {
  const remote = pair.remoteCandidate;
  return (
    pair.protocol.transport === transport &&
    info.port === remote.port &&
    (info.address === remote.host || sameScopedAddress(info.address, remote.host))
  );
}

/** werift strips an IPv6 zone ("%eth0") from the addresses it records; the socket reports it. */
function sameScopedAddress(received: string, remote: string): boolean {
  const zone = received.indexOf("%");
  return zone > 0 && received.slice(0, zone) === remote;
}
