import { z } from "zod";
import { Timestamp, UserId } from "./common.js";

/** Call ids are opaque strings (UUIDs). */
export const CallId = z.string().min(1).max(64);

/**
 * Call states.
 *
 *   ringing --answer--> active --hangup--> ended
 *      |                                    ^
 *      +--decline / cancel / no answer -----+
 */
export const CALL_STATES = ["ringing", "active", "ended"] as const;
export const CallState = z.enum(CALL_STATES);
export type CallState = z.infer<typeof CallState>;

/** A participant's state within a call. */
export const PARTICIPANT_STATES = ["calling", "ringing", "connected", "left"] as const;
export const ParticipantState = z.enum(PARTICIPANT_STATES);
export type ParticipantState = z.infer<typeof ParticipantState>;

export const CallParticipant = z.object({
  userId: UserId,
  username: z.string(),
  displayName: z.string(),
  role: z.enum(["caller", "callee"]),
  state: ParticipantState,
  /** This participant put the call on hold (or answered another call): no audio flows to or from them. */
  held: z.boolean(),
  /** This participant muted their microphone. */
  muted: z.boolean(),
});
export type CallParticipant = z.infer<typeof CallParticipant>;

/** [INF] What a participant knows about a call: pushed as `call.info` on every change. */
export const CallInfo = z.object({
  callId: CallId,
  state: CallState,
  createdAt: Timestamp,
  /** When the call was answered (the call's start time), null while ringing. */
  answeredAt: Timestamp.nullable(),
  participants: z.array(CallParticipant),
});
export type CallInfo = z.infer<typeof CallInfo>;

/** Why a call ended, as told to its participants in `call.ended`. */
export const CALL_END_REASONS = [
  "hangup",
  "declined",
  "cancelled",
  "no_answer",
  "answered_elsewhere",
  "connection_lost",
  "media_failed",
  "operator",
  "server_shutdown",
] as const;
export const CallEndReason = z.enum(CALL_END_REASONS);
export type CallEndReason = z.infer<typeof CallEndReason>;

/** How a call is recorded in the history. */
export const CALL_OUTCOMES = [
  "answered",
  "declined",
  "busy",
  "no_answer",
  "cancelled",
  "unreachable",
  "failed",
] as const;
export const CallOutcome = z.enum(CALL_OUTCOMES);
export type CallOutcome = z.infer<typeof CallOutcome>;

export const CallHistoryEntry = z.object({
  callId: CallId,
  direction: z.enum(["outgoing", "incoming"]),
  /** The other party; userId is null when that account was deleted since. */
  peer: z.object({ userId: UserId.nullable(), username: z.string(), displayName: z.string() }),
  createdAt: Timestamp,
  answeredAt: Timestamp.nullable(),
  endedAt: Timestamp,
  durationMs: z.number().int().nonnegative(),
  outcome: CallOutcome,
  /** Time the answered call spent on hold. */
  heldMs: z.number().int().nonnegative(),
  /** An incoming call that was not answered (and not declined by the user). */
  missed: z.boolean(),
});
export type CallHistoryEntry = z.infer<typeof CallHistoryEntry>;

/** SDP is bounded well under the frame limit. */
export const Sdp = z
  .string()
  .min(10)
  .max(16 * 1024);
