import type { PeerConnectionLike } from "@parley/client";
import type { IceServer } from "@parley/protocol";
import { createPeer, MediaStreamTrack, RtpHeader, RtpPacket, useOPUS } from "@parley/rtc";

export interface RtpFrame {
  payload: Buffer;
  timestamp: number;
  sequenceNumber: number;
  marker: boolean;
  /** RFC 6464 audio level (0 loudest .. 127 silence), sent in the audio level header extension. */
  level?: number;
}

const AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/**
 * A werift peer connection with one sendrecv Opus audio transceiver (the SDK adds receive-only
 * ones for conferences): frames in, received RTP out, each with the index of the stream (the
 * order its track arrived in) it came on.
 */
export interface BotPeer {
  pc: PeerConnectionLike;
  send(frame: RtpFrame): void;
  /** True once the server's answer asks for Opus in-band FEC (`useinbandfec=1`). */
  fecWanted(): boolean;
  /** Resolves when ICE and DTLS are up (media can flow). */
  connected: Promise<void>;
  /**
   * How the connected media reaches the relay: "direct", or "TURN relay over tcp" (or udp/tls)
   * when it goes through a TURN server; undefined before ICE picked a path.
   */
  path(): string | undefined;
  close(): void;
}

/** werift stamps the negotiated payload type on every packet written to the track. */
const OPUS_PAYLOAD_TYPE = 111;

/**
 * Creates the bot's WebRTC connection. Its ICE candidates use only `bindAddress`, so the bot's
 * media comes from the same address as its signaling.
 */
export function createBotPeer(
  bindAddress: string,
  onRtp: (frame: RtpFrame, stream: number) => void,
  iceServers: IceServer[] = [],
): BotPeer {
  // Parley's werift settings, as the server's relay (see @parley/rtc): no STUN server, no
  // interface discovery, the one bind address named explicitly and the socket bound to it. The
  // only ICE servers are the TURN relays the Parley server hands out. The audio level lets the
  // server show who speaks and pick the loudest for conference slots.
  const pc = createPeer({
    address: bindAddress,
    iceServers: iceServers.map(({ urls, username, credential }) => ({ urls: urls[0] ?? "", username, credential })),
    // The bot's recorder takes Opus with in-band FEC (it decodes each packet's own frame) and
    // DTX (it lays audio out by timestamp, silence in the gaps): it says so, as browsers do.
    audioCodecs: [useOPUS({ parameters: "minptime=10;useinbandfec=1;usedtx=1" })],
    // All m-lines on one transport, as browsers do (the server expects a bundled offer).
    bundlePolicy: "max-bundle",
  });
  const track = new MediaStreamTrack({ kind: "audio" });
  const transceiver = pc.addTransceiver(track, { direction: "sendrecv" });
  const streams = new Map<MediaStreamTrack, number>();
  pc.onTrack.subscribe((remote) => {
    const stream = streams.size;
    streams.set(remote, stream);
    remote.onReceiveRtp.subscribe((rtp) => {
      onRtp(
        {
          payload: rtp.payload,
          timestamp: rtp.header.timestamp,
          sequenceNumber: rtp.header.sequenceNumber,
          marker: rtp.header.marker,
        },
        stream,
      );
    });
  });
  const ssrc = Math.floor(Math.random() * 0xffffffff);
  const connected = new Promise<void>((resolve) => {
    const { unSubscribe } = pc.connectionStateChange.subscribe((state) => {
      if (state !== "connected") return;
      unSubscribe();
      resolve();
    });
  });
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
      const levelId = transceiver.headerExtensions.find((e) => e.uri === AUDIO_LEVEL_URI)?.id;
      if (levelId !== undefined && frame.level !== undefined) {
        header.extensions = [{ id: levelId, payload: Buffer.from([0x80 | frame.level]) }];
      }
      track.writeRtp(new RtpPacket(header, frame.payload));
    },
    connected,
    fecWanted() {
      const sdp = pc.remoteDescription?.sdp ?? "";
      return /^a=fmtp:\d+ .*\buseinbandfec=1\b/m.test(sdp);
    },
    path() {
      const local = pc.iceTransports[0]?.connection.nominated?.localCandidate;
      if (!local) return undefined;
      return local.type === "relay" ? `TURN relay over ${turnTransport(iceServers)}` : "direct";
    },
    close() {
      void pc.close();
    },
  };
}

/** The transport to the TURN server werift uses: the first TURN URL's (werift takes only that one). */
function turnTransport(iceServers: IceServer[]): string {
  const url = iceServers[0]?.urls[0] ?? "";
  if (url.startsWith("turns:")) return "tls";
  return /[?&]transport=tcp/.test(url) ? "tcp" : "udp";
}
