import { z } from "zod";
import { Timestamp, UserId } from "./common.js";

/** Call ids are opaque strings (UUIDs). */
export const CallId = z.string().min(1).max(64);

/**
 * Call states. A call has participants: the caller and everyone invited (one for a 1:1 call,
 * several for a group call, more added later turn it into a conference).
 *
 *   ringing --first answer--> active --fewer than two participants left--> ended
 *      |                                                                    ^
 *      +--decline / cancel / no answer by every invitee, caller cancels ----+
 */
export const CALL_STATES = ["ringing", "active", "ended"] as const;
export const CallState = z.enum(CALL_STATES);
export type CallState = z.infer<typeof CallState>;

/**
 * A participant's state within a call: the caller is "calling" until someone answers, then
 * "connected"; an invitee is "ringing", then "connected" once they answer; "left" is anyone who
 * hung up, declined, was not reached or did not answer while the call goes on for the others.
 */
export const PARTICIPANT_STATES = ["calling", "ringing", "connected", "left"] as const;
export const ParticipantState = z.enum(PARTICIPANT_STATES);
export type ParticipantState = z.infer<typeof ParticipantState>;

export const CallParticipant = z.object({
  userId: UserId,
  username: z.string(),
  displayName: z.string(),
  /** "caller" started the call; "callee" was invited (at the start or added later). */
  role: z.enum(["caller", "callee"]),
  /** Who invited this participant (the caller, or whoever added them later); null for the caller. */
  invitedBy: UserId.nullable(),
  state: ParticipantState,
  /** This participant put the call on hold (or answered another call): no audio flows to or from them. */
  held: z.boolean(),
  /** This participant muted their microphone. */
  muted: z.boolean(),
  /** The server hears this participant talking (from their audio levels). */
  speaking: z.boolean(),
  /**
   * This participant's connection dropped: the call keeps them (and their audio) for the call
   * grace period while their device reconnects.
   */
  reconnecting: z.boolean().optional(),
});
export type CallParticipant = z.infer<typeof CallParticipant>;

/** [INF] What a participant knows about a call: pushed as `call.info` on every change. */
export const CallInfo = z.object({
  callId: CallId,
  state: CallState,
  createdAt: Timestamp,
  /** When the call was answered (the call's start time), null while ringing. */
  answeredAt: Timestamp.nullable(),
  /** Everyone invited so far, in the order they were invited (the caller first). */
  participants: z.array(CallParticipant),
  /** More than two people were invited: a conference (group call). */
  conference: z.boolean(),
  /** The most participants this call may have (the server's configured conference size). */
  maxParticipants: z.number().int().positive(),
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
  /** In a cluster: the node that held the call died; told by the participant's own node. */
  "node_lost",
  /** Told by the client, not the server: it reconnected to a server that restarted meanwhile. */
  "server_restarted",
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
  /** The server stopped (crash, power cut) while the call went on; closed at the next start. */
  "interrupted",
] as const;
export const CallOutcome = z.enum(CALL_OUTCOMES);
export type CallOutcome = z.infer<typeof CallOutcome>;

const HistoryParty = z.object({ userId: UserId.nullable(), username: z.string(), displayName: z.string() });

export const CallHistoryEntry = z.object({
  callId: CallId,
  direction: z.enum(["outgoing", "incoming"]),
  /**
   * The other party (for a conference: the caller, or for the caller the first invitee);
   * userId is null when that account was deleted since.
   */
  peer: HistoryParty,
  /** Everyone else invited to the call, the caller first (one entry for a 1:1 call). */
  participants: z.array(HistoryParty),
  /** A group call or conference (more than two people invited). */
  conference: z.boolean(),
  createdAt: Timestamp,
  answeredAt: Timestamp.nullable(),
  endedAt: Timestamp,
  durationMs: z.number().int().nonnegative(),
  outcome: CallOutcome,
  /** Time the answered call spent on hold. */
  heldMs: z.number().int().nonnegative(),
  /** An incoming call this user did not answer (and did not decline). */
  missed: z.boolean(),
});
export type CallHistoryEntry = z.infer<typeof CallHistoryEntry>;

/** SDP is bounded well under the frame limit. */
export const Sdp = z
  .string()
  .min(10)
  .max(16 * 1024);
