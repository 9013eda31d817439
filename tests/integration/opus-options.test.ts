/**
 * The relay asks clients' Opus encoders for in-band FEC and DTX in its SDP answer (`--opus-fec`,
 * `--opus-dtx`, both on by default), and calls between bots still carry audio both ways with them.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { createPeer, MediaStreamTrack, type RTCPeerConnection, useOPUS } from "@parley/rtc";
import { type RawClient, registered, waitFor, withTestServer } from "@parley/testkit";
import { useBotCalls } from "./bot-calls.js";

const IP = "127.0.0.1";
/** What Chromium puts in its Opus fmtp. */
const CHROMIUM_OPUS_FMTP = "minptime=10;useinbandfec=1";

const peers: RTCPeerConnection[] = [];
after(async () => {
  await Promise.all(peers.map((pc) => pc.close()));
});

const { botCall, assertHears } = useBotCalls("parley-opus-options-");

/** A real softphone offer: a werift peer on loopback with one sendrecv Opus track (fmtp as given). */
async function offer(fmtp?: string): Promise<string> {
  const pc = createPeer({
    address: IP,
    bundlePolicy: "max-bundle",
    audioCodecs: [useOPUS(fmtp === undefined ? {} : { parameters: fmtp })],
    audioLevel: false,
  });
  peers.push(pc);
  pc.addTransceiver(new MediaStreamTrack({ kind: "audio" }), { direction: "sendrecv" });
  await pc.setLocalDescription(await pc.createOffer());
  await waitFor(() => pc.iceGatheringState === "complete", "ICE gathering");
  return pc.localDescription?.sdp ?? "";
}

/** The Opus fmtp parameters of an SDP (`a=fmtp:<opus pt> ...`), or null when it has none. */
function opusFmtp(sdp: string): string | null {
  const pt = /^a=rtpmap:(\d+) opus\/48000\/2/im.exec(sdp)?.[1];
  assert.ok(pt, `no Opus in\n${sdp}`);
  return new RegExp(`^a=fmtp:${pt} (.*)$`, "m").exec(sdp)?.[1]?.trim() ?? null;
}

/** The relay's answer to `offerSdp` on a call between two fresh users. */
async function relayAnswer(url: string, offerSdp: string): Promise<string> {
  const alice: RawClient = (await registered(url, "alice")).client;
  const bob: RawClient = (await registered(url, "bob")).client;
  const { call } = await alice.call<{ call: { callId: string } }>("call.invite", { to: "bob" });
  await bob.event("call.incoming", (d) => (d.call as { callId: string }).callId === call.callId);
  await bob.call("call.answer", { callId: call.callId });
  const { sdp } = await alice.call<{ sdp: string }>("call.media", { callId: call.callId, sdp: offerSdp });
  return sdp;
}

describe("Opus FEC and DTX in the relay's answer", () => {
  it("asks for in-band FEC and DTX by default, whatever the offer's fmtp says", async () => {
    await withTestServer({}, async (s) => {
      const plain = opusFmtp(await relayAnswer(s.url, await offer()));
      assert.equal(plain, "useinbandfec=1;usedtx=1");
    });
    await withTestServer({}, async (s) => {
      const chromium = opusFmtp(await relayAnswer(s.url, await offer(CHROMIUM_OPUS_FMTP)));
      assert.equal(chromium, "minptime=10;useinbandfec=1;usedtx=1", "the offer's other parameters are kept");
    });
  });

  it("asks for neither with --opus-fec off and --opus-dtx off, even when the offer asks for FEC", async () => {
    await withTestServer({ opusFec: false, opusDtx: false }, async (s) => {
      const fmtp = opusFmtp(await relayAnswer(s.url, await offer(CHROMIUM_OPUS_FMTP)));
      assert.equal(fmtp, "minptime=10");
    });
  });

  it("asks for each on its own: FEC without DTX, DTX without FEC", async () => {
    await withTestServer({ opusDtx: false }, async (s) => {
      assert.equal(opusFmtp(await relayAnswer(s.url, await offer())), "useinbandfec=1");
    });
    await withTestServer({ opusFec: false }, async (s) => {
      assert.equal(opusFmtp(await relayAnswer(s.url, await offer(CHROMIUM_OPUS_FMTP))), "minptime=10;usedtx=1");
    });
  });

  it("still gives two bots audio both ways with FEC and DTX on", async () => {
    await withTestServer({}, async (s) => {
      const server = `127.0.0.1:${s.server.port}`;
      const bots = await botCall({ user: "fec-callee", hz: 440, server }, { user: "fec-caller", hz: 1000, server });
      assertHears("fec-callee", 1000, bots);
      assertHears("fec-caller", 440, bots);
    });
  });
});
