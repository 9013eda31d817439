/**
 * Stable error codes carried on the wire in `{ ok: false, error: { code, message } }`.
 * Codes are never renamed or reused; the message is for humans and may change.
 */
export const ERROR_CODES = [
  // Envelope and transport
  "BAD_JSON",
  "BAD_MESSAGE",
  "UNKNOWN_TYPE",
  "BAD_PARAMS",
  "RATE_LIMITED",
  "HELLO_REQUIRED",
  "ALREADY_HELLO",
  "PROTOCOL_VERSION_UNSUPPORTED",
  // Session state
  "NOT_AUTHENTICATED",
  "ALREADY_AUTHENTICATED",
  "SESSION_INVALID",
  // Accounts
  "INVALID_CREDENTIALS",
  "ACCOUNT_DISABLED",
  "TOO_MANY_ATTEMPTS",
  "SIGNUP_DISABLED",
  "USERNAME_TAKEN",
  "INVALID_USERNAME",
  "INVALID_PASSWORD",
  "WRONG_PASSWORD",
  "TOO_MANY_DEVICES",
  // Directory and phone book
  "USER_NOT_FOUND",
  "ENTRY_NOT_FOUND",
  "ENTRY_EXISTS",
  "PHONEBOOK_FULL",
  // Calls
  "CANNOT_CALL_SELF",
  "USER_OFFLINE",
  "USER_BUSY",
  "ALREADY_IN_CALL",
  "CALL_NOT_FOUND",
  "CALL_ENDED",
  "CALL_ALREADY_ANSWERED",
  "NOT_IN_CALL",
  "CALL_NOT_ACTIVE",
  "CONFERENCE_FULL",
  "ALREADY_PARTICIPANT",
  "MEDIA_FAILED",
  "TOO_MANY_CALLS",
  "MEDIA_CAPACITY",
  // Operator
  "NOT_OPERATOR",
  // Server
  "INTERNAL_ERROR",
  "SERVER_BUSY",
  "STORAGE_UNAVAILABLE",
  "CLUSTER_UNAVAILABLE",
  "NODE_UNREACHABLE",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Default human message for each code. */
export const ERROR_MESSAGES: Record<ErrorCode, string> = {
  BAD_JSON: "The message is not valid JSON.",
  BAD_MESSAGE: "The message is not a request: it needs a string 'type' and a string 'requestId'.",
  UNKNOWN_TYPE: "Unknown message type.",
  BAD_PARAMS: "The request's parameters are invalid.",
  RATE_LIMITED: "Too many messages; slow down.",
  HELLO_REQUIRED: "Send 'hello' with your protocol version first.",
  ALREADY_HELLO: "'hello' was already sent on this connection.",
  PROTOCOL_VERSION_UNSUPPORTED: "This server does not speak that protocol version.",
  NOT_AUTHENTICATED: "Log in first.",
  ALREADY_AUTHENTICATED: "This connection is already logged in; log out first.",
  SESSION_INVALID: "The session has expired or was ended; log in again.",
  INVALID_CREDENTIALS: "Wrong username or password.",
  ACCOUNT_DISABLED: "This account is disabled.",
  TOO_MANY_ATTEMPTS: "Too many failed attempts; try again later.",
  SIGNUP_DISABLED: "Registration is turned off on this server.",
  USERNAME_TAKEN: "That username is already taken.",
  INVALID_USERNAME:
    "Usernames are 3-32 characters: lower-case letters, digits, '.', '-' or '_', starting with a letter or digit.",
  INVALID_PASSWORD: "Passwords are 8-128 characters.",
  WRONG_PASSWORD: "The current password is wrong.",
  TOO_MANY_DEVICES: "This account is connected on too many devices; log out of one first.",
  USER_NOT_FOUND: "No such user.",
  ENTRY_NOT_FOUND: "No such phone book entry.",
  ENTRY_EXISTS: "That user is already in your phone book.",
  PHONEBOOK_FULL: "The phone book is full.",
  CANNOT_CALL_SELF: "You cannot call yourself.",
  USER_OFFLINE: "That user is not connected (unreachable).",
  USER_BUSY: "That user is busy (do not disturb).",
  ALREADY_IN_CALL: "You are already in a call; put it on hold first.",
  CALL_NOT_FOUND: "No such call.",
  CALL_ENDED: "That call has already ended.",
  CALL_ALREADY_ANSWERED: "That call was already answered.",
  NOT_IN_CALL: "This device does not take part in that call.",
  CALL_NOT_ACTIVE: "That call has not been answered yet.",
  CONFERENCE_FULL: "The call has reached the server's maximum number of participants.",
  ALREADY_PARTICIPANT: "That user already takes part in this call.",
  MEDIA_FAILED: "The media connection could not be set up.",
  TOO_MANY_CALLS: "You have too many calls at once (held ones count); hang up one first.",
  MEDIA_CAPACITY: "The server's media relay is at capacity; try again later.",
  NOT_OPERATOR: "Only operators may do that; ask an operator to grant you the role.",
  INTERNAL_ERROR: "Internal server error.",
  SERVER_BUSY: "The server is busy; try again in a moment.",
  STORAGE_UNAVAILABLE: "The server cannot reach its database right now; try again in a moment.",
  CLUSTER_UNAVAILABLE:
    "This server has lost contact with the rest of the cluster and cannot take logins right now; try again in a moment.",
  NODE_UNREACHABLE: "Another node of the cluster did not answer; try again, or act through that node.",
};

export interface WireError {
  code: ErrorCode;
  message: string;
}

/**
 * The one error class of Parley: a stable `code`, a human `message`, an optional `cause`.
 * Thrown by server handlers (and turned into an error reply) and by the client SDK
 * (when a request fails).
 */
export class ParleyError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERROR_MESSAGES[code], options);
    this.name = "ParleyError";
    this.code = code;
  }

  toWire(): WireError {
    return { code: this.code, message: this.message };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && (ERROR_CODES as readonly string[]).includes(value);
}
