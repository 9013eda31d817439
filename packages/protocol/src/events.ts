import { z } from "zod";
import { CallEndReason, CallId, CallInfo, CallOutcome } from "./calls.js";
import { DirectoryUser, PhonebookEntry, PresenceStatus, Self, UserId } from "./common.js";
import { OperatorEvents } from "./operator.js";

/** Server pushes: `{ type: "event", event, data }`. */
export const Events = {
  /** A user's visible status changed (came online, went offline, chose another status). */
  "presence.changed": z.object({ userId: UserId, status: PresenceStatus, devices: z.number().int() }),
  /** A new account appeared. */
  "directory.userAdded": z.object({ user: DirectoryUser }),
  /** A user's username or display name changed. */
  "directory.userUpdated": z.object({ user: DirectoryUser }),
  /** An account was deleted or disabled. */
  "directory.userRemoved": z.object({ userId: UserId }),
  /** Your own account changed (display name, username or status), from this or another device. */
  "account.updated": z.object({ user: Self }),
  /** Your phone book changed (from this or another device). */
  "phonebook.updated": z.object({ entries: z.array(PhonebookEntry) }),
  /** [ASK] A call rings on this device. */
  "call.incoming": z.object({
    call: CallInfo,
    /** Call waiting: the callee is already in another call (ring with a discreet signal). */
    waiting: z.boolean(),
  }),
  /** [STA, INF] A call this user takes part in changed: ringing, answered (state active), participants. */
  "call.info": z.object({ call: CallInfo }),
  /** [FIN] A call ended for this device, and why. `by` is the user who ended it, if one did. */
  "call.ended": z.object({
    callId: CallId,
    reason: CallEndReason,
    outcome: CallOutcome,
    by: UserId.nullable(),
  }),
  /**
   * The relay gets no audio from this device's media leg of the call any more (its network changed,
   * or the path failed): set up a new leg with `call.media`, which replaces the old one. Without a
   * working leg within the call grace period, the device leaves the call as `media_failed`.
   */
  "call.mediaRestart": z.object({ callId: CallId }),
  /** Sent right before the server closes this connection, with the close reason. */
  "session.ended": z.object({ reason: z.string(), message: z.string() }),
  /** Operator console: see operator.ts. */
  ...OperatorEvents,
} as const;

export type EventName = keyof typeof Events;
export type EventData<E extends EventName> = z.output<(typeof Events)[E]>;
