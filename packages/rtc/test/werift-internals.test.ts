/**
 * The werift internals @parley/rtc reads (werift-internals.ts, written against werift 0.24.4), on
 * two real werift peers connected on loopback. When a werift upgrade renames or moves any of
 * them, this fails here, naming the missing piece, rather than the relay's fast data plane
 * quietly staying on werift's RTP path or the benchmark's legs failing to attach.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { after, before, describe, it } from "node:test";
import {
  DtlsSocket,
  iceConnectionOf,
  iceSocketsOf,
  nominatedPath,
  PAIR_SUCCEEDED,
  PROFILE_AEAD_AES_128_GCM,
  PROFILE_AES128_CM_SHA1_80,
  type RTCPeerConnection,
  receiverReportState,
  senderReportState,
  srtpProfileOf,
  srtpSessionOf,
  tapDatagrams,
} from "@parley/rtc";
import { waitFor } from "@parley/testkit";
import { closePeers, connectedPair, IP } from "./peers.js";

after(closePeers);

/** The local UDP port of a peer's only host candidate. */
function candidatePort(sdp: string): number {
  const match = /^a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ (\S+)/m.exec(sdp);
  assert.ok(match, `no UDP candidate in\n${sdp}`);
  return Number(match[2]);
}

describe("werift internals @parley/rtc reads (werift 0.24.4)", () => {
  let a: RTCPeerConnection;
  let b: RTCPeerConnection;

  before(async () => {
    [a, b] = await connectedPair();
  });

  it("a peer advertises only its one address, with no STUN server and no other interface", () => {
    for (const pc of [a, b]) {
      const candidates = (pc.localDescription?.sdp ?? "").split(/\r?\n/).filter((l) => l.startsWith("a=candidate:"));
      assert.ok(candidates.length > 0, "no candidates");
      for (const line of candidates) {
        assert.match(line, / udp \d+ 127\.0\.0\.1 \d+ typ host/, `unexpected candidate: ${line}`);
      }
    }
  });

  it("the SRTP session of a connected peer has its profile and both directions' master and session keys", () => {
    for (const pc of [a, b]) {
      const srtp = srtpSessionOf(pc);
      assert.notEqual(typeof srtp, "string", `no SRTP session: ${srtp}`);
      if (typeof srtp === "string") return;
      const profile = srtp.config?.profile;
      assert.ok(profile === PROFILE_AEAD_AES_128_GCM || profile === PROFILE_AES128_CM_SHA1_80, `profile ${profile}`);
      assert.equal(srtpProfileOf(pc), profile);
      for (const [direction, context] of [
        ["local", srtp.localContext],
        ["remote", srtp.remoteContext],
      ] as const) {
        assert.ok(context, `werift's SRTP ${direction}Context is missing`);
        for (const key of [
          "masterKey",
          "masterSalt",
          "srtpSessionKey",
          "srtpSessionSalt",
          "srtpSessionAuthTag",
        ] as const) {
          assert.ok(
            Buffer.isBuffer(context[key]) && context[key].length > 0,
            `werift's SRTP ${direction} ${key} is missing`,
          );
        }
      }
    }
    // What one side encrypts with, the other decrypts with.
    const [sa, sb] = [srtpSessionOf(a), srtpSessionOf(b)];
    if (typeof sa === "string" || typeof sb === "string") return;
    assert.deepEqual(sa.localContext?.srtpSessionKey, sb.remoteContext?.srtpSessionKey);
  });

  it("the ICE connection has its nominated, succeeded pair, check list, sockets and consent state", () => {
    const connection = iceConnectionOf(a);
    assert.notEqual(typeof connection, "string", `no ICE connection: ${connection}`);
    if (typeof connection === "string") return;
    const pair = connection.nominated;
    assert.ok(pair, "werift's nominated pair is missing");
    assert.equal(pair.state, PAIR_SUCCEEDED, "the nominated pair's state is not werift's SUCCEEDED");
    assert.equal(pair.remoteCandidate.host, IP);
    assert.equal(pair.remoteCandidate.port, candidatePort(b.localDescription?.sdp ?? ""));
    assert.ok(Array.isArray(connection.checkList) && connection.checkList.includes(pair), "werift's check list");
    assert.equal(typeof connection.canSendApplicationData, "function", "werift's consent state");
    assert.equal(connection.canSendApplicationData?.(), true);
    // What takeOverConsent, resumeConsent and expireConsent use.
    assert.equal(connection.state, "connected", "werift's ICE connection state");
    assert.equal(connection.consentFresh, true, "werift's consent flag");
    for (const method of ["stopConsentLifecycle", "queryConsent", "setState"] as const) {
      assert.equal(typeof connection[method], "function", `werift's ICE connection ${method}`);
    }
    const transports = iceSocketsOf(connection);
    assert.notEqual(typeof transports, "string", `no ICE sockets: ${transports}`);
    if (typeof transports === "string") return;
    assert.equal(transports.length, 1);
    assert.ok(transports.includes(pair.protocol.transport!), "the nominated pair's transport is not among the sockets");
    assert.equal(transports[0]!.closed, false);
    assert.equal(transports[0]!.socket.address().port, candidatePort(a.localDescription?.sdp ?? ""));
  });

  it("the nominated path names the peer's socket and the remote end", () => {
    const path = nominatedPath(a);
    assert.ok(path, "no nominated path");
    assert.equal(path.remoteHost, IP);
    assert.equal(path.remotePort, candidatePort(b.localDescription?.sdp ?? ""));
    assert.equal(path.socket.address().port, candidatePort(a.localDescription?.sdp ?? ""));
  });

  it("a datagram tap sees the socket's datagrams before werift, and gives the socket back", async () => {
    const path = nominatedPath(b);
    assert.ok(path);
    const socket = path.socket;
    const before = socket.listeners("message");
    assert.ok(before.length > 0, "werift's 'message' listener on its socket is missing");
    const seen: Buffer[] = [];
    let werift: unknown[] = [];
    const untap = tapDatagrams(socket, (listeners) => {
      werift = listeners;
      return (data) => seen.push(data);
    });
    assert.deepEqual(werift, before);
    assert.equal(socket.listenerCount("message"), 1);
    const sender = dgram.createSocket("udp4");
    try {
      sender.send(Buffer.from([0x80, 0, 0, 1]), socket.address().port, IP);
      await waitFor(() => seen.length === 1, "the tapped datagram");
    } finally {
      sender.close();
    }
    untap();
    assert.deepEqual(socket.listeners("message"), before);
  });

  it("the RTP sender and receiver hold the RTCP report state a data plane keeps current", () => {
    const transceiver = a.getTransceivers()[0];
    assert.ok(transceiver);
    const sender = senderReportState(transceiver.sender);
    assert.equal(typeof sender.ssrc, "number");
    assert.equal(typeof sender.ntpTimestamp, "bigint", "werift's sender ntpTimestamp");
    for (const key of ["rtpTimestamp", "packetCount", "octetCount"] as const) {
      assert.equal(typeof sender[key], "number", `werift's sender ${key}`);
    }
    for (const key of ["lastSRtimestamp", "lastSentSRTimestamp", "remoteFractionLost"]) {
      assert.ok(Object.hasOwn(sender, key), `werift's sender ${key} is missing`);
    }
    assert.equal(typeof sender.dtlsTransport?.sendRtcp, "function", "werift's sender dtlsTransport.sendRtcp");
    const receiver = receiverReportState(transceiver.receiver);
    assert.equal(typeof receiver.rtcpSsrc, "number", "werift's receiver rtcpSsrc");
    assert.ok(receiver.rtcpCancel instanceof AbortController, "werift's receiver rtcpCancel");
    assert.equal(typeof receiver.lastSRtimestamp, "object", "werift's receiver lastSRtimestamp");
    assert.equal(typeof receiver.receiveLastSRTimestamp, "object", "werift's receiver receiveLastSRTimestamp");
  });

  it("the DTLS handshake method the HelloVerifyRequest fix wraps is there", () => {
    const prototype = DtlsSocket.prototype as unknown as Record<string, unknown>;
    assert.equal(typeof prototype.handleFragmentHandshake, "function", "werift's DtlsSocket.handleFragmentHandshake");
  });

  it("peers restricted to one SRTP profile negotiate that profile", async () => {
    const [c, d] = await connectedPair(PROFILE_AES128_CM_SHA1_80);
    assert.equal(srtpProfileOf(c), PROFILE_AES128_CM_SHA1_80);
    assert.equal(srtpProfileOf(d), PROFILE_AES128_CM_SHA1_80);
  });
});
