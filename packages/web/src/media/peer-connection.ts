import type { Call, PeerConnectionFactory } from "@parley/client";
import type { Microphone } from "./microphone.js";

export interface PeerConnectionHooks {
  /** The connection was created for `call` (to keep it for stats and device switching). */
  created(call: Call, pc: RTCPeerConnection): void;
  /**
   * The server's audio for `call` arrived on receive slot `slot` (0: the sendrecv m-line; 1, 2:
   * the extra streams of a conference, one per other participant heard at once).
   */
  remoteTrack(call: Call, track: MediaStreamTrack, slot: number): void;
}

/**
 * The SDK's `createPeerConnection`: a browser RTCPeerConnection with the microphone track on a
 * sendrecv audio transceiver, added before the SDK creates its offer. The server relays all
 * media and puts its own candidates in its answer; the only ICE servers are the TURN relays the
 * server hands out (for networks that block UDP), never a public STUN server.
 *
 * The factory is synchronous. If the microphone is not ready yet (permission still pending), the
 * transceiver starts without a track and the track is swapped in when it comes.
 */
export function createPeerConnectionFactory(microphone: Microphone, hooks: PeerConnectionHooks): PeerConnectionFactory {
  return (call, { iceServers }) => {
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require", iceServers });
    const stream = microphone.stream;
    const track = microphone.track;
    if (stream && track) {
      pc.addTransceiver(track, { direction: "sendrecv", streams: [stream] });
    } else {
      const transceiver = pc.addTransceiver("audio", { direction: "sendrecv" });
      void microphone
        .acquire()
        .then((s) => {
          const t = s.getAudioTracks()[0];
          if (t && pc.signalingState !== "closed") return transceiver.sender.replaceTrack(t);
        })
        .catch(() => {
          // no microphone: the call goes on receive-only
        });
    }
    pc.ontrack = (event) =>
      hooks.remoteTrack(call, event.track, Math.max(0, pc.getTransceivers().indexOf(event.transceiver)));
    hooks.created(call, pc);
    return pc;
  };
}

/** Puts `track` on every audio sender of `pc` (microphone switch during a call). */
export async function replaceMicrophoneTrack(pc: RTCPeerConnection, track: MediaStreamTrack): Promise<void> {
  if (pc.signalingState === "closed") return;
  for (const transceiver of pc.getTransceivers()) {
    if (transceiver.receiver.track.kind === "audio" && transceiver.currentDirection !== "stopped") {
      await transceiver.sender.replaceTrack(track);
    }
  }
}
