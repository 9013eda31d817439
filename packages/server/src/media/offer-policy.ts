import { sdpLines } from "@parley/rtc";

/** The offers the relay answers: Parley's policy, on @parley/rtc's SDP reading. */

/** Offers are a few kilobytes; anything far larger is not from a softphone. */
const MAX_OFFER_LENGTH = 64 * 1024;

/**
 * Most audio m-lines an offer may have: the first carries the client's microphone both ways, each
 * further one (recvonly at the client) is one more stream the client can hear at once in a
 * conference.
 */
export const MAX_AUDIO_SECTIONS = 8;

/** Why the relay cannot answer this offer (1 to 8 audio m-lines offering Opus), or null if it can. */
export function offerProblem(sdp: string): string | null {
  if (sdp.length > MAX_OFFER_LENGTH) return "the SDP offer is too large";
  const all = sdpLines(sdp);
  const media = all.filter((line) => line.startsWith("m="));
  if (media.length === 0 || media.length > MAX_AUDIO_SECTIONS || media.some((line) => !line.startsWith("m=audio "))) {
    return `the SDP offer must have 1 to ${MAX_AUDIO_SECTIONS} m-lines, all audio`;
  }
  if (media.length > 1 && !all.some((line) => line.startsWith("a=group:BUNDLE "))) {
    return "an SDP offer with several m-lines must bundle them (a=group:BUNDLE)";
  }
  if (!all.some((line) => /^a=rtpmap:\d+ opus\/48000\/2\s*$/i.test(line))) {
    return "the SDP offer does not offer Opus (opus/48000/2)";
  }
  return null;
}
