/**
 * Real werift peers for @parley/rtc's tests, made with `createPeer` and connected to each other on
 * loopback (offer, answer, ICE and DTLS): what the internals reader and the RTCP reports are
 * checked against.
 */

import { createPeer, MediaStreamTrack, type RTCPeerConnection, restrictSrtpProfiles } from "@parley/rtc";
import { waitFor } from "@parley/testkit";

export const IP = "127.0.0.1";
const peers: RTCPeerConnection[] = [];

/** A peer with one sendrecv audio transceiver; `closePeers` closes it. */
export function newPeer(): RTCPeerConnection {
  const pc = createPeer({ address: IP, bundlePolicy: "max-bundle" });
  pc.addTransceiver(new MediaStreamTrack({ kind: "audio" }), { direction: "sendrecv" });
  peers.push(pc);
  return pc;
}

/** Closes every peer `newPeer` made (for a test file's `after`). */
export async function closePeers(): Promise<void> {
  await Promise.all(peers.splice(0).map((pc) => pc.close().catch(() => undefined)));
}

/** The peer's local description once ICE gathering is complete. */
export async function gathered(pc: RTCPeerConnection): Promise<string> {
  await waitFor(() => pc.iceGatheringState === "complete", "ICE gathering");
  return pc.localDescription?.sdp ?? "";
}

/** Two peers connected to each other (offer, answer, ICE and DTLS), optionally on one SRTP profile. */
export async function connectedPair(profile?: number): Promise<[RTCPeerConnection, RTCPeerConnection]> {
  const a = newPeer();
  const b = newPeer();
  await a.setLocalDescription(await a.createOffer());
  if (profile !== undefined) restrictSrtpProfiles(a, [profile]);
  await b.setRemoteDescription({ type: "offer", sdp: await gathered(a) });
  if (profile !== undefined) restrictSrtpProfiles(b, [profile]);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription({ type: "answer", sdp: await gathered(b) });
  await waitFor(() => a.connectionState === "connected" && b.connectionState === "connected", "both peers connected");
  return [a, b];
}
