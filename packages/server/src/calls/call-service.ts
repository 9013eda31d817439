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
import type { MediaLeg, MediaLegQuality, MediaRelay } from "../media/index.js";
import type { Device, PresenceService } from "../presence/presence-service.js";
import { Call, type Party } from "./call.js";
import type { CallHistoryStore } from "./call-history-store.js";

const UNANSWERED_OUTCOME: Partial<Record<CallEndReason, CallOutcome>> = {
  declined: "declined",
  no_answer: "no_answer",
  cancelled: "cancelled",
};

/** How long an ended call's id is remembered, to answer late requests with CALL_ENDED. */
const ENDED_MEMORY_MS = 5 * 60_000;

export interface LiveCall {
  id: string;
  state: Call["state"];
  caller: string;
  callee: string;
  createdAt: Date;
  answeredAt: Date | undefined;
  legs: {
    device: number;
    state: string;
    packetsIn: number;
    packetsOut: number;
    bytesIn: number;
    bytesOut: number;
    /** RTCP-derived quality, read on demand (operator console). */
    quality(): Promise<MediaLegQuality>;
  }[];
  /** Someone put the answered call on hold. */
  held: boolean;
}

/**
 * C1-C5, C7, C10, C11: call signaling. Rings every device of the callee, connects the answering
 * device's media leg to the caller's, and ends calls on hang up, decline, cancel, ring timeout,
 * a lost connection or the operator; every call is written to the history.
 */
export class CallService {
  readonly #calls = new Map<string, Call>();
  /** Calls (ringing or active) each user takes part in. */
  readonly #byUser = new Map<number, Set<Call>>();
  readonly #ended = new Map<string, number>();
  readonly #accounts: AccountService;
  readonly #presence: PresenceService;
  readonly #history: CallHistoryStore;
  readonly #media: MediaRelay;
  readonly #audit: AuditLog;
  readonly #logger: Logger;
  readonly #ringTimeoutMs: number;

  constructor(deps: {
    accounts: AccountService;
    presence: PresenceService;
    history: CallHistoryStore;
    media: MediaRelay;
    audit: AuditLog;
    logger: Logger;
    ringTimeoutMs: number;
  }) {
    this.#accounts = deps.accounts;
    this.#presence = deps.presence;
    this.#history = deps.history;
    this.#media = deps.media;
    this.#audit = deps.audit;
    this.#logger = deps.logger;
    this.#ringTimeoutMs = deps.ringTimeoutMs;
    deps.presence.setInCallProvider((userId) => this.isInActiveCall(userId));
    deps.presence.on("deviceDetached", (device) => this.#deviceGone(device));
  }

  /** True while the user takes part in an answered call (presence shows "in-call"). */
  isInActiveCall(userId: number): boolean {
    for (const call of this.#byUser.get(userId) ?? []) if (call.state === "active") return true;
    return false;
  }

  /** True while the user takes part in any call, ringing or answered. */
  isBusy(userId: number): boolean {
    return (this.#byUser.get(userId)?.size ?? 0) > 0;
  }

  /** True while the user rings out, or talks in a call they have not put on hold. */
  #isTalking(userId: number): boolean {
    for (const call of this.#byUser.get(userId) ?? []) {
      if (call.state === "ringing" && call.caller.userId === userId) return true;
      if (call.state === "active" && !call.held.has(userId)) return true;
    }
    return false;
  }

  /** [CAL] Places a call from `device` to `username`. */
  invite(device: Device, username: string): CallInfo {
    const caller = this.#party(device.userId);
    const target = this.#accounts.users.byName(username);
    if (!target || target.disabled) throw new ParleyError("USER_NOT_FOUND");
    if (target.id === caller.userId) throw new ParleyError("CANNOT_CALL_SELF");
    if (this.#isTalking(caller.userId)) throw new ParleyError("ALREADY_IN_CALL");
    const callee: Party = { userId: target.id, username: target.username, displayName: target.display_name };
    const devices = this.#presence.devicesOf(callee.userId);
    // Do-not-disturb ("busy" status) refuses calls as busy; a callee already in a call gets call waiting.
    const doNotDisturb = target.status === "busy";
    if (devices.length === 0 || doNotDisturb) {
      const outcome: CallOutcome = devices.length === 0 ? "unreachable" : "busy";
      const now = new Date().toISOString();
      this.#history.record({
        id: randomUUID(),
        caller: { id: caller.userId, username: caller.username, displayName: caller.displayName },
        callee: { id: callee.userId, username: callee.username, displayName: callee.displayName },
        createdAt: now,
        answeredAt: null,
        endedAt: now,
        outcome,
        endReason: null,
        heldMs: 0,
      });
      this.#logger.info({ caller: caller.username, callee: callee.username, outcome }, "call refused");
      throw new ParleyError(outcome === "unreachable" ? "USER_OFFLINE" : "USER_BUSY");
    }
    const call = new Call(randomUUID(), caller, device, callee, this.#logger);
    for (const d of devices) call.ringing.add(d);
    this.#calls.set(call.id, call);
    this.#join(caller.userId, call);
    this.#join(callee.userId, call);
    call.logger.info({ caller: caller.username, callee: callee.username, devices: devices.length }, "call ringing");
    call.ringTimer = setTimeout(() => this.#end(call, "no_answer", null), this.#ringTimeoutMs);
    call.ringTimer.unref();
    const info = call.info();
    const waiting = this.isBusy(callee.userId) && [...(this.#byUser.get(callee.userId) ?? [])].some((c) => c !== call);
    for (const d of call.ringing) d.push("call.incoming", { call: info, waiting });
    return info;
  }

  /** [RES 1] Answers on `device`; the callee's other devices stop ringing. */
  answer(device: Device, callId: string): CallInfo {
    const call = this.#find(callId);
    if (!call.ringing.has(device)) throw this.#notRinging(call, device);
    clearTimeout(call.ringTimer);
    call.transitionTo("active", { device: device.id });
    call.answeredAt = new Date();
    call.answeredBy = device;
    const others = [...call.ringing].filter((d) => d !== device);
    call.ringing.clear();
    for (const other of others) {
      this.#closeLeg(call, other.id);
      other.push("call.ended", { callId, reason: "answered_elsewhere", outcome: "answered", by: device.userId });
    }
    // Call waiting: answering puts the callee's other calls on hold.
    this.#holdOthers(call.callee.userId, call);
    this.#link(call);
    this.#presence.refresh(call.caller.userId);
    this.#presence.refresh(call.callee.userId);
    this.#pushInfo(call);
    return call.info();
  }

  /** Puts the call on hold for this device's user: no audio flows either way until resumed. */
  hold(device: Device, callId: string): CallInfo {
    const call = this.#activeFor(device, callId);
    if (call.setHeld(device.userId, true)) {
      this.#link(call);
      this.#pushInfo(call);
    }
    return call.info();
  }

  /** Takes the call off hold for this device's user; their other calls go on hold (switch). */
  resume(device: Device, callId: string): CallInfo {
    const call = this.#activeFor(device, callId);
    this.#holdOthers(device.userId, call);
    if (call.setHeld(device.userId, false)) {
      this.#link(call);
      this.#pushInfo(call);
    }
    return call.info();
  }

  /** Records that this participant muted or unmuted their microphone, for the others to see. */
  mute(device: Device, callId: string, muted: boolean): CallInfo {
    const call = this.#find(callId);
    if (device !== call.callerDevice && device !== call.answeredBy) throw new ParleyError("NOT_IN_CALL");
    const changed = muted ? !call.muted.has(device.userId) : call.muted.has(device.userId);
    if (changed) {
      if (muted) call.muted.add(device.userId);
      else call.muted.delete(device.userId);
      this.#pushInfo(call);
    }
    return call.info();
  }

  /** The call, if this device talks in it and it was answered. */
  #activeFor(device: Device, callId: string): Call {
    const call = this.#find(callId);
    if (device !== call.callerDevice && device !== call.answeredBy) throw new ParleyError("NOT_IN_CALL");
    if (call.state !== "active") throw new ParleyError("CALL_NOT_ACTIVE");
    return call;
  }

  #holdOthers(userId: number, keep: Call): void {
    for (const other of this.#byUser.get(userId) ?? []) {
      if (other !== keep && other.state === "active" && other.setHeld(userId, true)) {
        this.#link(other);
        this.#pushInfo(other);
      }
    }
  }

  /** [RES 0] Declines a ringing call on behalf of the callee. */
  decline(device: Device, callId: string): void {
    const call = this.#find(callId);
    if (!call.ringing.has(device)) throw this.#notRinging(call, device);
    this.#end(call, "declined", device.userId);
  }

  /** [FIN] Hang up: caller cancels a ringing call, a ringing callee declines, a participant ends it. */
  hangup(device: Device, callId: string): void {
    const call = this.#find(callId);
    if (!call.isParticipantDevice(device)) throw new ParleyError("NOT_IN_CALL");
    if (call.state === "ringing") {
      this.#end(call, device === call.callerDevice ? "cancelled" : "declined", device.userId);
    } else {
      this.#end(call, "hangup", device.userId);
    }
  }

  /** Media for this device's leg: SDP offer in, answer out. Replaces an earlier leg of the same device. */
  async media(device: Device, callId: string, sdp: string): Promise<string> {
    const call = this.#find(callId);
    if (!call.isParticipantDevice(device)) throw new ParleyError("NOT_IN_CALL");
    let created: { leg: MediaLeg; answerSdp: string };
    try {
      created = await this.#media.createLeg(`${callId}:${device.id}`, sdp);
    } catch (error) {
      call.logger.warn({ err: error, device: device.id }, "media leg failed");
      if (error instanceof ParleyError) throw error;
      throw new ParleyError("MEDIA_FAILED", undefined, { cause: error });
    }
    const { leg, answerSdp } = created;
    // The call may have ended, or this device stopped ringing, while the leg was set up.
    if (call.state === "ended" || !call.isParticipantDevice(device)) {
      leg.close();
      throw new ParleyError(call.state === "ended" ? "CALL_ENDED" : "NOT_IN_CALL");
    }
    this.#closeLeg(call, device.id);
    call.legs.set(device.id, leg);
    leg.on("stateChange", (state) => {
      if (state === "failed" && call.legs.get(device.id) === leg) {
        call.logger.warn({ device: device.id }, "media leg failed");
        if (device === call.callerDevice || device === call.answeredBy) this.#end(call, "media_failed", null);
        else this.#closeLeg(call, device.id);
      }
    });
    this.#link(call);
    return answerSdp;
  }

  history(userId: number, limit?: number, before?: string): CallHistoryEntry[] {
    return this.#history.forUser(userId, limit, before);
  }

  liveCalls(): LiveCall[] {
    return [...this.#calls.values()].map((call) => ({
      id: call.id,
      state: call.state,
      caller: call.caller.username,
      callee: call.callee.username,
      createdAt: call.createdAt,
      answeredAt: call.answeredAt,
      legs: [...call.legs].map(([device, leg]) => ({
        device,
        state: leg.state,
        packetsIn: leg.counters.packetsIn,
        packetsOut: leg.counters.packetsOut,
        bytesIn: leg.counters.bytesIn,
        bytesOut: leg.counters.bytesOut,
        quality: () => leg.quality(),
      })),
      held: call.held.size > 0,
    }));
  }

  /** The operator ends a call (`hangup CALL`); a unique id prefix is enough. */
  endByOperator(idOrPrefix: string, actor: string): Call {
    const matches = [...this.#calls.values()].filter((c) => c.id.startsWith(idOrPrefix));
    if (matches.length !== 1) throw new ParleyError("CALL_NOT_FOUND", `No single live call matches '${idOrPrefix}'.`);
    const call = matches[0]!;
    this.#audit.record({
      action: "admin.hangup",
      actor,
      username: call.caller.username,
      detail: { callId: call.id, callee: call.callee.username },
    });
    this.#end(call, "operator", null);
    return call;
  }

  /** Ends every call (server shutdown). */
  endAll(): void {
    for (const call of [...this.#calls.values()]) this.#end(call, "server_shutdown", null);
  }

  /** Why a device may not answer or decline: only the callee's own devices learn the call was answered. */
  #notRinging(call: Call, device: Device): ParleyError {
    const calleeDevice = device.userId === call.callee.userId && device !== call.answeredBy;
    return new ParleyError(call.state === "active" && calleeDevice ? "CALL_ALREADY_ANSWERED" : "NOT_IN_CALL");
  }

  #find(callId: string): Call {
    const call = this.#calls.get(callId);
    if (call) return call;
    throw new ParleyError(this.#ended.has(callId) ? "CALL_ENDED" : "CALL_NOT_FOUND");
  }

  #party(userId: number): Party {
    const row = this.#accounts.users.byId(userId);
    if (!row) throw new ParleyError("SESSION_INVALID");
    return { userId: row.id, username: row.username, displayName: row.display_name };
  }

  #join(userId: number, call: Call): void {
    let set = this.#byUser.get(userId);
    if (!set) {
      set = new Set();
      this.#byUser.set(userId, set);
    }
    set.add(call);
  }

  #leave(userId: number, call: Call): void {
    const set = this.#byUser.get(userId);
    set?.delete(call);
    if (set?.size === 0) this.#byUser.delete(userId);
  }

  /** Audio flows only between the caller's leg and the answering device's leg of an active call. */
  #link(call: Call): void {
    const callerLeg = call.legs.get(call.callerDevice.id);
    const calleeLeg = call.answeredBy ? call.legs.get(call.answeredBy.id) : undefined;
    for (const leg of call.legs.values()) leg.forwardTo([]);
    if (call.state === "active" && call.held.size === 0 && callerLeg && calleeLeg) {
      callerLeg.forwardTo([calleeLeg]);
      calleeLeg.forwardTo([callerLeg]);
    }
  }

  #closeLeg(call: Call, deviceId: number): void {
    const leg = call.legs.get(deviceId);
    if (!leg) return;
    call.legs.delete(deviceId);
    leg.close();
  }

  #pushInfo(call: Call): void {
    this.#pushAll(call, "call.info", { call: call.info() });
  }

  #pushAll<E extends EventName>(call: Call, event: E, data: EventData<E>): void {
    for (const device of call.devices()) device.push(event, data);
  }

  /**
   * Ends the call for every device, closes its media and records it. An answered call's outcome
   * is "answered"; an unanswered one's is `unanswered` (by default derived from the reason).
   */
  #end(call: Call, reason: CallEndReason, by: number | null, unanswered?: CallOutcome): void {
    const wasActive = call.state === "active";
    if (!call.transitionTo("ended", { reason, by })) return;
    clearTimeout(call.ringTimer);
    const outcome: CallOutcome = wasActive ? "answered" : (unanswered ?? UNANSWERED_OUTCOME[reason] ?? "failed");
    this.#pushAll(call, "call.ended", { callId: call.id, reason, outcome, by });
    for (const deviceId of [...call.legs.keys()]) this.#closeLeg(call, deviceId);
    call.ringing.clear();
    this.#calls.delete(call.id);
    this.#leave(call.caller.userId, call);
    this.#leave(call.callee.userId, call);
    this.#rememberEnded(call.id);
    const endedAt = new Date();
    try {
      this.#history.record({
        id: call.id,
        caller: { id: call.caller.userId, username: call.caller.username, displayName: call.caller.displayName },
        callee: { id: call.callee.userId, username: call.callee.username, displayName: call.callee.displayName },
        createdAt: call.createdAt.toISOString(),
        answeredAt: call.answeredAt?.toISOString() ?? null,
        endedAt: endedAt.toISOString(),
        outcome,
        endReason: reason,
        heldMs: call.heldMs(endedAt.getTime()),
      });
    } catch (error) {
      // The call has ended for everyone whatever happens to its record (e.g. a full disk).
      call.logger.error({ err: error }, "could not record the call in the history");
    }
    call.logger.info(
      {
        outcome,
        reason,
        durationMs: call.answeredAt ? endedAt.getTime() - call.answeredAt.getTime() : 0,
      },
      "call ended",
    );
    if (wasActive) {
      this.#presence.refresh(call.caller.userId);
      this.#presence.refresh(call.callee.userId);
    }
  }

  #rememberEnded(callId: string): void {
    const now = Date.now();
    this.#ended.set(callId, now);
    for (const [id, at] of this.#ended) {
      if (now - at < ENDED_MEMORY_MS) break;
      this.#ended.delete(id);
    }
  }

  /** A device's signaling connection closed (or it logged out). */
  #deviceGone(device: Device): void {
    for (const call of [...(this.#byUser.get(device.userId) ?? [])]) {
      if (device === call.callerDevice || device === call.answeredBy) {
        this.#end(call, "connection_lost", null, "cancelled");
      } else if (call.ringing.delete(device)) {
        this.#closeLeg(call, device.id);
        if (call.ringing.size === 0) this.#end(call, "connection_lost", null, "unreachable");
      }
    }
  }
}
