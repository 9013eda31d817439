/**
 * WebSocket close codes the server uses. 1000-1011 are RFC 6455 codes; 4000-4999
 * are Parley's own. The close reason string is the key below (e.g. "KICKED").
 */
export const CloseCode = {
  /** Client logged out or closed normally. */
  NORMAL: 1000,
  /** Server is shutting down. */
  GOING_AWAY: 1001,
  /** Frame larger than MAX_MESSAGE_BYTES (sent by the WebSocket layer). */
  MESSAGE_TOO_BIG: 1009,
  /** An operator kicked this connection. */
  KICKED: 4001,
  /** The account was disabled by an operator. */
  ACCOUNT_DISABLED: 4002,
  /** The session was ended elsewhere: logout of all devices, password change, account deleted. */
  SESSION_REVOKED: 4003,
  /** Sustained flooding past the per-connection rate limit. */
  FLOODING: 4004,
  /** The client's protocol version is not supported. */
  PROTOCOL_VERSION_UNSUPPORTED: 4005,
  /** No `hello` within the handshake timeout. */
  HELLO_TIMEOUT: 4006,
  /** Refused at connect: the server's connection cap, or the cap per client address, is reached. */
  TOO_MANY_CONNECTIONS: 4007,
  /** No successful login (or resume) within the login deadline after `hello`. */
  LOGIN_TIMEOUT: 4008,
  /** The session reached its idle or absolute expiry while the connection was open. */
  SESSION_EXPIRED: 4009,
} as const;

export type CloseReason = keyof typeof CloseCode;

export function closeReasonOf(code: number): CloseReason | undefined {
  for (const [reason, value] of Object.entries(CloseCode)) {
    if (value === code) return reason as CloseReason;
  }
  return undefined;
}
