/**
 * @parley/rtc's RTCP reports for a data plane that sends and receives RTP past werift
 * (rtcp-reports.ts), between two real werift peers on loopback: the sender report reaches the
 * other peer's receiver, which records it; the receiver report, built from the reception
 * statistics, gives the sender its loss and round trip in werift's own stats.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  ReceptionStats,
  type RTCPeerConnection,
  receiverReportState,
  SenderReports,
  senderReportState,
  sendReceiverReport,
  stopWeriftReceiverReports,
} from "@parley/rtc";
import { waitFor } from "@parley/testkit";
import { closePeers, connectedPair } from "./peers.js";

after(closePeers);

function transceiverOf(pc: RTCPeerConnection) {
  const transceiver = pc.getTransceivers()[0];
  assert.ok(transceiver, "no transceiver");
  return transceiver;
}

/** The round trip (s) werift reports for the peer's outgoing stream, from the remote end's receiver reports. */
async function roundTrip(pc: RTCPeerConnection): Promise<number | undefined> {
  for (const stats of (await pc.getStats()).values()) {
    const s = stats as { type: string; roundTripTime?: number };
    if (s.type === "remote-inbound-rtp" && typeof s.roundTripTime === "number") return s.roundTripTime;
  }
  return undefined;
}

describe("RTCP reports sent past werift", () => {
  let a: RTCPeerConnection;
  let b: RTCPeerConnection;

  before(async () => {
    [a, b] = await connectedPair();
    // Neither receiver sees RTP here: werift's own reports would carry nothing.
    for (const pc of [a, b]) stopWeriftReceiverReports(transceiverOf(pc).receiver);
  });

  it("stops werift's own receiver reports", () => {
    for (const pc of [a, b])
      assert.equal(receiverReportState(transceiverOf(pc).receiver).rtcpCancel?.signal.aborted, true);
  });

  it("sends nothing for a stream that has sent no RTP", () => {
    const sender = senderReportState(transceiverOf(b).sender);
    new SenderReports(transceiverOf(b).sender).sendIfDue(Date.now());
    assert.equal(sender.packetCount, 0);
    assert.ok(!sender.lastSentSRTimestamp, "no sender report recorded");
  });

  it("counts the packets and bytes sent, and the other peer's receiver records the sender report", async () => {
    const sender = transceiverOf(a).sender;
    const reports = new SenderReports(sender);
    const now = Date.now();
    for (let i = 0; i < 50; i++) reports.count(i * 960, 80, now + i * 20);
    const state = senderReportState(sender);
    assert.equal(state.packetCount, 50);
    assert.equal(state.octetCount, 50 * 80);
    assert.equal(typeof state.ntpTimestamp, "bigint");
    reports.sendIfDue(now + 1000);
    assert.ok(state.lastSRtimestamp > 0, "the report's time recorded where werift looks for it");
    const remote = receiverReportState(transceiverOf(b).receiver);
    await waitFor(
      () => remote.lastSRtimestamp[state.ssrc] === state.lastSRtimestamp,
      "b's receiver recording a's report",
    );
    assert.ok((remote.receiveLastSRTimestamp[state.ssrc] ?? 0) > 0);
  });

  it("sends a receiver report from the reception statistics: the sender learns its loss and its round trip", async () => {
    const ssrc = senderReportState(transceiverOf(a).sender).ssrc;
    const stats = new ReceptionStats();
    for (let i = 0; i < 100; i++) if (i % 4 !== 0) stats.count(ssrc, 0, i, i * 960);
    const fraction = stats.fractionLostSinceLast();
    assert.ok(Math.abs(fraction - 0.25) < 0.01, `fraction lost ${fraction}`);
    sendReceiverReport(transceiverOf(b).receiver, stats, fraction, transceiverOf(b).sender);
    const sender = senderReportState(transceiverOf(a).sender);
    await waitFor(() => sender.remoteFractionLost !== undefined, "a's sender reading b's receiver report");
    assert.equal(sender.remoteFractionLost, Math.floor(fraction * 256) / 256);
    const rtt = await roundTrip(a);
    assert.equal(typeof rtt, "number", "werift's round trip from the report's LSR and DLSR");
  });

  it("paces sender reports (RFC 3550 6.2): none again before half the 5 s interval, one after 1.5 times it", () => {
    const sender = transceiverOf(a).sender;
    const reports = new SenderReports(sender);
    const state = senderReportState(sender);
    const start = Date.now();
    reports.count(0, 80, start);
    reports.sendIfDue(start);
    const first = state.lastSentSRTimestamp;
    reports.sendIfDue(start + 2499);
    assert.equal(state.lastSentSRTimestamp, first, "too early");
    reports.sendIfDue(start + 7500);
    assert.notEqual(state.lastSentSRTimestamp, first, "due");
  });
});
