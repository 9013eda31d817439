import type { PeerConnectionLike } from "@parley/client";
import { MediaStreamTrack, RTCPeerConnection, RtpHeader, RtpPacket, useOPUS } from "werift";

export interface RtpFrame {
  payload: Buffer;
  timestamp: number;
  sequenceNumber: number;
  marker: boolean;
}

/** A werift peer connection with one Opus audio transceiver: frames in, received RTP out. */
export interface BotPeer {
  pc: PeerConnectionLike;
  send(frame: RtpFrame): void;
  close(): void;
}

/** werift stamps the negotiated payload type on every packet written to the track. */
const OPUS_PAYLOAD_TYPE = 111;

/**
 * Creates the bot's WebRTC connection. Its ICE candidates use only `bindAddress`, so the bot's
 * media comes from the same address as its signaling.
 */
export function createBotPeer(bindAddress: string, onRtp: (frame: RtpFrame) => void): BotPeer {
  // Same werift settings as the server's relay (see packages/server/src/media): no STUN server
  // (werift defaults to a public one), no interface discovery (it would list every address of
  // the machine), the one bind address named explicitly and the socket bound to it.
  const pc = new RTCPeerConnection({
    iceServers: [],
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceInterfaceAddresses: { udp4: bindAddress },
    iceAdditionalHostAddresses: [bindAddress],
    codecs: { audio: [useOPUS()], video: [] },
  });
  // werift quirk (see packages/server/src/media/relay-peer-connection.ts): without a STUN server
  // it falls back to a public one; clearing it on the ICE transports before gathering stops that.
  const setLocalDescription = pc.setLocalDescription.bind(pc) as (d: unknown) => Promise<unknown>;
  (pc as unknown as { setLocalDescription: (d: unknown) => Promise<unknown> }).setLocalDescription = (description) => {
    for (const transport of pc.iceTransports) transport.connection.stunServer = undefined;
    return setLocalDescription(description);
  };
  const track = new MediaStreamTrack({ kind: "audio" });
  pc.addTransceiver(track, { direction: "sendrecv" });
  pc.onTrack.subscribe((remote) => {
    remote.onReceiveRtp.subscribe((rtp) => {
      onRtp({
        payload: rtp.payload,
        timestamp: rtp.header.timestamp,
        sequenceNumber: rtp.header.sequenceNumber,
        marker: rtp.header.marker,
      });
    });
  });
  const ssrc = Math.floor(Math.random() * 0xffffffff);
  return {
    pc: pc as unknown as PeerConnectionLike,
    send(frame) {
      const header = new RtpHeader({
        payloadType: OPUS_PAYLOAD_TYPE,
        sequenceNumber: frame.sequenceNumber,
        timestamp: frame.timestamp,
        marker: frame.marker,
        ssrc,
      });
      track.writeRtp(new RtpPacket(header, frame.payload));
    },
    close() {
      void pc.close();
    },
  };
}
