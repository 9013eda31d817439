/**
 * The event loop's per-leg work on the native data plane, with real werift clients: the relay
 * answers each client's ICE consent checks itself (RFC 7675: the client keeps its consent to send
 * and the relay's pair counts them), sends its RTCP reports from one relay-wide schedule (each
 * client still gets a round trip and the relay reads its loss), reports speaking changes within
 * its 100 ms poll, and its forwarded totals, added up when read, equal the legs' counters. It sends
 * no consent checks of its own: the client's checks keep its consent (as an ICE-lite server's do),
 * and a client that stops checking gets no more media after RFC 7675's 30 s.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import {
  createPeer,
  type IceConnectionLike,
  iceConnectionOf,
  MediaStreamTrack,
  nominatedPath,
  type RTCPeerConnection,
  RtpHeader,
  RtpPacket,
  takeOverConsent,
  tapDatagrams,
  useOPUS,
} from "@parley/rtc";
import { type MediaLeg, MediaRelay } from "@parley/server";
import { waitFor } from "@parley/testkit";
import { pino } from "pino";

const IP = "127.0.0.1";
const LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
const relay = new MediaRelay({ ip: IP, portMin: 40400, portMax: 40440 }, pino({ level: "silent" }), {
  dataPlane: "native",
});
const peers: RTCPeerConnection[] = [];

after(async () => {
  relay.close();
  await Promise.all(peers.map((pc) => pc.close()));
});

/** A client on the native plane sending 50 packets a second with an RFC 6464 level (`level()`). */
async function client(
  id: string,
  level: () => number,
): Promise<{ pc: RTCPeerConnection; leg: MediaLeg; stop: () => void }> {
  const pc = createPeer({ address: IP, bundlePolicy: "max-bundle", audioLevel: true, audioCodecs: [useOPUS()] });
  peers.push(pc);
  const track = new MediaStreamTrack({ kind: "audio" });
  pc.addTransceiver(track, { direction: "sendrecv" });
  await pc.setLocalDescription(await pc.createOffer());
  await waitFor(() => pc.iceGatheringState === "complete", "ICE gathering");
  const { leg, answerSdp } = await relay.createLeg(id, pc.localDescription?.sdp ?? "");
  await pc.setRemoteDescription({ type: "answer", sdp: answerSdp });
  await waitFor(() => leg.state === "connected" && pc.connectionState === "connected", `${id} connected`);
  assert.equal(leg.dataPlane, "native");
  let seq = 1;
  const timer = setInterval(() => {
    const header = new RtpHeader({ payloadType: 111, sequenceNumber: seq, timestamp: seq * 960, ssrc: 1 });
    const ext = pc.getTransceivers()[0]?.headerExtensions.find((e) => e.uri === LEVEL_URI)?.id;
    if (ext !== undefined) header.extensions = [{ id: ext, payload: Buffer.from([0x80 | level()]) }];
    seq++;
    track.writeRtp(new RtpPacket(header, Buffer.alloc(40, 0xa1)));
  }, 20);
  return { pc, leg, stop: () => clearInterval(timer) };
}

describe("native legs' control work", () => {
  it("keeps consent, reports, speaking and totals right over several consent intervals", async () => {
    let aliceLevel = 127;
    const alice = await client("ctl-a", () => aliceLevel);
    const bob = await client("ctl-b", () => 127);
    alice.leg.forwardTo([bob.leg]);
    bob.leg.forwardTo([alice.leg]);
    const changes: [boolean, number][] = [];
    alice.leg.on("speaking", (speaking) => changes.push([speaking, Date.now()]));

    // Consent: each client's checks (every 4 to 6 s) answered; it keeps its consent to send.
    const pairOf = (pc: RTCPeerConnection) =>
      (iceConnectionOf(pc) as IceConnectionLike).nominated as unknown as { responsesReceived: number };
    const before = [pairOf(alice.pc).responsesReceived, pairOf(bob.pc).responsesReceived];
    await waitFor(
      () => pairOf(alice.pc).responsesReceived >= before[0]! + 2 && pairOf(bob.pc).responsesReceived >= before[1]! + 2,
      "two consent checks of each client answered",
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    for (const { pc } of [alice, bob]) {
      assert.equal((iceConnectionOf(pc) as IceConnectionLike).canSendApplicationData?.(), true);
      assert.equal(pc.connectionState, "connected");
    }

    // RTCP: the relay's sender reports give the clients' receiver reports a round trip.
    const quality = await waitFor(
      async () => {
        const q = await bob.leg.quality();
        return q.roundTripMs !== null ? q : null;
      },
      "a round trip on Bob's leg",
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    assert.equal(quality.packetsLost, 0);

    // Speaking: reported within a few polls of the media thread's detection.
    const loudAt = Date.now();
    aliceLevel = 10;
    await waitFor(() => changes.some(([speaking]) => speaking), "Alice speaking", { intervalMs: 20 });
    const heardAfter = changes.find(([speaking]) => speaking)![1] - loudAt;
    assert.ok(heardAfter < 1000, `speaking reported ${heardAfter} ms after the loud packets began`);
    assert.equal(alice.leg.speaking, true);

    // Totals: what the relay says it forwarded is what the legs sent.
    alice.stop();
    bob.stop();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const sent = alice.leg.counters.packetsOut + bob.leg.counters.packetsOut;
    assert.ok(sent > 100, `${sent} packets forwarded`);
    assert.equal(relay.stats().packetsForwarded, sent);
  });

  it("sends no consent checks of its own, and stops a client that stops checking after 30 s", {
    timeout: 90_000,
  }, async () => {
    const carol = await client("ctl-c", () => 127);
    const dave = await client("ctl-d", () => 127);
    carol.leg.forwardTo([dave.leg]);
    dave.leg.forwardTo([carol.leg]);
    // What reaches Dave's client from the relay: STUN Binding requests and RTP, each with its time.
    const path = nominatedPath(dave.pc);
    assert.ok(path, "Dave's nominated path");
    const requests: number[] = [];
    const rtp: number[] = [];
    const rtcp: number[] = [];
    const untap = tapDatagrams(path.socket, (werift) => (data, info) => {
      if (data.length >= 20 && data[0] === 0 && data[1] === 1) requests.push(Date.now());
      else if (data.length >= 8 && data[0]! >= 128 && data[0]! < 192 && data[1]! >= 192 && data[1]! <= 223) {
        rtcp.push(Date.now());
      } else if (data.length >= 12 && data[0]! >= 128 && data[0]! < 192) rtp.push(Date.now());
      for (const listener of werift) listener(data, info);
    });
    try {
      // Over more than one consent interval (4 to 6 s), the clients' checks keep both legs up and
      // the relay sends none of its own.
      await new Promise((resolve) => setTimeout(resolve, 7000));
      assert.deepEqual(requests, [], "the relay sent consent checks of its own");
      assert.equal(dave.leg.state, "connected");
      assert.ok(rtp.length > 200, `${rtp.length} RTP packets reached Dave`);
      // RTCP paced as RFC 3550 asks (every 2.5 to 7.5 s with no loss to report): at most three
      // compound reports in 7 s, where one a second would be seven.
      assert.ok(rtcp.length >= 1 && rtcp.length <= 3, `${rtcp.length} RTCP packets reached Dave in 7 s`);

      // Dave's client stops checking (and keeps sending): the relay keeps consent for 30 s.
      const connection = iceConnectionOf(dave.pc) as IceConnectionLike;
      assert.ok(takeOverConsent(connection), "the client's own consent checks stopped");
      const stoppedAt = Date.now();
      await waitFor(() => dave.leg.state !== "connected", "Dave's leg to lose consent", {
        timeoutMs: 45_000,
        intervalMs: 100,
      });
      const lostAfter = Date.now() - stoppedAt;
      assert.ok(lostAfter >= 25_000, `consent lost ${lostAfter} ms after the last check (the timeout is 30 s)`);
      assert.ok(lostAfter < 40_000, `consent lost only ${lostAfter} ms after the last check`);
      assert.equal(carol.leg.state, "connected", "Carol, who kept checking, keeps her leg");
      const failedAt = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(rtp.filter((at) => at > failedAt + 100).length, 0, "RTP reached Dave after consent was lost");
      assert.deepEqual(requests, [], "the relay sent consent checks of its own");
    } finally {
      untap();
      carol.stop();
      dave.stop();
    }
  });
});
