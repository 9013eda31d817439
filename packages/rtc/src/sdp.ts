/**
 * Small, line-based SDP reading (and the Opus fmtp rewrite): what the relay needs from offers and
 * its own answers, with no SDP object model. What Parley accepts as an offer is the server's
 * policy (its media/offer-policy.ts), built on these.
 */

export interface SdpCandidate {
  protocol: string;
  address: string;
  port: number;
  type: string;
}

/** The lines of an SDP (CRLF or LF). */
export function sdpLines(sdp: string): string[] {
  return sdp.split(/\r?\n/);
}

/**
 * werift quirk: incoming RTP is routed to a receiver by the SSRC from `a=ssrc` only (or by a
 * negotiated rid), so audio from a client whose offer declares no SSRC is silently dropped.
 */
export function declaresSsrc(sdp: string): boolean {
  return sdpLines(sdp).some((line) => line.startsWith("a=ssrc:"));
}

/** The SSRCs an SDP declares (`a=ssrc:<ssrc> ...`), the only ones werift routes RTP from. */
export function declaredSsrcs(sdp: string): Set<number> {
  const found = new Set<number>();
  for (const line of sdpLines(sdp)) {
    const match = /^a=ssrc:(\d+)/.exec(line);
    if (match) found.add(Number(match[1]) >>> 0);
  }
  return found;
}

/** Every `a=candidate` line of an SDP. */
export function sdpCandidates(sdp: string): SdpCandidate[] {
  const found: SdpCandidate[] = [];
  for (const line of sdpLines(sdp)) {
    // a=candidate:<foundation> <component> <protocol> <priority> <address> <port> typ <type> ...
    const match = /^a=candidate:\S+ \d+ (\S+) \d+ (\S+) (\d+) typ (\S+)/.exec(line);
    if (!match) continue;
    const [, protocol = "", address = "", port = "", type = ""] = match;
    found.push({ protocol: protocol.toLowerCase(), address, port: Number(port), type });
  }
  return found;
}

/** How many m-lines (media sections) an SDP has. */
export function mediaSectionCount(sdp: string): number {
  return sdpLines(sdp).filter((line) => line.startsWith("m=")).length;
}

/** RFC 6464 client-to-mixer audio level: the header extension that tells how loud each packet is. */
export const AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/** The RTP header extension id an SDP gives `uri` (`a=extmap:<id> <uri>`), or null. */
export function extensionId(sdp: string, uri: string): number | null {
  for (const line of sdpLines(sdp)) {
    const match = /^a=extmap:(\d+)(?:\/\w+)? (\S+)/.exec(line);
    if (match && match[2] === uri) return Number(match[1]);
  }
  return null;
}

/**
 * The Opus fmtp parameters of the relay's answer: the offer's (`minptime`, `stereo`...) with
 * `useinbandfec` and `usedtx` set to 1 when wanted and left out otherwise (RFC 7587: absent means
 * 0). They tell the client's encoder what the relay, and the listeners behind it, want to receive.
 */
export function opusAnswerParameters(offered: string | undefined, wanted: { fec: boolean; dtx: boolean }): string {
  const kept = (offered ?? "")
    .split(";")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "" && !/^(useinbandfec|usedtx)=/i.test(entry));
  if (wanted.fec) kept.push("useinbandfec=1");
  if (wanted.dtx) kept.push("usedtx=1");
  return kept.join(";");
}
