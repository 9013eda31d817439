/**
 * The event loop's per-leg work on the native data plane, with real werift clients: the relay
 * answers each client's ICE consent checks itself (RFC 7675: the client keeps its consent to send
 * and the relay's pair counts them), sends its RTCP reports from one relay-wide schedule (each
 * client still gets a round trip and the relay reads its loss), reports speaking changes within
 * its 100 ms poll, and its forwarded totals, added up when read, equal the legs' counters.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import {
  createPeer,
  type IceConnectionLike,
  iceConnectionOf,
  MediaStreamTrack,
  type RTCPeerConnection,
  RtpHeader,
  RtpPacket,
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
});
