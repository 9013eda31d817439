import type { CallEnd } from "@parley/client";
import type { ErrorCode } from "@parley/protocol";
import type { MessageKey } from "../i18n.js";

/** Why the call panel closed, as the user is told for a few seconds. */
export const END_KINDS = [
  "declined",
  "declinedByMe",
  "noAnswer",
  "missed",
  "busy",
  "offline",
  "cancelled",
  "ended",
  "connectionLost",
  "mediaFailed",
  "operator",
  "serverShutdown",
  "serverRestarted",
  "answeredElsewhere",
  "alreadyInCall",
  "failed",
] as const;
export type EndKind = (typeof END_KINDS)[number];

export const END_MESSAGES: Record<EndKind, MessageKey> = {
  declined: "endDeclined",
  declinedByMe: "endDeclinedByMe",
  noAnswer: "endNoAnswer",
  missed: "endMissed",
  busy: "endBusy",
  offline: "endOffline",
  cancelled: "endCancelled",
  ended: "endEnded",
  connectionLost: "endConnectionLost",
  mediaFailed: "endMediaFailed",
  operator: "endOperator",
  serverShutdown: "endServerShutdown",
  serverRestarted: "endServerRestarted",
  answeredElsewhere: "endAnsweredElsewhere",
  alreadyInCall: "errAlreadyInCall",
  failed: "endFailed",
};

/** How a call that was set up ended, from this device's side. */
export function endKindOf(direction: "outgoing" | "incoming", end: CallEnd): EndKind {
  switch (end.reason) {
    case "declined":
      return direction === "outgoing" ? "declined" : "declinedByMe";
    case "cancelled":
      return "cancelled";
    case "no_answer":
      return direction === "outgoing" ? "noAnswer" : "missed";
    case "hangup":
      return "ended";
    case "answered_elsewhere":
      return "answeredElsewhere";
    case "connection_lost":
      return "connectionLost";
    case "media_failed":
      return "mediaFailed";
    case "operator":
      return "operator";
    case "server_shutdown":
      return "serverShutdown";
    case "server_restarted":
      return "serverRestarted";
    default:
      return "ended";
  }
}

/** How a call that could not be placed ended (the invite was refused). */
export function inviteFailureKind(code: ErrorCode | undefined): EndKind {
  switch (code) {
    case "USER_BUSY":
      return "busy";
    case "USER_OFFLINE":
      return "offline";
    case "ALREADY_IN_CALL":
      return "alreadyInCall";
    default:
      return "failed";
  }
}
