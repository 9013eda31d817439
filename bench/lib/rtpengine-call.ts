/**
 * 1:1 calls through rtpengine, set up by a load generator process with the same legs it uses
 * against Parley (werift for ICE and DTLS, then the generator's media plane for SRTP), but with
 * rtpengine's `ng` protocol in place of Parley's signaling, as a SIP proxy (Kamailio's rtpengine
 * module) would drive it for two WebRTC endpoints:
 *
 *   caller leg: createOffer ──offer(sdp A)──▶ rtpengine ──sdp A'──▶ callee leg: setRemote, createAnswer
 *   caller leg: setRemote(answer) ◀──sdp B'── rtpengine ◀──answer(sdp B)── callee leg
 *
 * Both legs then run ICE and DTLS with rtpengine (each leg talks to its own rtpengine port, the
 * client active and rtpengine the passive DTLS end, as with Parley's relay) and rtpengine decrypts
 * each leg's SRTP and encrypts it again for the other.
 */
import type { RTCPeerConnection } from "@parley/rtc";
import { connected, createClientPeer, gathered, type PortAllocator } from "./fast-leg.js";
import type { MediaPlane, PlaneLeg } from "./media-plane.js";
import { type Bencoded, NgClient } from "./ng-client.js";

/**
 * Flags of both `offer` and `answer`: WebRTC on both sides of the call. They apply to the SDP
 * rtpengine produces (towards the callee for offer, towards the caller for answer).
 */
export const WEBRTC_FLAGS: Record<string, Bencoded> = {
  ICE: "force",
  DTLS: "passive",
  SDES: ["off"],
  "transport-protocol": "UDP/TLS/RTP/SAVPF",
  "rtcp-mux": ["require"],
  // The endpoints' addresses are their ICE candidates on 127.0.0.1, not the ng request's source.
  flags: ["trust-address"],
  replace: ["origin", "session-connection"],
};

/**
 * rtpengine writes `a=rtcp:PORT` without the address (RFC 3605 allows it), which werift's SDP
 * parser rejects ("exception"); the address is the connection address, so it is written out.
 */
export function withRtcpAddress(sdp: string): string {
  const connection = /^c=IN (IP[46]) (\S+)/m.exec(sdp);
  if (!connection) return sdp;
  return sdp.replace(/^a=rtcp:(\d+)(\r?)$/gm, `a=rtcp:$1 IN ${connection[1]} ${connection[2]}$2`);
}

export interface PeerCall {
  callId: string;
  ends: { leg: PlaneLeg; pc: RTCPeerConnection }[];
}

/** The generator's one ng client (every call it sets up shares the socket). */
let ng: { address: string; client: Promise<NgClient> } | undefined;

function client(address: { host: string; port: number }): Promise<NgClient> {
  const key = `${address.host}:${address.port}`;
  if (ng?.address !== key) {
    closeNgClient();
    ng = { address: key, client: NgClient.open(address.host, address.port) };
  }
  return ng.client;
}

/**
 * One call through rtpengine: both legs negotiated, connected, on the media plane and sending.
 * On failure everything it made is closed and the call deleted from rtpengine.
 */
export async function rtpengineCall(options: {
  ng: { host: string; port: number };
  callId: string;
  ports: PortAllocator;
  plane: MediaPlane;
  /** Keeps the peers it creates (the generator closes them at hangup). */
  track(pc: RTCPeerConnection): void;
}): Promise<PeerCall & { ms: number; firstAudio: Promise<[number, number]> }> {
  const t0 = performance.now();
  const control = await client(options.ng);
  const caller = createClientPeer(options.ports);
  const callee = createClientPeer(options.ports);
  options.track(caller.pc);
  options.track(callee.pc);
  const ids = { "call-id": options.callId, "from-tag": `${options.callId}-a` };
  const ends: PeerCall["ends"] = [];
  try {
    await caller.pc.setLocalDescription(await caller.pc.createOffer());
    const offer = await control.request("offer", {
      ...WEBRTC_FLAGS,
      ...ids,
      sdp: await gathered(caller.pc),
    });
    await callee.pc.setRemoteDescription({ type: "offer", sdp: withRtcpAddress(String(offer.sdp)) });
    await callee.pc.setLocalDescription(await callee.pc.createAnswer());
    const answer = await control.request("answer", {
      ...WEBRTC_FLAGS,
      ...ids,
      "to-tag": `${options.callId}-b`,
      sdp: await gathered(callee.pc),
    });
    await caller.pc.setRemoteDescription({ type: "answer", sdp: withRtcpAddress(String(answer.sdp)) });
    await Promise.all([connected(caller.pc), connected(callee.pc)]);
    for (const { pc, ssrc } of [caller, callee]) {
      const leg = await options.plane.attach(pc, ssrc);
      ends.push({ leg, pc });
      await leg.stream(1);
    }
    const firstAudio = Promise.all(ends.map((e) => e.leg.firstAudio)) as Promise<[number, number]>;
    return { callId: options.callId, ends, ms: performance.now() - t0, firstAudio };
  } catch (error) {
    await endRtpengineCall(options.ng, { callId: options.callId, ends });
    await Promise.all([caller.pc.close().catch(() => undefined), callee.pc.close().catch(() => undefined)]);
    throw error;
  }
}

/** Takes a call's legs off the media plane and deletes it from rtpengine (its ports freed). */
export async function endRtpengineCall(address: { host: string; port: number }, call: PeerCall): Promise<void> {
  for (const { leg } of call.ends) await leg.release().catch(() => undefined);
  const control = await client(address);
  await control.request("delete", { "call-id": call.callId, "from-tag": `${call.callId}-a` }).catch(() => undefined);
}

export function closeNgClient(): void {
  void ng?.client.then((c) => c.close());
  ng = undefined;
}
