/**
 * Why the relay dropped a datagram that reached a leg's port (relay-wide counts, in /metrics as
 * parley_media_dropped_total{reason}):
 * - replay: an SRTP packet whose index was already received (RFC 3711 3.3.2);
 * - too_old: an SRTP packet behind the replay window, too old to tell;
 * - wrong_source: RTP or RTCP from an address other than the leg's selected ICE pair (or before
 *   ICE selected one);
 * - auth_failed: SRTP that did not authenticate (forged, corrupted, other keys);
 * - unknown_ssrc: RTP from an SSRC the client did not declare;
 * - malformed: a datagram that is none of STUN, DTLS, RTP or RTCP, or too short for its kind.
 */
export const MEDIA_DROP_REASONS = [
  "replay",
  "too_old",
  "wrong_source",
  "auth_failed",
  "unknown_ssrc",
  "malformed",
] as const;
export type MediaDropReason = (typeof MEDIA_DROP_REASONS)[number];

/** Running counts per reason; legs add to one relay-wide object (a field increment per drop). */
export type MediaDrops = Record<MediaDropReason, number>;

export function noMediaDrops(): MediaDrops {
  return { replay: 0, too_old: 0, wrong_source: 0, auth_failed: 0, unknown_ssrc: 0, malformed: 0 };
}
