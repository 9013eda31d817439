import { z } from "zod";
import { CallHistoryEntry, CallId, CallInfo, Sdp } from "./calls.js";
import {
  AuthResult,
  DeviceName,
  DirectoryUser,
  DisplayName,
  Label,
  Notes,
  Password,
  PhonebookEntry,
  SelectableStatus,
  Self,
  Timestamp,
  Username,
  UsernameRef,
} from "./common.js";
import { CONFERENCE_MAX_LIMIT } from "./limits.js";
import { IceServer } from "./media.js";
import { OperatorRequests } from "./operator.js";

const Empty = z.strictObject({});

/**
 * Every request a client can send: its parameters and its result.
 * The wire form is `{ type, requestId, params }`; the reply is
 * `{ type: "response", requestId, ok: true, result }` or `{ ..., ok: false, error }`.
 * Seed keywords (see docs/protocol.md) are given in brackets.
 */
export const Requests = {
  /** First message on every connection: protocol version exchange. */
  hello: {
    params: z.strictObject({
      protocolVersion: z.number().int().positive(),
      client: z.strictObject({ name: z.string().max(64), version: z.string().max(32) }).optional(),
    }),
    result: z.object({
      protocolVersion: z.number().int(),
      serverVersion: z.string(),
      /**
       * Random per server start: a client that reconnects and finds another one knows the server
       * restarted, and that calls it was in are gone.
       */
      instanceId: z.string(),
      signupEnabled: z.boolean(),
      maxMessageBytes: z.number().int(),
    }),
  },
  /**
   * Liveness check from the client: the server answers at once. A client that gets no answer
   * within a few seconds takes its connection for dead (a network change leaves it silent).
   */
  ping: { params: Empty, result: Empty },
  /** [REG, CRE] Create an account and log this connection in. */
  "auth.register": {
    params: z.strictObject({
      username: Username,
      password: Password,
      displayName: DisplayName.optional(),
      deviceName: DeviceName.optional(),
    }),
    result: AuthResult,
  },
  /** [REG, LOG, PSS -> AUT] Log in with username and password. */
  "auth.login": {
    params: z.strictObject({
      username: UsernameRef,
      password: z.string().max(1024),
      deviceName: DeviceName.optional(),
      /**
       * The `deviceToken` an earlier login or registration on this device returned for this
       * account: exempts the attempt from the account-wide slowdown strangers' guesses cause.
       */
      deviceToken: z.string().max(256).optional(),
    }),
    result: AuthResult,
  },
  /** Resume a session with its token after a reconnect or a page reload. */
  "auth.resume": {
    params: z.strictObject({
      token: z.string().min(1).max(256),
      /**
       * Calls this device was in when its connection dropped, media still up: within the call
       * grace period the server hands them back to this connection (same media leg).
       */
      calls: z.array(CallId).max(16).optional(),
    }),
    result: AuthResult.extend({
      /** The calls of `calls` this connection took back, as they are now; the others are over. */
      calls: z.array(CallInfo).optional(),
    }),
  },
  /** [ENT] Log out this device, or every device of the account. */
  "auth.logout": {
    params: z.strictObject({ allDevices: z.boolean().optional() }),
    result: Empty,
  },
  "account.get": { params: Empty, result: Self },
  "account.setDisplayName": { params: z.strictObject({ displayName: DisplayName }), result: Self },
  "account.setUsername": { params: z.strictObject({ username: Username }), result: Self },
  /** Change password; the old one is required. Every other session of the account is ended. */
  "account.changePassword": {
    params: z.strictObject({ oldPassword: z.string().max(1024), newPassword: Password }),
    result: Empty,
  },
  /** Delete the account for good; the password is required. */
  "account.delete": { params: z.strictObject({ password: z.string().max(1024) }), result: Empty },
  /** List this account's sessions (devices). */
  "account.sessions": {
    params: Empty,
    result: z.object({
      sessions: z.array(
        z.object({
          id: z.number().int(),
          deviceName: z.string(),
          createdAt: Timestamp,
          lastSeenAt: Timestamp,
          expiresAt: Timestamp,
          current: z.boolean(),
          online: z.boolean(),
        }),
      ),
    }),
  },
  /** Choose a status: available, away or busy. */
  "presence.set": { params: z.strictObject({ status: SelectableStatus }), result: Self },
  /** [LSD -> LSR] The directory of users with live status. */
  "directory.list": { params: Empty, result: z.object({ users: z.array(DirectoryUser) }) },
  "phonebook.list": { params: Empty, result: z.object({ entries: z.array(PhonebookEntry) }) },
  "phonebook.add": {
    params: z.strictObject({
      username: UsernameRef,
      label: Label.optional(),
      notes: Notes.optional(),
      favourite: z.boolean().optional(),
    }),
    result: PhonebookEntry,
  },
  "phonebook.update": {
    params: z.strictObject({
      id: z.number().int().positive(),
      label: Label.optional(),
      notes: Notes.optional(),
      favourite: z.boolean().optional(),
    }),
    result: PhonebookEntry,
  },
  "phonebook.remove": { params: z.strictObject({ id: z.number().int().positive() }), result: Empty },
  /**
   * [CAL] Call a user (rings every device of the callee), or several at once: a group call
   * (conference) that goes on as long as two participants remain.
   */
  "call.invite": {
    params: z.strictObject({
      to: z.union([
        UsernameRef,
        z
          .array(UsernameRef)
          .min(1)
          .max(CONFERENCE_MAX_LIMIT - 1),
      ]),
    }),
    result: z.object({ call: CallInfo }),
  },
  /** Invite one more user into a call this device talks in, turning it into a conference. */
  "call.add": {
    params: z.strictObject({ callId: CallId, to: UsernameRef }),
    result: z.object({ call: CallInfo }),
  },
  /** [RES 1] Answer a ringing call on this device; the callee's other devices stop ringing. */
  "call.answer": { params: z.strictObject({ callId: CallId }), result: z.object({ call: CallInfo }) },
  /** [RES 0] Decline a ringing call. */
  "call.decline": { params: z.strictObject({ callId: CallId }), result: Empty },
  /** [FIN] Hang up: cancels a call still ringing (caller), declines it (callee), or ends it. */
  "call.hangup": { params: z.strictObject({ callId: CallId }), result: Empty },
  /**
   * Media setup for this device's leg of a call: the client's SDP offer (one audio m-line, Opus,
   * ICE candidates gathered) in, the server's SDP answer out. Allowed while the call rings, so
   * audio flows the moment it is answered.
   */
  "call.media": { params: z.strictObject({ callId: CallId, sdp: Sdp }), result: z.object({ sdp: z.string() }) },
  /**
   * The relay (TURN) servers this device may use for its next media leg, with fresh short-lived
   * credentials; empty when the server has none configured. Asked before each `call.media` offer.
   */
  "media.iceServers": { params: Empty, result: z.object({ iceServers: z.array(IceServer) }) },
  /** Put the call on hold for this participant: no audio flows to or from them until `call.resume`. */
  "call.hold": { params: z.strictObject({ callId: CallId }), result: z.object({ call: CallInfo }) },
  /** Take the call off hold; the user's other calls go on hold (switching between calls). */
  "call.resume": { params: z.strictObject({ callId: CallId }), result: z.object({ call: CallInfo }) },
  /** Tell the others this participant's microphone is muted or not (the client mutes it locally). */
  "call.mute": {
    params: z.strictObject({ callId: CallId, muted: z.boolean() }),
    result: z.object({ call: CallInfo }),
  },
  /** The user's call history, newest first. */
  "call.history": {
    params: z.strictObject({
      limit: z.number().int().min(1).max(500).optional(),
      /** Only calls placed before this ISO 8601 time (for paging). */
      before: z.iso.datetime().optional(),
    }),
    result: z.object({ calls: z.array(CallHistoryEntry) }),
  },
  /** Operator console (O2, O3): see operator.ts. */
  ...OperatorRequests,
} as const;

export type RequestType = keyof typeof Requests;
export const REQUEST_TYPES = Object.keys(Requests) as RequestType[];
export type RequestParams<T extends RequestType> = z.input<(typeof Requests)[T]["params"]>;
export type ParsedParams<T extends RequestType> = z.output<(typeof Requests)[T]["params"]>;
export type RequestResult<T extends RequestType> = z.output<(typeof Requests)[T]["result"]>;

/** Requests allowed before login (after `hello`). */
export const ANONYMOUS_REQUESTS: readonly RequestType[] = [
  "hello",
  "ping",
  "auth.register",
  "auth.login",
  "auth.resume",
];

export function isRequestType(value: string): value is RequestType {
  return Object.hasOwn(Requests, value);
}
