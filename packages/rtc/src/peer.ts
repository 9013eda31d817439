import net from "node:net";
import {
  type BundlePolicy,
  type RTCIceServer,
  RTCPeerConnection,
  type RTCRtpCodecParameters,
  useAudioLevelIndication,
  useOPUS,
} from "werift";
import { applyWeriftFixes } from "./werift-fixes.js";

/** How one Parley peer connection (the relay's leg, a bot, a benchmark or test client) is set up. */
export interface PeerOptions {
  /**
   * The one local address: the only host candidate, and the address the UDP socket binds to. No
   * other address of the machine is discovered or advertised.
   */
  address: string;
  /** ICE servers: only the TURN relays a Parley server hands out (none by default; never STUN). */
  iceServers?: RTCIceServer[];
  /** The UDP ports to bind in, [min, max] with min < max (werift throws on [n, n]). */
  portRange?: [number, number];
  /** "max-bundle" puts every m-line on one transport from the start, as browsers do; werift's default otherwise. */
  bundlePolicy?: BundlePolicy;
  /** Audio codecs: Opus with werift's defaults unless given. */
  audioCodecs?: RTCRtpCodecParameters[];
  /** Video codecs: none unless given. */
  videoCodecs?: RTCRtpCodecParameters[];
  /** The RFC 6464 audio level header extension (who is speaking); on unless false. */
  audioLevel?: boolean;
}

/**
 * A werift peer connection with Parley's settings: host candidates on `address` only (no
 * interface discovery, no STUN), UDP only, the given codecs, the audio level extension, and the
 * werift fixes applied (both ends of a connection need them).
 */
export function createPeer(options: PeerOptions): RTCPeerConnection {
  applyWeriftFixes();
  const { address } = options;
  const pc = new RTCPeerConnection({
    iceServers: options.iceServers ?? [],
    // werift quirk: iceInterfaceAddresses only filters the machine's own addresses and falls back
    // to ALL of them when none matches (127.0.0.1 never matches: loopback is not listed), so host
    // discovery is turned off (iceUseIpv4/iceUseIpv6 false) and the one address is named in
    // iceAdditionalHostAddresses. iceInterfaceAddresses still matters: the UDP socket binds to it
    // (otherwise to the wildcard address).
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: [address],
    iceInterfaceAddresses: net.isIPv4(address) ? { udp4: address } : { udp6: address },
    ...(options.portRange ? { icePortRange: options.portRange } : {}),
    iceUseTcp: false,
    codecs: { audio: options.audioCodecs ?? [useOPUS()], video: options.videoCodecs ?? [] },
    headerExtensions: { audio: options.audioLevel === false ? [] : [useAudioLevelIndication()], video: [] },
    ...(options.bundlePolicy ? { bundlePolicy: options.bundlePolicy } : {}),
  });
  // werift quirk: with no STUN server configured the ICE agent falls back to
  // stun.l.google.com:19302, so every peer would query Google, advertise a server-reflexive
  // candidate (the host's public address), and wait up to 5 s for a DNS lookup or reply while
  // gathering. Clearing the agent's STUN server on every ICE transport right before gathering
  // (in setLocalDescription; setRemoteDescription may have made or dropped transports) stops it.
  const setLocalDescription = pc.setLocalDescription.bind(pc) as (d: unknown) => Promise<unknown>;
  (pc as unknown as { setLocalDescription: (d: unknown) => Promise<unknown> }).setLocalDescription = (description) => {
    for (const transport of pc.iceTransports) transport.connection.stunServer = undefined;
    return setLocalDescription(description);
  };
  return pc;
}
