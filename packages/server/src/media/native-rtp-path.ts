import type { Socket } from "node:dgram";
import {
  answerConsentCheck,
  type CandidatePairLike,
  consentCredentials,
  countAnsweredCheck,
  expireConsent,
  type IceConnectionLike,
  isSupportedProfile,
  type NativeLeg,
  type NativeLegOptions,
  type NativePlane,
  PAIR_SUCCEEDED,
  PROFILE_AEAD_AES_128_GCM,
  type RTCPeerConnection,
  resumeConsent,
  type SrtpContextLike,
  srtpSessionOf,
  takeOverConsent,
  type UdpHandle,
  udpHandleOf,
} from "@parley/rtc";
import type { MediaDrops } from "./media-drops.js";
import type { ForwardTotals, MediaLegCounters } from "./media-leg-counters.js";
import { NativeLegReadings } from "./native-leg-readings.js";
import type { SocketGuard } from "./socket-guard.js";

/** RTP from the client, as the native plane hands it to JavaScript (see NativeLegOptions.onRtp). */
export type NativeRtpHandler = NonNullable<NativeLegOptions["onRtp"]>;

/** What a connected leg gives the native plane (see NativeRtpPath.attach). */
export interface NativeAttachment {
  pc: RTCPeerConnection;
  guard: SocketGuard;
  /** The SSRCs the client declared; RTP with any other is dropped. */
  ssrcs: readonly number[];
  /** The RFC 6464 header extension id, null when none was negotiated. */
  audioLevelId: number | null;
  /** The leg's outgoing streams, slot 0 first. */
  slots: readonly { ssrc: number; payloadType: number }[];
  /** The leg's counters so far (the native counts add to them). */
  counters: MediaLegCounters;
  /** Relay-wide forwarded and dropped totals the leg's native counts are added to. */
  totals: ForwardTotals;
  drops: MediaDrops;
  /** RTP for outputs that are not native legs (only while forwarding to JS is on). */
  onRtp: NativeRtpHandler;
  /** The leg's speaking state changed (seen by `poll`). */
  onSpeaking: (speaking: boolean) => void;
  /** The leg left the plane (`detach`: the leg closed, or werift closed its socket). */
  onDetached: (path: NativeRtpPath) => void;
}

/**
 * RFC 7675's consent timeout: with no authenticated check from the client for this long, the
 * relay stops sending to it and the leg fails (werift's own expiry, and mediasoup's ICE-lite
 * iceConsentTimeout, use the same 30 s).
 */
export const CONSENT_TIMEOUT_MS = 30_000;

/** A consent response that could not be sent is a lost datagram: the client checks again. */
function ignoreSendError(): void {}

/** werift keeps a GCM master salt (12 bytes, RFC 7714) zero-padded to 14; AES-CM's is 14. */
function masterKeys(context: SrtpContextLike | undefined, profile: number) {
  if (!context?.masterKey || !context.masterSalt) return null;
  const saltBytes = profile === PROFILE_AEAD_AES_128_GCM ? 12 : 14;
  if (context.masterSalt.length < saltBytes) return null;
  return {
    masterKey: Buffer.from(context.masterKey),
    masterSalt: Buffer.from(context.masterSalt.subarray(0, saltBytes)),
  };
}

/**
 * The native data plane for one connected leg: the addon's media thread reads the leg's UDP
 * socket (Node stops reading it), authenticates, decrypts and routes the client's RTP and sends
 * what the leg's slots carry, SRTP-protected; JavaScript sees no RTP unless a JS-plane leg needs
 * it. Everything else that arrives (STUN consent checks, DTLS, SRTCP, datagrams from other
 * addresses) comes back through the leg's SocketGuard as if Node had read it, so werift keeps
 * ICE, DTLS and RTCP and the guard's rules and drop counts hold.
 *
 * werift still owns the socket: a close of it (werift closing the peer connection) first takes
 * the leg off the native plane, so no media thread touches a descriptor number Node has reused.
 */
export class NativeRtpPath {
  readonly profile: number;
  readonly thread: number;
  readonly leg: NativeLeg;
  readonly readings: NativeLegReadings;
  readonly #guard: SocketGuard;
  readonly #handle: UdpHandle;
  readonly #restoreClose: () => void;
  readonly #totals: ForwardTotals;
  readonly #drops: MediaDrops;
  readonly #onSpeaking: (speaking: boolean) => void;
  readonly #onDetached: (path: NativeRtpPath) => void;
  readonly #onDetach: (path: NativeRtpPath) => void;
  /** The pair werift had nominated when last looked at, and the remote end the native leg uses. */
  #nominated: CandidatePairLike | undefined;
  #remote: string;
  #canSend = true;
  /**
   * Whether consent is decided here from the client's checks (werift's own checks stopped), the
   * nominated pair's authenticated checks counted at the last sync, and when that count last moved.
   */
  #consentTaken: boolean;
  #checksSeen: number;
  #lastCheckAt: number;
  #speaking = false;
  #forwardToJs = false;
  #detached = false;

  private constructor(
    a: NativeAttachment,
    plane: NativePlane,
    thread: number,
    profile: number,
    keys: { local: NativeLegOptions["local"]; remote: NativeLegOptions["remote"] },
    socket: Socket,
    handle: UdpHandle,
    pair: CandidatePairLike,
    onDetach: (path: NativeRtpPath) => void,
  ) {
    this.profile = profile;
    this.thread = thread;
    this.#guard = a.guard;
    this.#handle = handle;
    this.#totals = a.totals;
    this.#drops = a.drops;
    this.#onSpeaking = a.onSpeaking;
    this.#onDetached = a.onDetached;
    this.#onDetach = onDetach;
    this.#nominated = pair;
    const remote = pair.remoteCandidate;
    this.#remote = `${remote.host}:${remote.port}`;
    const guard = a.guard;
    handle.recvStop();
    try {
      this.leg = plane.addLeg({
        thread,
        fd: handle.fd,
        remoteAddress: remote.host,
        remotePort: remote.port,
        profile,
        local: keys.local,
        remote: keys.remote,
        ssrcs: a.ssrcs.map((ssrc) => ssrc >>> 0),
        audioLevelId: a.audioLevelId ?? -1,
        slots: a.slots.map(({ ssrc, payloadType }) => ({ ssrc, payloadType })),
        onDatagram: (data, address, port) => {
          if (!this.#answerConsentCheck(socket, data, address, port)) guard.deliver(socket, data, address, port);
        },
        onRtp: a.onRtp,
      });
    } catch (error) {
      handle.recvStart();
      throw error;
    }
    this.readings = new NativeLegReadings(this.leg.stats, a.counters);
    this.#consentTaken = takeOverConsent(a.guard.connection);
    this.#checksSeen = pair.requestsReceived ?? 0;
    this.#lastCheckAt = Date.now();
    // RTP that reaches the guard came from a validated pair other than the native leg's remote
    // end: the client moved its media there (see SocketGuard); the native leg follows it.
    guard.rtpHandler = (_packet, info) => this.#follow(info.address, info.port);
    const close = socket.close;
    socket.close = ((...args: Parameters<Socket["close"]>) => {
      this.detach();
      return close.apply(socket, args);
    }) as Socket["close"];
    this.#restoreClose = () => {
      if (socket.close !== close) socket.close = close;
    };
  }

  /**
   * Takes over RTP of a connected, guarded werift peer connection on media thread `thread` of
   * `plane`, or tells why it cannot (the leg then stays on a JavaScript plane): SRTP up with a
   * profile the plane supports, one bundled transport with a nominated pair, werift's master keys
   * and the socket's descriptor found. `onDetach` runs once when the leg leaves the plane.
   */
  static attach(
    a: NativeAttachment,
    plane: NativePlane,
    thread: number,
    onDetach: (path: NativeRtpPath) => void,
  ): NativeRtpPath | string {
    const srtp = srtpSessionOf(a.pc);
    if (typeof srtp === "string") return srtp;
    const profile = srtp.config?.profile;
    if (profile === undefined || !isSupportedProfile(profile)) return `SRTP profile ${profile} not supported`;
    const local = masterKeys(srtp.localContext, profile);
    const remote = masterKeys(srtp.remoteContext, profile);
    if (!local || !remote) return "werift's SRTP master keys not found";
    const connection = a.guard.connection;
    if (typeof connection.canSendApplicationData !== "function") return "werift's ICE connection not found";
    const pair = connection.nominated;
    const socket = pair?.protocol.transport?.socket;
    if (!pair || !socket || pair.protocol.transport?.closed) return "no nominated ICE pair with an open socket";
    const handle = udpHandleOf(socket);
    if (typeof handle === "string") return handle;
    try {
      return new NativeRtpPath(a, plane, thread, profile, { local, remote }, socket, handle, pair, onDetach);
    } catch (error) {
      return `the native plane refused the leg: ${(error as Error).message}`;
    }
  }

  setAudioLevelExtension(id: number | null): void {
    if (!this.#detached) this.leg.setAudioLevelId(id ?? -1);
  }

  /** Slot `slot` carries `source`'s audio natively (null: nothing, or a source on another plane). */
  route(slot: number, source: NativeRtpPath | null): void {
    if (this.#detached) return;
    this.leg.route(slot, source && !source.#detached ? source.leg : null);
  }

  /** Whether the client's RTP also comes to JavaScript (for outputs on other planes). */
  setForwardToJs(on: boolean): void {
    if (this.#detached || on === this.#forwardToJs) return;
    this.#forwardToJs = on;
    this.leg.setForwardToJs(on);
  }

  /**
   * Relay-wide poll (every ~100 ms): reports a change of the leg's speaking state and, when `sync`,
   * follows werift's nominated pair and ICE consent (RFC 7675: nothing is sent without it). The
   * forwarded and dropped counts are not read here: the relay's totals take them when they are
   * read (`harvest`) and when the leg leaves the plane.
   */
  poll(sync: boolean): void {
    if (this.#detached) return;
    const speaking = this.readings.speaking;
    if (speaking !== this.#speaking) {
      this.#speaking = speaking;
      this.#onSpeaking(speaking);
    }
    if (sync) this.#sync();
  }

  /** The speaking state as `poll` last saw it (what the "speaking" events said). */
  get speaking(): boolean {
    return this.#speaking;
  }

  /** Adds the leg's latest counts to the relay-wide totals now (before they are read). */
  harvest(): void {
    if (!this.#detached) this.readings.harvest(this.#totals, this.#drops);
  }

  /**
   * Takes the leg off the native plane (its last counts added to the totals) and gives the socket
   * back to Node. Idempotent; runs before the socket closes.
   */
  detach(): void {
    if (this.#detached) return;
    this.readings.harvest(this.#totals, this.#drops);
    this.#detached = true;
    this.leg.close();
    if (this.#consentTaken) resumeConsent(this.#guard.connection);
    this.#restoreClose();
    if (this.#guard.rtpHandler) this.#guard.rtpHandler = null;
    try {
      this.#handle.recvStart();
    } catch {
      // the socket is closed already
    }
    this.#onDetach(this);
    this.#onDetached(this);
  }

  #sync(): void {
    const connection = this.#guard.connection;
    const pair = connection.nominated;
    if (pair && pair !== this.#nominated) {
      this.#nominated = pair;
      this.#follow(pair.remoteCandidate.host, pair.remoteCandidate.port);
      // werift started its checks again on the new pair: consent stays decided here.
      if (this.#consentTaken) {
        this.#consentTaken = takeOverConsent(connection);
        this.#checksSeen = pair.requestsReceived ?? 0;
        this.#lastCheckAt = Date.now();
      }
    }
    if (this.#consentTaken) this.#watchConsent(connection, pair);
    const canSend = connection.canSendApplicationData?.() ?? false;
    if (canSend !== this.#canSend) {
      this.#canSend = canSend;
      this.leg.setCanSend(canSend);
    }
  }

  /**
   * Consent from the client's side (the way an ICE-lite server keeps it, RFC 7675 and RFC 8445
   * 2.5): each authenticated Binding request from the client on the nominated pair, answered here
   * or by werift, renews it; none for CONSENT_TIMEOUT_MS and the relay stops sending and the leg
   * fails, as werift's own expiry does. The client's checks prove it still wants the media at that
   * address; the relay's own checks (werift's, a STUN transaction and timers per leg every 4 to 6
   * s) added nothing to that and were the event loop's largest per-leg cost.
   */
  #watchConsent(connection: IceConnectionLike, pair: CandidatePairLike | undefined): void {
    const now = Date.now();
    const seen = pair?.requestsReceived ?? 0;
    if (seen !== this.#checksSeen) {
      this.#checksSeen = seen;
      this.#lastCheckAt = now;
    } else if (now - this.#lastCheckAt > CONSENT_TIMEOUT_MS) {
      this.#consentTaken = false;
      expireConsent(connection);
    }
  }

  /**
   * Answers the client's ICE consent check (a STUN Binding request every 4 to 6 s, RFC 7675) on
   * the leg's nominated pair here, with the response werift's agent would send and its counts, at
   * a fraction of the cost of werift's STUN parsing and messages (true: answered). Anything else
   * goes on to the guard and werift: other STUN, checks from elsewhere, nominations, role conflicts.
   */
  #answerConsentCheck(socket: Socket, data: Buffer, address: string, port: number): boolean {
    if (this.#detached || data.length < 20 || data[0] !== 0 || data[1] !== 1) return false;
    const pair = this.#nominated;
    const connection = this.#guard.connection;
    if (!pair || connection.nominated !== pair || pair.state !== PAIR_SUCCEEDED) return false;
    const remote = pair.remoteCandidate;
    if (remote.port !== port || remote.host !== address) return false;
    const credentials = consentCredentials(connection);
    if (!credentials) return false;
    const answer = answerConsentCheck(data, address, port, credentials);
    if (!answer) return false;
    try {
      // (throws if the socket closed under it: the datagram then goes the guard's way, as before)
      socket.send(answer.response, port, address, ignoreSendError);
    } catch {
      return false;
    }
    countAnsweredCheck(pair, answer.transactionId);
    return true;
  }

  #follow(address: string, port: number): void {
    const remote = `${address}:${port}`;
    if (this.#detached || remote === this.#remote) return;
    this.#remote = remote;
    this.leg.setRemote(address, port);
  }
}
