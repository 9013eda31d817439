import {
  createPeer,
  opusAnswerParameters,
  type RTCPeerConnection,
  type RTCRtpSender,
  sdpCandidates,
} from "@parley/rtc";
import type { MediaConfig } from "./media-config.js";

/**
 * What the relay asks clients' Opus encoders for in its answer (RFC 7587 fmtp): in-band FEC
 * (`useinbandfec=1`: each packet also carries a low-rate copy of the previous frame, so the
 * listener's decoder recovers a lost packet from the next one) and DTX (`usedtx=1`: next to no
 * packets during silence). The relay never decodes: both pass through it untouched.
 */
export interface OpusSettings {
  fec: boolean;
  dtx: boolean;
}

export const DEFAULT_OPUS_SETTINGS: OpusSettings = { fec: true, dtx: true };

/** Answering is local work (no STUN/TURN); if it takes this long something is stuck. */
const NEGOTIATION_TIMEOUT_MS = 10_000;

/**
 * The port ranges to try for one leg, in order: from a random port up, then the whole range.
 * werift quirk: it picks a port by binding and closing a probe socket (`findPort`, scanning up
 * from the range's minimum), then binds the real socket without an 'error' listener. Another
 * process scanning the same range can take the port in between, and the EADDRINUSE becomes an
 * uncaught exception that ends the process (seen with three relays sharing 40000-40100). A random
 * start keeps processes that share a range (parallel test servers, two servers on one host) from
 * probing the same ports at the same moment; the second range still finds any free port.
 */
export function portRangesToTry(config: MediaConfig): [number, number][] {
  const start = config.portMin + Math.floor(Math.random() * (config.portMax - config.portMin));
  const whole: [number, number] = [config.portMin, config.portMax];
  return start === config.portMin ? [whole] : [[start, config.portMax], whole];
}

/**
 * A werift peer connection for one leg: host candidates on `config.ip` only, UDP ports in
 * `portRange` (within the configured range), Opus only, the RFC 6464 audio level header extension
 * (who is speaking), and one sendrecv audio transceiver per audio m-line of the offer
 * (`sections`): the first carries the client's microphone, each further one a stream the client
 * hears in a conference.
 */
export function createPeerConnection(
  config: MediaConfig,
  portRange: [number, number],
  sections: number,
): { pc: RTCPeerConnection; senders: RTCRtpSender[] } {
  const pc = createPeer({
    // No STUN or TURN: the relay's address is configured.
    address: config.ip,
    // werift quirk: [n, n] throws ("should not be same value"); portRangesToTry never makes one.
    portRange,
    // Opus and the audio level extension (createPeer's defaults); the answer takes the offer's
    // Opus payload type (werift answers with the remote's numbers).
    // werift quirk: each transceiver added before the remote description gets its own (not yet
    // gathering) transport; a BUNDLE offer then moves every m-line onto the first one and the
    // others are dropped, so a leg binds one port. "max-bundle" here would share the transport from
    // the start, but made werift fail some legs ("ICE or DTLS failed") when several connect at
    // once, so the default policy stays and offers with several m-lines must be bundled.
  });
  // werift quirk: the transceiver setRemoteDescription creates for an offered m-line is recvonly,
  // so the answer would be recvonly. Sendrecv transceivers added first (same kind, mid still null)
  // are adopted for the m-lines in order instead, and the answer is sendrecv (sendonly where the
  // client offered recvonly).
  const senders: RTCRtpSender[] = [];
  for (let i = 0; i < sections; i++) senders.push(pc.addTransceiver("audio", { direction: "sendrecv" }).sender);
  return { pc, senders };
}

let negotiationQueue: Promise<unknown> = Promise.resolve();

/**
 * Applies the client's offer and resolves with the complete answer SDP, candidates included
 * (no trickle ICE), after checking every candidate is on the configured address and ports;
 * resolves null when no port in the peer connection's range was free.
 *
 * Negotiations run one at a time in the process, so two gatherings here never probe the same
 * port at once (see portRangesToTry for the werift quirk).
 */
export function answerOffer(
  pc: RTCPeerConnection,
  offerSdp: string,
  config: MediaConfig,
  opus: OpusSettings = DEFAULT_OPUS_SETTINGS,
): Promise<string | null> {
  const run = negotiationQueue.then(() => withTimeout(negotiate(pc, offerSdp, config, opus), NEGOTIATION_TIMEOUT_MS));
  negotiationQueue = run.catch(() => undefined);
  return run;
}

async function negotiate(
  pc: RTCPeerConnection,
  offerSdp: string,
  config: MediaConfig,
  opus: OpusSettings,
): Promise<string | null> {
  await pc.setRemoteDescription({ type: "offer", sdp: offerSdp });
  // werift answers with the offer's own codec objects, fmtp included (Chromium offers
  // "minptime=10;useinbandfec=1"): the relay's wishes replace the offer's FEC and DTX parameters.
  for (const transceiver of pc.getTransceivers()) {
    for (const codec of transceiver.codecs) {
      if (codec.name.toLowerCase() === "opus") codec.parameters = opusAnswerParameters(codec.parameters, opus);
    }
  }
  // The peer clears werift's fallback STUN server right before gathering (see createPeer).
  await pc.setLocalDescription(await pc.createAnswer());
  // werift 0.24 setLocalDescription already awaits gathering; wait anyway should that change.
  if (pc.iceGatheringState !== "complete") await gatheringComplete(pc);
  const answer = pc.localDescription?.sdp;
  if (!answer) throw new Error("werift produced no local description");

  const candidates = sdpCandidates(answer);
  // werift quirk: a failed bind ("port not found") is logged to its debug log and swallowed;
  // an answer without candidates is the only sign.
  if (candidates.length === 0) return null;
  const stray = candidates.find(
    (c) => c.protocol !== "udp" || c.address !== config.ip || c.port < config.portMin || c.port > config.portMax,
  );
  if (stray) throw new Error(`werift advertised a candidate outside the media config: ${JSON.stringify(stray)}`);
  return answer;
}

function gatheringComplete(pc: RTCPeerConnection): Promise<void> {
  return new Promise((resolve, reject) => {
    const { unSubscribe } = pc.iceGatheringStateChange.subscribe(
      (state) => {
        if (state !== "complete") return;
        unSubscribe();
        resolve();
      },
      () => reject(new Error("the peer connection closed while gathering ICE candidates")),
    );
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`media negotiation took over ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
