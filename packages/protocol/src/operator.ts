import { z } from "zod";
import { CallId, CallOutcome } from "./calls.js";
import { Password, PresenceStatus, Timestamp, UserId, UsernameRef } from "./common.js";

/**
 * The operator's view of the server (O2, O3): only ever sent to accounts with the operator role,
 * in replies to `operator.*` requests and in the `operator.snapshot` event. Unlike the directory,
 * it carries client addresses.
 */

/** One connected device (signaling connection) of a user. */
export const OperatorDevice = z.object({
  connectionId: z.number().int(),
  deviceName: z.string(),
  /** The client's IP address as the server sees it. Operators only. */
  address: z.string(),
  connectedAt: Timestamp,
});
export type OperatorDevice = z.infer<typeof OperatorDevice>;

/** Where a user is online in a cluster: a node and the user's devices logged in there. */
export const OperatorUserNode = z.object({
  node: z.string(),
  devices: z.number().int().nonnegative(),
});
export type OperatorUserNode = z.infer<typeof OperatorUserNode>;

/** One account as the operator sees it. */
export const OperatorUser = z.object({
  id: UserId,
  username: z.string(),
  displayName: z.string(),
  status: PresenceStatus,
  disabled: z.boolean(),
  operator: z.boolean(),
  devices: z.array(OperatorDevice),
  /** When the earliest connected device connected; null when offline. */
  connectedSince: Timestamp.nullable(),
  createdAt: Timestamp,
  lastLoginAt: Timestamp.nullable(),
  /** The live call the user takes part in (ringing or answered), if any. */
  callId: CallId.nullable(),
  /**
   * In a cluster (`--redis`) only: the nodes the user's devices are logged in on (empty when offline).
   * `devices` above lists this node's devices only, with their addresses.
   */
  nodes: z.array(OperatorUserNode).optional(),
});
export type OperatorUser = z.infer<typeof OperatorUser>;

/**
 * One media leg (a device's WebRTC connection to the relay), measured at the server. `packetsLost`
 * and `jitterMs` are of the audio the server receives from the client (from RTP sequence numbers
 * and arrival times); `roundTripMs` comes from the client's RTCP receiver reports; each is null
 * until measured.
 */
export const OperatorLeg = z.object({
  connectionId: z.number().int(),
  username: z.string().nullable(),
  state: z.string(),
  packetsIn: z.number().int().nonnegative(),
  packetsOut: z.number().int().nonnegative(),
  bytesIn: z.number().int().nonnegative(),
  bytesOut: z.number().int().nonnegative(),
  packetsLost: z.number().int().nullable(),
  jitterMs: z.number().nullable(),
  roundTripMs: z.number().nullable(),
});
export type OperatorLeg = z.infer<typeof OperatorLeg>;

/**
 * What the operator sees of a call's state: `held` is an answered 1:1 call someone put on hold,
 * `conference` an answered call with more than two people invited.
 */
export const OPERATOR_CALL_STATES = ["ringing", "active", "held", "conference"] as const;
export const OperatorCallState = z.enum(OPERATOR_CALL_STATES);

export const OperatorCall = z.object({
  callId: CallId,
  state: OperatorCallState,
  /** Usernames of the participants still in the call, talking or ringing (caller first). */
  participants: z.array(z.string()),
  createdAt: Timestamp,
  answeredAt: Timestamp.nullable(),
  /** Time since the answer (or since the call was placed, while it rings). */
  durationMs: z.number().int().nonnegative(),
  legs: z.array(OperatorLeg),
  /** In a cluster (`--redis`) only: the id of the node that owns the call (its state machine and media). */
  node: z.string().optional(),
});
export type OperatorCall = z.infer<typeof OperatorCall>;

export const ServerSummary = z.object({
  version: z.string(),
  startedAt: Timestamp,
  uptimeSeconds: z.number().int().nonnegative(),
  /** Process CPU use since the previous sample, in percent of one core. */
  cpuPercent: z.number().nonnegative(),
  rssBytes: z.number().int().nonnegative(),
  heapUsedBytes: z.number().int().nonnegative(),
  /** Open signaling connections (logged in or not). */
  connections: z.number().int().nonnegative(),
  usersOnline: z.number().int().nonnegative(),
  accounts: z.number().int().nonnegative(),
  calls: z.number().int().nonnegative(),
  mediaLegs: z.number().int().nonnegative(),
  packetsRelayed: z.number().int().nonnegative(),
  /** RTP packets forwarded per second since the previous sample. */
  packetsPerSecond: z.number().nonnegative(),
  signupEnabled: z.boolean(),
});
export type ServerSummary = z.infer<typeof ServerSummary>;

/** A node of a cluster as its last heartbeat described it (NodeRegistry.liveNodes()). */
export const OperatorNode = z.object({
  id: z.string(),
  /** The address its media relay advertises to clients. */
  mediaAddress: z.string(),
  startedAt: Timestamp,
  heartbeatAt: Timestamp,
  /** The node that answered this request. */
  self: z.boolean(),
  /** Heart-beating: nodes declared dead are not listed, so always true when listed. */
  alive: z.boolean(),
  load: z.object({
    /** Users with at least one device logged in on the node. */
    users: z.number().int().nonnegative(),
    /** Live calls whose state machine the node owns. */
    calls: z.number().int().nonnegative(),
    /** Media legs open on its relay. */
    legs: z.number().int().nonnegative(),
  }),
});
export type OperatorNode = z.infer<typeof OperatorNode>;

/** Everything the operator page shows live: pushed every second to subscribed operators. */
export const OperatorSnapshot = z.object({
  at: Timestamp,
  server: ServerSummary,
  users: z.array(OperatorUser),
  calls: z.array(OperatorCall),
  /** In a cluster (`--redis`) only: the live nodes, the one answering first. */
  nodes: z.array(OperatorNode).optional(),
  /**
   * In a cluster only, when some live node did not send its calls in time: their ids (their calls
   * are missing from `calls`).
   */
  unansweredNodes: z.array(z.string()).optional(),
});
export type OperatorSnapshot = z.infer<typeof OperatorSnapshot>;

export const AuditEntry = z.object({
  id: z.number().int(),
  at: Timestamp,
  action: z.string(),
  actor: z.string().nullable(),
  username: z.string().nullable(),
  address: z.string().nullable(),
  detail: z.record(z.string(), z.unknown()).nullable(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;

/** A call of anyone's history, as the operator searches it. */
export const OperatorHistoryCall = z.object({
  callId: CallId,
  caller: z.string(),
  callee: z.string(),
  createdAt: Timestamp,
  answeredAt: Timestamp.nullable(),
  endedAt: Timestamp,
  durationMs: z.number().int().nonnegative(),
  outcome: CallOutcome,
  endReason: z.string().nullable(),
});
export type OperatorHistoryCall = z.infer<typeof OperatorHistoryCall>;

const Since = z.iso.datetime().optional();
const Empty = z.strictObject({});
const Target = z.strictObject({ username: UsernameRef });

/** The operator requests (merged into `Requests`); every one answers NOT_OPERATOR to other accounts. */
export const OperatorRequests = {
  /** The live view once. */
  "operator.snapshot": { params: Empty, result: OperatorSnapshot },
  /** The live view now, then an `operator.snapshot` event every second until `operator.unsubscribe`. */
  "operator.subscribe": { params: Empty, result: OperatorSnapshot },
  "operator.unsubscribe": { params: Empty, result: Empty },
  /** Disconnect every device of a user (they may log in again), on every node of a cluster. */
  "operator.kick": { params: Target, result: z.object({ devices: z.number().int() }) },
  /** Lock (disconnecting it) or unlock an account. */
  "operator.setDisabled": {
    params: z.strictObject({ username: UsernameRef, disabled: z.boolean() }),
    result: z.object({ user: OperatorUser }),
  },
  /** Set a new password (a random one, returned, when none is given); ends every session of the account. */
  "operator.resetPassword": {
    params: z.strictObject({ username: UsernameRef, password: Password.optional() }),
    result: z.object({ password: z.string().nullable() }),
  },
  /** Grant or revoke the operator role. */
  "operator.setOperator": {
    params: z.strictObject({ username: UsernameRef, operator: z.boolean() }),
    result: z.object({ user: OperatorUser }),
  },
  /** End a live call for everyone in it (reason "operator"), on whichever node of a cluster owns it. */
  "operator.endCall": { params: z.strictObject({ callId: CallId }), result: Empty },
  /** Turn self-signup on or off. */
  "operator.setSignup": {
    params: z.strictObject({ enabled: z.boolean() }),
    result: z.object({ enabled: z.boolean() }),
  },
  /** The audit log, oldest first: the newest `limit` entries matching every filter given. */
  "operator.audit": {
    params: z.strictObject({
      username: UsernameRef.optional(),
      action: z.string().max(64).optional(),
      since: Since,
      until: Since,
      limit: z.number().int().min(1).max(5000).optional(),
    }),
    result: z.object({ entries: z.array(AuditEntry) }),
  },
  /** Everyone's call history, newest first, filtered by participant, outcome and time. */
  "operator.callHistory": {
    params: z.strictObject({
      username: UsernameRef.optional(),
      outcome: CallOutcome.optional(),
      since: Since,
      until: Since,
      limit: z.number().int().min(1).max(5000).optional(),
    }),
    result: z.object({ calls: z.array(OperatorHistoryCall) }),
  },
} as const;

export const OperatorEvents = {
  /** The live view, every second to operators who sent `operator.subscribe`. */
  "operator.snapshot": OperatorSnapshot,
} as const;
