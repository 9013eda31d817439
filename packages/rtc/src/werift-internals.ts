import type { RemoteInfo, Socket } from "node:dgram";
import type { RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RtcpRrPacket, RtcpSrPacket } from "werift";

/*
 * werift's private internals: the one place that reads them. Written against werift 0.24.4 (the
 * version packages/rtc/package.json pins); packages/rtc/test/werift-internals.test.ts connects two
 * real peers and fails loudly when a werift upgrade moves any of them.
 */

/** A UDP transport of werift's ICE: its socket, bound from the answer on. */
export interface UdpTransportLike {
  socket: Socket;
  closed: boolean;
}
export interface StunProtocolLike {
  transport?: UdpTransportLike;
}
/** A candidate pair. (Its `remoteAddr` getter makes an array per call: the hot paths read `remoteCandidate`.) */
export interface CandidatePairLike {
  remoteCandidate: { host: string; port: number };
  protocol: StunProtocolLike;
  /** werift's CandidatePairState: 3 is SUCCEEDED (a connectivity check passed both ways). */
  state: number;
  /** The pair's check counts (its getStats), and the request ids it saw (retransmissions counted). */
  requestsReceived?: number;
  responsesSent?: number;
  noteIncomingRequest?: (transactionIdHex: string) => boolean;
}
export interface IceConnectionLike {
  nominated?: CandidatePairLike;
  checkList?: CandidatePairLike[];
  protocols?: StunProtocolLike[];
  canSendApplicationData?: () => boolean;
  /** The local ICE credentials and role (what werift answers connectivity checks with). */
  localUsername?: string;
  localPassword?: string;
  iceControlling?: boolean;
  /** RFC 7675 consent state: what canSendApplicationData reads, and werift's own check loop. */
  state?: string;
  consentFresh?: boolean;
  stopConsentLifecycle?: () => void;
  queryConsent?: () => void;
  setState?: (state: string) => void;
}
/** werift's CandidatePairState SUCCEEDED. */
export const PAIR_SUCCEEDED = 3;

/**
 * Stops werift's own consent checks on `connection` (a Binding request every 4 to 6 s, a STUN
 * transaction and its timers each) and keeps its consent to send fresh: the caller now decides
 * consent from the remote agent's checks (see expireConsent). False when werift's consent state is
 * not found (its checks then go on).
 */
export function takeOverConsent(connection: IceConnectionLike): boolean {
  if (typeof connection.stopConsentLifecycle !== "function" || typeof connection.consentFresh !== "boolean") {
    return false;
  }
  if (connection.state !== "connected" && connection.state !== "completed") return false;
  connection.stopConsentLifecycle();
  connection.consentFresh = true;
  return true;
}

/** Gives consent back to werift (taken by takeOverConsent): its own checks start again. */
export function resumeConsent(connection: IceConnectionLike): void {
  if (connection.state !== "connected" && connection.state !== "completed") return;
  connection.queryConsent?.();
}

/**
 * Consent to send is lost on `connection` (taken over by takeOverConsent): nothing more may be
 * sent on its pair, and the connection fails as werift's own consent expiry makes it fail.
 */
export function expireConsent(connection: IceConnectionLike): void {
  if (connection.state === "closed" || connection.state === "failed") return;
  connection.stopConsentLifecycle?.();
  connection.consentFresh = false;
  connection.setState?.("failed");
}

/** The ICE connection of a (bundled) peer connection, or why there is none. */
export function iceConnectionOf(pc: RTCPeerConnection): IceConnectionLike | string {
  const transports = pc.iceTransports;
  if (transports.length !== 1) return `${transports.length} ICE transports (the offer is not bundled)`;
  return transports[0]!.connection as unknown as IceConnectionLike;
}

/** The UDP transports (bound sockets with werift's listener) of an ICE connection, or why there are none. */
export function iceSocketsOf(connection: IceConnectionLike): UdpTransportLike[] | string {
  const transports = (connection.protocols ?? []).map((protocol) => protocol.transport);
  if (
    !Array.isArray(connection.checkList) ||
    transports.length === 0 ||
    transports.some((t) => !t?.socket || t.socket.listenerCount("message") === 0)
  ) {
    return "werift's ICE sockets not found";
  }
  return transports as UdpTransportLike[];
}

/** Where a connected peer's media goes: the nominated pair's socket and remote end (null before). */
export interface NominatedPath {
  socket: Socket;
  remoteHost: string;
  remotePort: number;
}

export function nominatedPath(pc: RTCPeerConnection): NominatedPath | null {
  const connection = pc.iceTransports[0]?.connection as unknown as IceConnectionLike | undefined;
  const pair = connection?.nominated;
  const socket = pair?.protocol.transport?.socket;
  if (!pair || !socket) return null;
  return { socket, remoteHost: pair.remoteCandidate.host, remotePort: pair.remoteCandidate.port };
}

/** One direction's SRTP context in werift: its master keys and the session keys derived from them. */
export interface SrtpContextLike {
  masterKey?: Buffer;
  masterSalt?: Buffer;
  srtpSessionKey?: Buffer;
  srtpSessionSalt?: Buffer;
  srtpSessionAuthTag?: Buffer;
}
/** werift's SRTP session of a DTLS transport: the negotiated protection profile and both contexts. */
export interface SrtpSessionLike {
  config?: { profile?: number };
  localContext?: SrtpContextLike;
  remoteContext?: SrtpContextLike;
}

/** The SRTP session of a (bundled) peer connection (empty before DTLS is up), or why there is none. */
export function srtpSessionOf(pc: RTCPeerConnection): SrtpSessionLike | string {
  const dtlsTransports = pc.dtlsTransports;
  if (dtlsTransports.length !== 1) return `${dtlsTransports.length} DTLS transports (the offer is not bundled)`;
  return (dtlsTransports[0]!.srtp as unknown as SrtpSessionLike | undefined) ?? {};
}

/** The SRTP protection profile the peer's first DTLS transport negotiated (undefined before). */
export function srtpProfileOf(pc: RTCPeerConnection): number | undefined {
  return (pc.dtlsTransports[0]?.srtp as unknown as SrtpSessionLike | undefined)?.config?.profile;
}

/**
 * Restricts the DTLS-SRTP protection profiles the peer offers or accepts to `profiles`, in that
 * order (werift keeps them in a private list per DTLS transport; it offers two). Takes effect for
 * a handshake not yet started.
 */
export function restrictSrtpProfiles(pc: RTCPeerConnection, profiles: number[]): void {
  for (const dtls of pc.dtlsTransports) (dtls as unknown as { srtpProfiles: number[] }).srtpProfiles = [...profiles];
}

export type DatagramListener = (data: Buffer, info: RemoteInfo) => void;

/**
 * Puts one 'message' listener in front of werift's own (its UdpTransport, which records the
 * sender and hands the datagram to ICE): `listen` gets werift's listeners, to call for what
 * werift should still see, and returns the listener. Returns how to give the socket back.
 */
export function tapDatagrams(socket: Socket, listen: (werift: DatagramListener[]) => DatagramListener): () => void {
  const werift = socket.listeners("message") as DatagramListener[];
  socket.removeAllListeners("message");
  const listener = listen(werift);
  socket.on("message", listener);
  return () => {
    socket.off("message", listener);
    for (const l of werift) socket.on("message", l);
  };
}

/**
 * werift's RTCRtpSender state behind RTCP sender reports (fields of 0.24.4, public in its
 * JavaScript). A data plane that sends RTP past the sender keeps the counts and the time pair
 * current and sends the reports itself, and records each one where werift looks for it, so werift
 * still computes the round trip from the remote end's receiver reports.
 */
export interface SenderReportState {
  ssrc: number;
  ntpTimestamp: bigint;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  /** The last report's NTP time, middle 32 bits (the client echoes it as LSR), and when it was sent (s). */
  lastSRtimestamp: number;
  lastSentSRTimestamp: number;
  dtlsTransport: { sendRtcp(packets: (RtcpSrPacket | RtcpRrPacket)[]): Promise<unknown> };
  /** The loss the remote end's receiver reports give (0..1, RFC 3550 fraction lost). */
  remoteFractionLost?: number;
}

export function senderReportState(sender: RTCRtpSender): SenderReportState {
  return sender as unknown as SenderReportState;
}

/**
 * werift's RTCRtpReceiver state behind its receiver reports (0.24.4, public in its JavaScript):
 * when it sees no RTP, its reports would carry stale numbers; a data plane stops its report loop
 * and sends its own, with the remote end's sender-report times werift still records.
 */
export interface ReceiverReportState {
  rtcpSsrc: number;
  rtcpCancel?: AbortController;
  lastSRtimestamp: Record<number, number>;
  receiveLastSRTimestamp: Record<number, number>;
}

export function receiverReportState(receiver: RTCRtpReceiver): ReceiverReportState {
  return receiver as unknown as ReceiverReportState;
}
