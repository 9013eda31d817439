import { type ErrorCode, isErrorCode } from "@parley/protocol";
import type { MessageKey, Translate } from "../i18n.js";

/** The stable error code of a failed request, if the failure came from the server. */
export function errorCodeOf(error: unknown): ErrorCode | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return isErrorCode(code) ? code : undefined;
}

const MESSAGES: Partial<Record<ErrorCode, MessageKey>> = {
  INVALID_CREDENTIALS: "errInvalidCredentials",
  USERNAME_TAKEN: "errUsernameTaken",
  INVALID_USERNAME: "errInvalidUsername",
  INVALID_PASSWORD: "errInvalidPassword",
  SIGNUP_DISABLED: "errSignupDisabled",
  TOO_MANY_ATTEMPTS: "errTooManyAttempts",
  ACCOUNT_DISABLED: "errAccountDisabled",
  SESSION_INVALID: "errSessionInvalid",
  WRONG_PASSWORD: "errWrongPassword",
  USER_NOT_FOUND: "errUserNotFound",
  ENTRY_EXISTS: "errEntryExists",
  ENTRY_NOT_FOUND: "errEntryNotFound",
  PHONEBOOK_FULL: "errPhonebookFull",
  RATE_LIMITED: "errRateLimited",
  CANNOT_CALL_SELF: "errCannotCallSelf",
  ALREADY_IN_CALL: "errAlreadyInCall",
  CONFERENCE_FULL: "errConferenceFull",
  ALREADY_PARTICIPANT: "errAlreadyParticipant",
  USER_OFFLINE: "errUserOffline",
  USER_BUSY: "errUserBusy",
  BAD_PARAMS: "errBadParams",
};

/** Thrown by the store when there is no usable connection. */
export class NotConnectedError extends Error {
  constructor() {
    super("Not connected.");
    this.name = "NotConnectedError";
  }
}

/** The server address could not be reached. */
export class UnreachableError extends Error {
  readonly url: string;
  constructor(url: string, options?: { cause?: unknown }) {
    super(`Cannot reach the server at ${url}.`, options);
    this.name = "UnreachableError";
    this.url = url;
  }
}

/** A sentence for the user about a failed action. */
export function describeError(t: Translate, error: unknown): string {
  const code = errorCodeOf(error);
  const key = code ? MESSAGES[code] : undefined;
  if (key) return t(key);
  if (error instanceof NotConnectedError) return t("errNotConnected");
  const message = error instanceof Error ? error.message : String(error);
  if (/timed out/i.test(message)) return t("errTimeout");
  if (/closed|not connected/i.test(message)) return t("errNotConnected");
  return t("errGeneric", { message });
}
