/**
 * Protocol version. Bumped on any incompatible change to a message; the
 * client states its version in `hello` and the server refuses versions it
 * does not speak with `PROTOCOL_VERSION_UNSUPPORTED`.
 */
export const PROTOCOL_VERSION = 1;

/** Versions this build of the server accepts. */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [1];

/** Path of the WebSocket signaling endpoint on the server's HTTP port. */
export const SIGNALING_PATH = "/ws";
