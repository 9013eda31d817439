import {
  compactNtp,
  ntpTime,
  type RTCRtpReceiver,
  type RTCRtpSender,
  RtcpReceiverInfo,
  RtcpRrPacket,
  RtcpSenderInfo,
  RtcpSrPacket,
  timestampSeconds,
} from "werift";
import type { ReceptionStats } from "./reception-stats.js";
import { REPORT_INTERVAL_MS } from "./report-pacing.js";
import { receiverReportState, senderReportState } from "./werift-internals.js";

/*
 * The RTCP reports of a peer connection whose RTP never passes werift's sender or receiver (a
 * data plane of its own): the caller counts what it sends and receives, and the reports go out
 * through werift's DTLS transport, recorded where werift looks (see werift-internals).
 */

/** How often (ms) `count` refreshes the report time pair: werift's NTP clock is costly. */
const REPORT_CLOCK_MS = 200;
/** How often (ms) a connection's reports are checked for (see ReportPacing for when they go out). */
export const REPORT_CHECK_MS = 1000;

/** werift's sendRtcp settles when the packet is handed to the socket; send failures are dropped packets. */
function ignoreSendError(): void {}

/** The RTCP sender reports of one outgoing stream (one RTCRtpSender) whose RTP werift does not send. */
export class SenderReports {
  readonly #sender: RTCRtpSender;
  /** When `count` last took the (NTP, RTP) time pair for the sender reports (ms). */
  #reportedAt = 0;
  /** When the next sender report is due (ms). */
  #nextReportAt = 0;

  constructor(sender: RTCRtpSender) {
    this.#sender = sender;
  }

  /**
   * Hot path: counts a packet sent past werift for the sender reports, keeping werift's counts and
   * time pair current (see SenderReportState); `now` is when the packet arrived (ms).
   */
  count(timestamp: number, bytes: number, now: number): void {
    const sender = senderReportState(this.#sender);
    sender.packetCount = (sender.packetCount + 1) >>> 0;
    sender.octetCount += bytes;
    if (now - this.#reportedAt < REPORT_CLOCK_MS) return;
    this.#reportedAt = now;
    sender.ntpTimestamp = ntpTime();
    sender.rtpTimestamp = timestamp;
  }

  /**
   * Sets the counts and time pair from a data plane that counts for itself (the native plane's
   * per-slot statistics): `packets` and `octets` sent so far, the RTP `timestamp` of the last
   * packet and when it was sent (`sentAt`, ms since the epoch). Called before `sendIfDue`.
   */
  record(packets: number, octets: number, timestamp: number, sentAt: number): void {
    const sender = senderReportState(this.#sender);
    sender.packetCount = packets >>> 0;
    sender.octetCount = octets >>> 0;
    if (sentAt === this.#reportedAt) return;
    this.#reportedAt = sentAt;
    sender.ntpTimestamp = ntpFromEpochMs(sentAt);
    sender.rtpTimestamp = timestamp >>> 0;
  }

  /** Sends the sender report if it is due and the stream has sent RTP. */
  sendIfDue(now: number): void {
    const report = this.dueReport(now);
    if (report) sendRtcp(this.#sender, [report]);
  }

  /**
   * The sender report if it is due and the stream has sent RTP (recorded as sent: the caller
   * sends it now, e.g. in one compound packet with other reports of the connection), else null.
   */
  dueReport(now: number): RtcpSrPacket | null {
    return now < this.#nextReportAt ? null : this.report(now);
  }

  /**
   * The sender report now, whatever this stream's own pacing says (the caller paces the
   * connection's reports: see ReportPacing), if the stream has sent RTP (recorded as sent), else null.
   */
  report(now: number): RtcpSrPacket | null {
    const sender = senderReportState(this.#sender);
    if (sender.packetCount === 0) return null;
    this.#nextReportAt = now + REPORT_INTERVAL_MS * (0.5 + Math.random());
    const report = new RtcpSrPacket({
      ssrc: sender.ssrc,
      senderInfo: new RtcpSenderInfo({
        ntpTimestamp: sender.ntpTimestamp,
        rtpTimestamp: sender.rtpTimestamp,
        packetCount: sender.packetCount,
        octetCount: sender.octetCount,
      }),
    });
    sender.lastSRtimestamp = compactNtp(sender.ntpTimestamp);
    sender.lastSentSRTimestamp = now / 1000;
    return report;
  }

  /** The loss the remote end's receiver reports on this stream give (0..1), undefined before any. */
  get remoteFractionLost(): number | undefined {
    return senderReportState(this.#sender).remoteFractionLost;
  }
}

/** Seconds from the NTP epoch (1900) to the Unix epoch (1970). */
const NTP_UNIX_OFFSET_S = 2_208_988_800n;

/** A time in ms since the Unix epoch as a 64-bit NTP timestamp (32.32 fixed point, RFC 3550 4). */
function ntpFromEpochMs(ms: number): bigint {
  const seconds = Math.floor(ms / 1000);
  const fraction = Math.floor(((ms - seconds * 1000) / 1000) * 2 ** 32);
  return ((BigInt(seconds) + NTP_UNIX_OFFSET_S) << 32n) | BigInt(fraction);
}

/** Stops werift's own receiver reports, which would carry stale numbers once it sees no RTP. */
export function stopWeriftReceiverReports(receiver: RTCRtpReceiver): void {
  receiverReportState(receiver).rtcpCancel?.abort();
}

/**
 * Sends a receiver report on the remote end's stream through `via` (a sender of the same
 * connection): the reception statistics (RFC 3550 A.3, A.8), `fraction` lost (0..1) and the last
 * sender report's time werift's `receiver` recorded (for the remote end's round trip).
 */
export function sendReceiverReport(
  receiver: RTCRtpReceiver,
  stats: ReceptionStats,
  fraction: number,
  via: RTCRtpSender | undefined,
): void {
  if (via) sendRtcp(via, [receiverReport(receiver, stats, fraction)]);
}

/** RTCP reports this module makes: sender reports and receiver reports. */
export type RtcpReport = RtcpSrPacket | RtcpRrPacket;

/**
 * Sends `packets` as one compound RTCP packet (RFC 3550 6.1: reports first, as these all are)
 * through `via`'s DTLS transport: one SRTCP protection and one datagram for all of them.
 */
export function sendRtcp(via: RTCRtpSender, packets: RtcpReport[]): void {
  senderReportState(via).dtlsTransport.sendRtcp(packets).catch(ignoreSendError);
}

/**
 * The receiver report on the remote end's stream (see sendReceiverReport), to send with
 * `sendRtcp`, alone or after the connection's due sender reports.
 */
export function receiverReport(receiver: RTCRtpReceiver, stats: ReceptionStats, fraction: number): RtcpRrPacket {
  const state = receiverReportState(receiver);
  let lsr = 0;
  let dlsr = 0;
  const lastSr = state.lastSRtimestamp[stats.ssrc];
  if (lastSr) {
    lsr = lastSr;
    const delay = timestampSeconds() - (state.receiveLastSRTimestamp[stats.ssrc] ?? 0);
    if (delay > 0 && delay < 65536) dlsr = Math.floor(delay * 65536);
  }
  const report = new RtcpRrPacket({
    ssrc: state.rtcpSsrc,
    reports: [
      new RtcpReceiverInfo({
        ssrc: stats.ssrc,
        fractionLost: Math.min(255, Math.floor(fraction * 256)),
        packetsLost: Math.max(0, Math.min(0x7fffff, stats.expected - stats.received)),
        highestSequence: stats.max >>> 0,
        jitter: Math.floor(stats.jitter),
        lsr,
        dlsr,
      }),
    ],
  });
  return report;
}
