/**
 * The relay's data planes, the code that carries a connected leg's RTP:
 * - native: the C addon of @parley/rtc (its own media threads read the legs' sockets; SRTP by
 *   OpenSSL; no JavaScript per packet). The default where it builds and loads.
 * - js: the JavaScript fast plane (FastRtpPath: SRTP in this process's event loop, past werift's
 *   RTP stack). Where the native plane cannot be loaded, the relay runs this one.
 * - werift: werift's own RTP stack (the slowest; kept for comparison and diagnosis).
 * werift does ICE, DTLS and RTCP on every plane; legs on different planes forward to each other.
 */
export const DATA_PLANES = ["native", "js", "werift"] as const;
export type DataPlane = (typeof DATA_PLANES)[number];

/** The data plane `value` names, or null for anything else. */
export function parseDataPlane(value: string | undefined): DataPlane | null {
  return (DATA_PLANES as readonly string[]).includes(value ?? "") ? (value as DataPlane) : null;
}
