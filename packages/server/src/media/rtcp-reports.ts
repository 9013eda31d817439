import {
  compactNtp,
  ntpTime,
  type RTCRtpSender,
  RtcpReceiverInfo,
  RtcpRrPacket,
  RtcpSenderInfo,
  RtcpSrPacket,
  receiverReportState,
  senderReportState,
  timestampSeconds,
} from "@parley/rtc";
import type { ReceptionStats } from "./reception-stats.js";

/*
 * The RTCP reports of a leg on the fast data plane, whose RTP never passes werift's sender or
 * receiver: the leg counts what it sends and receives, and sends the reports through werift's
 * DTLS transport, recording them where werift looks (see @parley/rtc's werift-internals).
 */

/** werift's RTCRtpReceiver (the type @parley/rtc's internals take). */
type WeriftReceiver = Parameters<typeof receiverReportState>[0];

/** How often (ms) the fast path refreshes a slot's report time pair: werift's NTP clock is costly. */
const REPORT_CLOCK_MS = 200;
/**
 * RFC 3550 6.2: RTCP at most every 5 s on average (randomised between 0.5 and 1.5 times the
 * interval, so legs do not synchronise); the reports are checked for once a second.
 */
const REPORT_INTERVAL_MS = 5000;
export const REPORT_CHECK_MS = 1000;

/** werift's sendRtcp settles when the packet is handed to the socket; send failures are dropped packets. */
function ignoreSendError(): void {}

/** The RTCP sender reports of one slot (one outgoing stream) on the fast data plane. */
export class SenderReports {
  readonly #sender: RTCRtpSender;
  /** When the fast path last took the (NTP, RTP) time pair for the sender reports (ms). */
  #reportedAt = 0;
  /** When the next sender report is due (ms). */
  #nextReportAt = 0;

  constructor(sender: RTCRtpSender) {
    this.#sender = sender;
  }

  /**
   * Hot path: counts a fast-path packet for the sender reports, keeping werift's counts and time
   * pair current (see SenderReportState); `now` is when the packet arrived (ms).
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

  /** Sends the sender report if it is due and the slot has sent audio. */
  sendIfDue(now: number): void {
    const sender = senderReportState(this.#sender);
    if (sender.packetCount === 0 || now < this.#nextReportAt) return;
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
    sender.dtlsTransport.sendRtcp([report]).catch(ignoreSendError);
  }

  /** The loss the listener's receiver reports on this slot give (0..1), undefined before any. */
  get remoteFractionLost(): number | undefined {
    return senderReportState(this.#sender).remoteFractionLost;
  }
}

/** Stops werift's own receiver reports, which would carry stale numbers once it sees no RTP. */
export function stopWeriftReceiverReports(receiver: WeriftReceiver): void {
  receiverReportState(receiver).rtcpCancel?.abort();
}

/**
 * Sends a receiver report on the client's stream through `via` (a sender of the same
 * connection): the reception statistics (RFC 3550 A.3, A.8), `fraction` lost (0..1) and the last
 * sender report's time werift's `receiver` recorded (for the client's round trip).
 */
export function sendReceiverReport(
  receiver: WeriftReceiver,
  stats: ReceptionStats,
  fraction: number,
  via: RTCRtpSender | undefined,
): void {
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
  if (via) senderReportState(via).dtlsTransport.sendRtcp([report]).catch(ignoreSendError);
}
