/**
 * @parley/rtc's SDP helpers (sdp.ts) on a browser's offer as Chrome writes it and on the offer and
 * answer of real werift peers: the SSRCs werift routes RTP by, the candidates, the m-line count,
 * the audio level extension id and the Opus parameters of the relay's answer.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import * as rtc from "@parley/rtc";
import { closePeers, gathered, IP, newPeer } from "./peers.js";

after(closePeers);

/** A Chrome audio offer with two m-lines (a conference listener), CRLF line ends. */
const CHROME_OFFER = [
  "v=0",
  "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "a=group:BUNDLE 0 1",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111 0",
  "c=IN IP4 0.0.0.0",
  "a=candidate:842163049 1 udp 1677729535 198.51.100.7 50123 typ srflx raddr 10.0.0.2 rport 50123 generation 0",
  "a=candidate:1 1 UDP 2122260223 10.0.0.2 50123 typ host generation 0",
  "a=candidate:3 1 tcp 1518280447 10.0.0.2 9 typ host tcptype active generation 0",
  "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
  "a=extmap:4/sendrecv http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
  "a=mid:0",
  "a=sendrecv",
  "a=rtpmap:111 opus/48000/2",
  "a=fmtp:111 minptime=10;useinbandfec=1",
  "a=ssrc:3735928559 cname:abc",
  "a=ssrc:3735928559 msid:- track",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111",
  "a=mid:1",
  "a=recvonly",
  "a=ssrc:42 cname:abc",
  "",
].join("\r\n");

describe("SDP reading", () => {
  it("splits CRLF and LF lines alike", () => {
    assert.deepEqual(rtc.sdpLines("v=0\r\ns=-\nt=0 0"), ["v=0", "s=-", "t=0 0"]);
  });

  it("finds the SSRCs an offer declares, once each, above 2^31 too", () => {
    assert.equal(rtc.declaresSsrc(CHROME_OFFER), true);
    assert.deepEqual(rtc.declaredSsrcs(CHROME_OFFER), new Set([3_735_928_559, 42]));
    const without = CHROME_OFFER.split("\r\n")
      .filter((line) => !line.startsWith("a=ssrc:"))
      .join("\r\n");
    assert.equal(rtc.declaresSsrc(without), false, "audio werift would drop");
    assert.equal(rtc.declaredSsrcs(without).size, 0);
  });

  it("reads every candidate's protocol (lower case), address, port and type", () => {
    assert.deepEqual(rtc.sdpCandidates(CHROME_OFFER), [
      { protocol: "udp", address: "198.51.100.7", port: 50_123, type: "srflx" },
      { protocol: "udp", address: "10.0.0.2", port: 50_123, type: "host" },
      { protocol: "tcp", address: "10.0.0.2", port: 9, type: "host" },
    ]);
  });

  it("counts the m-lines", () => {
    assert.equal(rtc.mediaSectionCount(CHROME_OFFER), 2);
    assert.equal(rtc.mediaSectionCount("v=0\r\n"), 0);
  });

  it("finds an extension's id with or without a direction, and null when it is not offered", () => {
    assert.equal(rtc.extensionId(CHROME_OFFER, rtc.AUDIO_LEVEL_URI), 1);
    assert.equal(
      rtc.extensionId(CHROME_OFFER, "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"),
      4,
    );
    assert.equal(rtc.extensionId(CHROME_OFFER, "urn:ietf:params:rtp-hdrext:sdes:mid"), null);
  });

  it("reads a werift peer's gathered offer: its sender's SSRC, its one host candidate, the audio level id", async () => {
    const pc = newPeer();
    await pc.setLocalDescription(await pc.createOffer());
    const sdp = await gathered(pc);
    const sender = pc.getTransceivers()[0]?.sender;
    assert.ok(sender);
    assert.ok(rtc.declaredSsrcs(sdp).has(sender.ssrc), `the sender's SSRC ${sender.ssrc} in\n${sdp}`);
    const candidates = rtc.sdpCandidates(sdp);
    assert.equal(candidates.length, 1, `one candidate in\n${sdp}`);
    assert.equal(candidates[0]?.address, IP);
    assert.equal(candidates[0]?.protocol, "udp");
    assert.equal(candidates[0]?.type, "host");
    assert.ok((candidates[0]?.port ?? 0) > 0);
    assert.equal(rtc.mediaSectionCount(sdp), 1);
    assert.equal(
      typeof rtc.extensionId(sdp, rtc.AUDIO_LEVEL_URI),
      "number",
      "createPeer offers the audio level extension",
    );
  });
});

describe("the Opus parameters of the relay's answer (RFC 7587)", () => {
  it("keeps the offer's parameters and sets FEC and DTX to what the relay wants", () => {
    assert.equal(
      rtc.opusAnswerParameters("minptime=10;useinbandfec=1", { fec: true, dtx: true }),
      "minptime=10;useinbandfec=1;usedtx=1",
    );
    assert.equal(
      rtc.opusAnswerParameters("minptime=10; stereo=1", { fec: true, dtx: false }),
      "minptime=10;stereo=1;useinbandfec=1",
    );
  });

  it("leaves FEC and DTX out when unwanted, whatever case the offer wrote them in (absent means 0)", () => {
    assert.equal(
      rtc.opusAnswerParameters("USEINBANDFEC=1;usedtx=1;minptime=10", { fec: false, dtx: false }),
      "minptime=10",
    );
  });

  it("answers an offer with no fmtp line", () => {
    assert.equal(rtc.opusAnswerParameters(undefined, { fec: false, dtx: false }), "");
    assert.equal(rtc.opusAnswerParameters(undefined, { fec: false, dtx: true }), "usedtx=1");
  });
});
