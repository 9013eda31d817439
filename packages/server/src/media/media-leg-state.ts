/**
 * States of one media leg (one client's WebRTC connection to the relay).
 *
 *   connecting --ICE and DTLS up--> connected
 *       |                               |
 *       +--ICE/DTLS failed, timeout-----+--consent lost, DTLS failed--> failed
 *
 *   any state --close()--> closed        (a failed leg closes itself right after)
 *
 * "disconnected" from werift is transient (consent checks may recover) and is not a state
 * here; if it does not recover werift reports "failed".
 */
export const MEDIA_LEG_STATES = ["connecting", "connected", "failed", "closed"] as const;
export type MediaLegState = (typeof MEDIA_LEG_STATES)[number];

const ALLOWED: Record<MediaLegState, readonly MediaLegState[]> = {
  connecting: ["connected", "failed", "closed"],
  connected: ["failed", "closed"],
  failed: ["closed"],
  closed: [],
};

export function canTransition(from: MediaLegState, to: MediaLegState): boolean {
  return ALLOWED[from].includes(to);
}
