import { randomUUID } from "node:crypto";
import {
  type CallEndReason,
  type CallHistoryEntry,
  type CallInfo,
  type CallOutcome,
  type EventData,
  type EventName,
  ParleyError,
} from "@parley/protocol";
import type { Logger } from "pino";
import type { AccountService } from "../accounts/account-service.js";
import type { AuditLog } from "../audit/audit-log.js";
import type { MediaRelay } from "../media/index.js";
import type { Device, PresenceService } from "../presence/presence-service.js";
import { Call, type Member, type Party } from "./call.js";
import type { CallHistoryStore } from "./call-history-store.js";
import { CallMedia } from "./call-media.js";
import { CallRecording } from "./call-recording.js";
import { routeCall } from "./call-routing.js";
import { EndedCalls } from "./ended-calls.js";
import { type LiveCall, liveCall } from "./live-call.js";
import { UserCalls } from "./user-calls.js";

export { type LiveCall, liveCallState } from "./live-call.js";

/** An invitee as read from the accounts: who, and whether they chose do-not-disturb. */
interface Target {
  party: Party;
  doNotDisturb: boolean;
}

/**
 * In a cluster: the devices of users connected to other nodes (cluster/call-bus.ts). Without one,
 * a call rings this node's devices only.
 */
export interface RemoteDevices {
  /** Devices the user has logged in on other nodes. */
  countOf(userId: number): number;
  /** The call now rings for `userId`: their devices on other nodes are asked for (they ring through `ringAlso`). */
  ring(callId: string, userId: number): void;
  /** Whether `device` stands for a device of another node that is still connected there. */
  isAttached(device: Device): boolean;
  /** Whether the user talks in a call on another node (a call rung for them now is call waiting). */
  inCall(userId: number): boolean;
  /** This node now holds `count` calls the user takes part in (shared for `--max-calls-per-user`). */
  callsChanged(userId: number, count: number): void;
  /** The calls these users take part in on the other nodes (read when a call is placed or grown). */
  callsElsewhere(userIds: readonly number[]): Promise<ReadonlyMap<number, number>>;
  /**
   * A device of this node takes back (`auth.resume`) calls this node does not know: their owners
   * re-bind it (see `reattachHere`) and hand back the calls taken.
   */
  reattach(device: Device, callIds: readonly string[]): Promise<CallInfo[]>;
}

/** Calls on other nodes, by user: none (a single server). */
const NO_CALLS_ELSEWHERE: ReadonlyMap<number, number> = new Map();

const UNANSWERED_OUTCOME: Partial<Record<CallEndReason, CallOutcome>> = {
  declined: "declined",
  no_answer: "no_answer",
  cancelled: "cancelled",
};

/**
 * C1-C11: call signaling. Rings every device of each invitee, connects answering devices' media
 * legs to each other (SFU: each participant hears the others on their receive slots), and ends
 * calls on hang up, decline, cancel, ring timeout, a lost connection or the operator; a
 * conference goes on while two participants remain. Every call is written to the history with
 * each participant's own outcome. The parts it composes: `routeCall` (who hears whom),
 * `CallMedia` (leg setup and recovery), `CallRecording` (history writes), `UserCalls` (each
 * user's calls); a participant's state changes through `Member`'s and `Call`'s own methods.
 */
export class CallService {
  readonly #calls = new Map<string, Call>();
  /** Calls (ringing or active) each user takes part in or rings for. */
  readonly #byUser = new UserCalls((userId, count) => this.#remote?.callsChanged(userId, count));
  /** Recently ended calls, to answer late requests with CALL_ENDED and tell reconnecting users. */
  readonly #ended = new EndedCalls();
  readonly #accounts: AccountService;
  readonly #presence: PresenceService;
  readonly #recording: CallRecording;
  readonly #media: CallMedia;
  readonly #audit: AuditLog;
  readonly #logger: Logger;
  readonly #ringTimeoutMs: number;
  readonly #callGraceMs: number;
  readonly #maxParticipants: number;
  readonly #maxCallsPerUser: number;
  #remote: RemoteDevices | undefined;

  constructor(deps: {
    accounts: AccountService;
    presence: PresenceService;
    history: CallHistoryStore;
    media: MediaRelay;
    audit: AuditLog;
    logger: Logger;
    ringTimeoutMs: number;
    /** How long a call waits for a participant whose connection was lost (0: not at all). */
    callGraceMs: number;
    /** Largest conference, the caller included. */
    maxParticipants: number;
    /** Calls one user may be in at once, ringing and held ones included. */
    maxCallsPerUser: number;
    /** Media legs the relay may hold at once (below the number of ports in its range). */
    maxMediaLegs: number;
  }) {
    this.#accounts = deps.accounts;
    this.#presence = deps.presence;
    this.#recording = new CallRecording(deps.history);
    this.#audit = deps.audit;
    this.#logger = deps.logger;
    this.#ringTimeoutMs = deps.ringTimeoutMs;
    this.#callGraceMs = deps.callGraceMs;
    this.#maxParticipants = deps.maxParticipants;
    this.#maxCallsPerUser = deps.maxCallsPerUser;
    deps.presence.setInCallProvider((userId) => this.isInActiveCall(userId));
    deps.presence.on("deviceDetached", (device, lost) => this.#deviceGone(device, lost));
    this.#media = new CallMedia({
      relay: deps.media,
      maxMediaLegs: deps.maxMediaLegs,
      callGraceMs: deps.callGraceMs,
      calls: () => this.#calls.values(),
      mediaFailed: (call, member) =>
        this.#leave(call, member, "media_failed", null, call.state === "active" ? "answered" : "failed"),
      speakersChanged: (call) => this.#pushInfo(call),
    });
  }

  /** Joins a cluster: invitees ring on their devices on other nodes too. */
  setRemoteDevices(remote: RemoteDevices): void {
    this.#remote = remote;
  }

  /**
   * Devices of an invitee on another node ring too (they were asked for when the call started to
   * ring for them); nothing if the invitee no longer rings.
   */
  ringAlso(callId: string, userId: number, devices: readonly Device[]): void {
    const call = this.#calls.get(callId);
    const member = call?.members.get(userId);
    if (!call || member?.state !== "ringing" || devices.length === 0) return;
    member.ringOn(devices);
    const info = call.info();
    const waiting = this.#byUser.count(userId) > 1 || (this.#remote?.inCall(userId) ?? false);
    for (const device of devices) device.push("call.incoming", { call: info, waiting });
  }

  /**
   * A device of another node is gone: closed or logged out there, as a closed connection here; its
   * connection lost there, or its node died (`lost`), as a lost connection (the grace period).
   */
  remoteDeviceGone(device: Device, lost: boolean): void {
    this.#deviceGone(device, lost);
  }

  /** Whether this node holds the call, or held it until recently (it answers requests about it). */
  knows(callId: string): boolean {
    return this.#calls.has(callId) || this.#ended.has(callId);
  }

  /** True while the user talks in an answered call (presence shows "in-call"). */
  isInActiveCall(userId: number): boolean {
    for (const call of this.#byUser.of(userId)) {
      if (call.state === "active" && call.members.get(userId)?.talking) return true;
    }
    return false;
  }

  /** True while the user takes part in any call, ringing or answered. */
  isBusy(userId: number): boolean {
    return this.#byUser.count(userId) > 0;
  }

  /**
   * Calls the user takes part in or rings for, held ones included: this node's, plus (in a
   * cluster) those of the other nodes as read just before (`elsewhere`).
   */
  #callCount(userId: number, elsewhere: ReadonlyMap<number, number>): number {
    return this.#byUser.count(userId) + (elsewhere.get(userId) ?? 0);
  }

  /** True while the user rings out, or talks in a call they have not put on hold. */
  #isTalking(userId: number): boolean {
    for (const call of this.#byUser.of(userId)) {
      if (!call.members.get(userId)?.talking) continue;
      if (call.state === "ringing" || !call.held.has(userId)) return true;
    }
    return false;
  }

  /**
   * [CAL] Places a call from `device` to one user, or to several at once (a group call). Invitees
   * who cannot be reached (offline, do-not-disturb) are refused: for a 1:1 call, or when none can
   * be reached, with USER_OFFLINE / USER_BUSY; in a group call they are listed as "left".
   * A caller already in `maxCallsPerUser` calls (held and ringing ones count, on any node of a
   * cluster) is refused with TOO_MANY_CALLS; an invitee in that many calls is busy (USER_BUSY), as
   * with do-not-disturb.
   */
  async invite(device: Device, to: string | readonly string[]): Promise<CallInfo> {
    const caller = await this.#party(device.userId);
    const names = [...new Set(typeof to === "string" ? [to] : to)];
    const targets = await Promise.all(names.map((name) => this.#target(name, caller)));
    const elsewhere = this.#remote
      ? await this.#remote.callsElsewhere([caller.userId, ...targets.map((target) => target.party.userId)])
      : NO_CALLS_ELSEWHERE;
    // Everything below runs without a pause: the reads above (accounts; in a cluster, the other
    // nodes' call counts) are the only waits.
    this.#stillAttached(device);
    if (this.#isTalking(caller.userId)) throw new ParleyError("ALREADY_IN_CALL");
    if (this.#callCount(caller.userId, elsewhere) >= this.#maxCallsPerUser) {
      throw new ParleyError("TOO_MANY_CALLS", `You may be in at most ${this.#maxCallsPerUser} calls at once.`);
    }
    if (targets.length + 1 > this.#maxParticipants) {
      throw new ParleyError("CONFERENCE_FULL", `A call may have at most ${this.#maxParticipants} participants.`);
    }
    const call = new Call(randomUUID(), caller, device, this.#maxParticipants, this.#logger);
    let refusal: ParleyError | undefined;
    for (const target of targets) {
      const member = call.invite(target.party, caller.userId);
      const problem = this.#unreachable(target, elsewhere);
      if (problem) {
        refusal ??= problem;
        member.refuse(problem.code === "USER_OFFLINE" ? "unreachable" : "busy");
        call.logger.info({ callee: target.party.username, outcome: member.outcome }, "invitee refused");
        continue;
      }
      member.ringOn(this.#presence.devicesOf(target.party.userId));
    }
    if (refusal && call.present().length < 2) {
      // Nobody rings: the attempt goes to the history (missed for the invitees) and the caller is told why.
      call.transitionTo("ended", { reason: "refused" });
      this.#recording.record(call, refusal.code === "USER_OFFLINE" ? "unreachable" : "busy", null, new Date());
      throw refusal;
    }
    this.#calls.set(call.id, call);
    this.#recording.open(call);
    this.#byUser.join(caller.userId, call);
    call.logger.info({ caller: caller.username, invitees: names }, "call ringing");
    const info = call.info();
    for (const member of call.present()) if (member.state === "ringing") this.#ring(call, member, info);
    return info;
  }

  /** Invites one more user into a call this device talks in (it becomes a conference). */
  async add(device: Device, callId: string, username: string): Promise<CallInfo> {
    const first = this.#find(callId);
    if (!first.talkerOf(device)) throw new ParleyError("NOT_IN_CALL");
    const found = await this.#target(username, first.talkerOf(device)!.party);
    const elsewhere = this.#remote ? await this.#remote.callsElsewhere([found.party.userId]) : NO_CALLS_ELSEWHERE;
    // The call, and this device's part in it, as they stand after the reads.
    this.#stillAttached(device);
    const call = this.#find(callId);
    const adder = call.talkerOf(device);
    if (!adder) throw new ParleyError("NOT_IN_CALL");
    const target = found.party;
    if (call.members.get(target.userId)?.present) throw new ParleyError("ALREADY_PARTICIPANT");
    if (call.present().length + 1 > call.maxParticipants) {
      throw new ParleyError("CONFERENCE_FULL", `A call may have at most ${call.maxParticipants} participants.`);
    }
    const problem = this.#unreachable(found, elsewhere);
    if (problem) throw problem;
    const member = call.invite(target, adder.userId);
    member.ringOn(this.#presence.devicesOf(target.userId));
    call.logger.info({ by: adder.party.username, invitee: target.username }, "participant invited");
    this.#recording.open(call);
    this.#ring(call, member, call.info());
    this.#pushInfo(call);
    return call.info();
  }

  /** [RES 1] Answers on `device`; the invitee's other devices stop ringing. */
  answer(device: Device, callId: string): CallInfo {
    const call = this.#find(callId);
    const member = this.#ringingOn(call, device);
    const joinedAt = new Date();
    const others = member.answer(device, joinedAt);
    for (const other of others) {
      call.closeLeg(other.id);
      other.push("call.ended", { callId, reason: "answered_elsewhere", outcome: "answered", by: device.userId });
    }
    if (call.state === "ringing") {
      call.answered(joinedAt, { device: device.id });
      // The caller may have resumed another call while this one rang: it goes on hold now, so
      // nobody talks in two calls at once.
      this.#holdOthers(call.caller.userId, call);
    } else {
      call.logger.info({ userId: device.userId, device: device.id }, "participant joined");
    }
    // Call waiting: answering puts the user's other calls on hold.
    this.#holdOthers(device.userId, call);
    routeCall(call);
    for (const talker of call.talking()) this.#presence.refresh(talker.userId);
    this.#recording.open(call);
    this.#pushInfo(call);
    return call.info();
  }

  /** Puts the call on hold for this device's user: no audio flows to or from them until resumed. */
  hold(device: Device, callId: string): CallInfo {
    const call = this.#activeFor(device, callId);
    if (call.setHeld(device.userId, true)) {
      routeCall(call);
      this.#pushInfo(call);
    }
    return call.info();
  }

  /** Takes the call off hold for this device's user; their other calls go on hold (switch). */
  resume(device: Device, callId: string): CallInfo {
    const call = this.#activeFor(device, callId);
    this.#holdOthers(device.userId, call);
    if (call.setHeld(device.userId, false)) {
      routeCall(call);
      this.#pushInfo(call);
    }
    return call.info();
  }

  /** Records that this participant muted or unmuted their microphone, for the others to see. */
  mute(device: Device, callId: string, muted: boolean): CallInfo {
    const call = this.#find(callId);
    if (!call.talkerOf(device)) throw new ParleyError("NOT_IN_CALL");
    if (call.setMuted(device.userId, muted)) this.#pushInfo(call);
    return call.info();
  }

  /** The call, if this device talks in it and it was answered. */
  #activeFor(device: Device, callId: string): Call {
    const call = this.#find(callId);
    if (!call.talkerOf(device)) throw new ParleyError("NOT_IN_CALL");
    if (call.state !== "active") throw new ParleyError("CALL_NOT_ACTIVE");
    return call;
  }

  #holdOthers(userId: number, keep: Call): void {
    for (const other of this.#byUser.of(userId)) {
      if (other !== keep && other.state === "active" && other.members.get(userId)?.talking) {
        if (other.setHeld(userId, true)) {
          routeCall(other);
          this.#pushInfo(other);
        }
      }
    }
  }

  /** [RES 0] Declines a ringing call on behalf of the invitee. */
  decline(device: Device, callId: string): void {
    const call = this.#find(callId);
    const member = this.#ringingOn(call, device);
    this.#leave(call, member, "declined", device.userId, "declined");
  }

  /**
   * [FIN] Hang up: the caller cancels a call nobody answered yet, a ringing invitee declines, a
   * participant leaves (the call ends for everyone when fewer than two remain).
   */
  hangup(device: Device, callId: string): void {
    const call = this.#find(callId);
    const member = call.memberOf(device);
    if (!member) throw new ParleyError("NOT_IN_CALL");
    if (member.state === "ringing") this.#leave(call, member, "declined", device.userId, "declined");
    else if (call.state === "ringing") this.#end(call, "cancelled", device.userId);
    else this.#leave(call, member, "hangup", device.userId, "answered");
  }

  /**
   * Media for this device's leg in a call it talks or rings in: SDP offer in, answer out (one leg
   * per device and call; see `CallMedia.setUp`).
   */
  async media(device: Device, callId: string, sdp: string): Promise<string> {
    const call = this.#find(callId);
    if (!call.memberOf(device)) throw new ParleyError("NOT_IN_CALL");
    return this.#media.setUp(call, device, sdp);
  }

  history(userId: number, limit?: number, before?: string): Promise<CallHistoryEntry[]> {
    return this.#recording.forUser(userId, limit, before);
  }

  liveCalls(): LiveCall[] {
    return [...this.#calls.values()].map(liveCall);
  }

  /** The operator ends a call (`hangup CALL`); a unique id prefix is enough. */
  endByOperator(idOrPrefix: string, actor: string): Call {
    const matches = [...this.#calls.values()].filter((c) => c.id.startsWith(idOrPrefix));
    if (matches.length !== 1) throw new ParleyError("CALL_NOT_FOUND", `No single live call matches '${idOrPrefix}'.`);
    const call = matches[0]!;
    this.#audit.record({
      action: "admin.hangup",
      actor,
      username: call.caller.party.username,
      detail: { callId: call.id, participants: [...call.members.values()].map((m) => m.party.username) },
    });
    this.#end(call, "operator", null);
    return call;
  }

  /** Ends every call (server shutdown). */
  endAll(): void {
    this.#media.close();
    for (const call of [...this.#calls.values()]) this.#end(call, "server_shutdown", null);
  }

  /**
   * The invitee the call rings for on this device, or why it may not answer or decline: only the
   * invitee's own devices learn the call was answered elsewhere.
   */
  #ringingOn(call: Call, device: Device): Member {
    const member = call.members.get(device.userId);
    if (member?.state === "ringing" && member.ringing.has(device)) return member;
    const answeredElsewhere = member?.state === "connected" && member.device !== device;
    throw new ParleyError(answeredElsewhere ? "CALL_ALREADY_ANSWERED" : "NOT_IN_CALL");
  }

  #find(callId: string): Call {
    const call = this.#calls.get(callId);
    if (call) return call;
    throw new ParleyError(this.#ended.has(callId) ? "CALL_ENDED" : "CALL_NOT_FOUND");
  }

  async #party(userId: number): Promise<Party> {
    const row = await this.#accounts.users.byId(userId);
    if (!row) throw new ParleyError("SESSION_INVALID");
    return { userId: row.id, username: row.username, displayName: row.display_name };
  }

  /** The user called `username`, who must exist, be enabled, and not be `self`; with their chosen status. */
  async #target(username: string, self: Party): Promise<Target> {
    const row = await this.#accounts.users.byName(username);
    if (!row || row.disabled) throw new ParleyError("USER_NOT_FOUND", `No such user: '${username}'.`);
    if (row.id === self.userId) throw new ParleyError("CANNOT_CALL_SELF");
    return {
      party: { userId: row.id, username: row.username, displayName: row.display_name },
      doNotDisturb: row.status === "busy",
    };
  }

  /** The requesting device logged out or disconnected while its request read the accounts. */
  #stillAttached(device: Device): void {
    if (this.#presence.isAttached(device) || this.#remote?.isAttached(device)) return;
    throw new ParleyError("NOT_AUTHENTICATED");
  }

  /**
   * Why the target cannot be rung now: no device connected, do-not-disturb ("busy" status), or
   * already in `maxCallsPerUser` calls (busy too: the caller did nothing wrong).
   */
  #unreachable({ party, doNotDisturb }: Target, elsewhere: ReadonlyMap<number, number>): ParleyError | undefined {
    const online = this.#presence.devicesOf(party.userId).length > 0 || (this.#remote?.countOf(party.userId) ?? 0) > 0;
    if (!online) return new ParleyError("USER_OFFLINE");
    if (doNotDisturb) return new ParleyError("USER_BUSY");
    if (this.#callCount(party.userId, elsewhere) >= this.#maxCallsPerUser) {
      return new ParleyError("USER_BUSY", "That user is in too many calls at once.");
    }
    return undefined;
  }

  /** Rings every device of an invitee (call waiting if they are in another call) until the ring timeout. */
  #ring(call: Call, member: Member, info: CallInfo): void {
    const waiting = this.isBusy(member.userId) || (this.#remote?.inCall(member.userId) ?? false);
    this.#byUser.join(member.userId, call);
    member.ring(this.#ringTimeoutMs, () => this.#leave(call, member, "no_answer", null, "no_answer"));
    for (const d of member.ringing) d.push("call.incoming", { call: info, waiting });
    this.#remote?.ring(call.id, member.userId);
  }

  #pushInfo(call: Call): void {
    this.#pushAll(call, "call.info", { call: call.info() });
  }

  #pushAll<E extends EventName>(call: Call, event: E, data: EventData<E>): void {
    for (const device of call.devices()) device.push(event, data);
  }

  /**
   * One participant leaves (hangs up, declines, does not answer, loses their connection): their
   * devices are told the call ended for them, and the others go on if at least two remain (one
   * of them talking); otherwise the call ends for everyone with the same reason.
   */
  #leave(
    call: Call,
    member: Member,
    reason: CallEndReason,
    by: number | null,
    outcome: CallOutcome,
    endOutcome?: CallOutcome,
  ): void {
    if (!member.present || call.state === "ended") return;
    const wasTalking = member.talking;
    const devices = member.leave(outcome);
    call.forget(member.userId);
    for (const device of devices) call.closeLeg(device.id);
    this.#byUser.leave(member.userId, call);
    if (!call.viable()) {
      // Told with the call's own outcome, as everyone else (e.g. "declined" for a 1:1 call).
      for (const device of devices) device.push("call.ended", this.#endedEvent(call, reason, by, endOutcome));
      this.#end(call, reason, by, endOutcome);
      if (wasTalking && call.answeredAt) this.#presence.refresh(member.userId);
      return;
    }
    call.logger.info({ userId: member.userId, reason }, "participant left");
    this.#recording.open(call);
    for (const device of devices) device.push("call.ended", { callId: call.id, reason, outcome, by });
    routeCall(call);
    if (wasTalking) this.#presence.refresh(member.userId);
    this.#pushInfo(call);
  }

  #endedEvent(call: Call, reason: CallEndReason, by: number | null, unanswered?: CallOutcome): EventData<"call.ended"> {
    return { callId: call.id, reason, outcome: this.#callOutcome(call, reason, unanswered), by };
  }

  /** An answered call's outcome is "answered"; an unanswered one's is `unanswered` or follows from the reason. */
  #callOutcome(call: Call, reason: CallEndReason, unanswered?: CallOutcome): CallOutcome {
    return call.answeredAt ? "answered" : (unanswered ?? UNANSWERED_OUTCOME[reason] ?? "failed");
  }

  /** Ends the call for every device, closes its media and records it. */
  #end(call: Call, reason: CallEndReason, by: number | null, unanswered?: CallOutcome): void {
    const talkers = call.talking().map((m) => m.userId);
    const untold = new Set(
      call
        .talking()
        .filter((m) => m.reconnecting)
        .map((m) => m.userId),
    );
    const devices = call.devices();
    if (!call.transitionTo("ended", { reason, by })) return;
    const outcome = this.#callOutcome(call, reason, unanswered);
    const event = { callId: call.id, reason, outcome, by };
    for (const device of devices) device.push("call.ended", { callId: call.id, reason, outcome, by });
    for (const deviceId of [...call.legs.keys()]) call.closeLeg(deviceId);
    this.#calls.delete(call.id);
    const endedAt = new Date();
    for (const member of call.members.values()) {
      this.#byUser.leave(member.userId, call);
      if (!member.present) continue;
      // Someone still ringing when the call ends missed it, even if others answered.
      member.leave(member.talking ? outcome : outcome === "answered" ? "cancelled" : outcome, endedAt);
    }
    this.#ended.remember(call.id, untold.size ? { untold, event } : {});
    this.#recording.record(call, outcome, reason, endedAt);
    call.logger.info(
      { outcome, reason, durationMs: call.answeredAt ? endedAt.getTime() - call.answeredAt.getTime() : 0 },
      "call ended",
    );
    if (call.answeredAt) for (const userId of talkers) this.#presence.refresh(userId);
  }

  /**
   * A device that lost its connection takes back the calls it names (`auth.resume`): this node's
   * (`reattachHere`), and in a cluster those other nodes hold, through their owners. Returns the
   * calls taken back.
   */
  async reattach(device: Device, callIds: readonly string[]): Promise<CallInfo[]> {
    const taken = this.reattachHere(device, callIds);
    const elsewhere = [...new Set(callIds)].filter((callId) => !this.knows(callId));
    if (!this.#remote || elsewhere.length === 0) return taken;
    return [...taken, ...(await this.#remote.reattach(device, elsewhere))];
  }

  /**
   * Takes back the calls of this node that `device` names: those where the user talked with the
   * same session (on this node or, in a cluster, another: `device` may be a remote device) and the
   * grace period still runs. Its media leg carries on as it was; the others see it is back.
   */
  reattachHere(device: Device, callIds: readonly string[]): CallInfo[] {
    const taken: CallInfo[] = [];
    for (const callId of new Set(callIds)) {
      // It ended while the device was away: say how (before the resume's reply, so it is not
      // taken for a lost call).
      const untold = this.#ended.untoldTo(callId, device.userId);
      if (untold) device.push("call.ended", untold);
      const call = this.#calls.get(callId);
      const member = call?.members.get(device.userId);
      const old = member?.device;
      if (!call || !member?.talking || !old || old === device || old.sessionId !== device.sessionId) continue;
      // The server may not have noticed yet that the old connection is dead (the client found out
      // first, by its own ping): the same session taking the call back says so.
      const unnoticed = !member.reconnecting;
      if (unnoticed && this.#callGraceMs === 0) continue;
      member.reconnectWith(device);
      const leg = call.moveLeg(old.id, device.id);
      call.logger.info({ userId: device.userId, device: device.id, from: old.id }, "participant reconnected");
      if (unnoticed) old.close("NORMAL");
      this.#media.renewIfSilent(call, device, leg);
      this.#presence.refresh(device.userId);
      this.#pushInfo(call);
      taken.push(call.info());
    }
    return taken;
  }

  /**
   * A device's talking in a call lost its connection: the call keeps it (member, device, media leg)
   * for the grace period, and the others see it reconnecting. Past it, it leaves as connection_lost.
   */
  #awaitReconnect(call: Call, member: Member, device: Device): void {
    call.logger.info(
      { userId: member.userId, device: device.id, graceMs: this.#callGraceMs },
      "participant reconnecting",
    );
    member.awaitReconnect(this.#callGraceMs, () => {
      if (member.device !== device || !member.present) return;
      if (call.state === "ringing" && member.role === "caller") this.#end(call, "connection_lost", null, "cancelled");
      else this.#leave(call, member, "connection_lost", null, call.answeredAt ? "answered" : "failed");
    });
    this.#pushInfo(call);
  }

  /** A device's signaling connection closed (or it logged out); `lost`: it may come back (see PresenceService). */
  #deviceGone(device: Device, lost: boolean): void {
    for (const call of [...this.#byUser.of(device.userId)]) {
      const member = call.members.get(device.userId);
      if (!member?.present) continue;
      if (member.talking && member.device === device && lost && this.#callGraceMs > 0 && !member.reconnecting) {
        this.#awaitReconnect(call, member, device);
      } else if (member.talking && member.device === device) {
        if (call.state === "ringing") this.#end(call, "connection_lost", null, "cancelled");
        else this.#leave(call, member, "connection_lost", null, "answered");
      } else if (member.stopRingingOn(device)) {
        call.closeLeg(device.id);
        if (member.ringing.size === 0) this.#leave(call, member, "connection_lost", null, "unreachable", "unreachable");
      }
    }
  }
}
