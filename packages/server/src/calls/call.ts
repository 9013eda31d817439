import type { CallInfo, CallOutcome, CallParticipant, CallState, ParticipantState } from "@parley/protocol";
import type { Logger } from "pino";
import type { MediaLeg } from "../media/index.js";
import type { Device } from "../presence/presence-service.js";

export interface Party {
  userId: number;
  username: string;
  displayName: string;
}

const ALLOWED: Record<CallState, readonly CallState[]> = {
  ringing: ["active", "ended"],
  active: ["ended"],
  ended: [],
};

/**
 * One person in a call: who, how they take part, and (for the history) how it went for them.
 * Their state, device and timers change only through the methods below.
 *
 *   calling (the caller) --first answer: connect()--> connected --leave()--> left
 *   ringing (an invitee) --answer()--> connected --leave()--> left
 *      |  \--refuse() (unreachable, busy) --> left
 *      +--leave() (declined, no answer, cancelled)--> left
 */
export class Member {
  readonly party: Party;
  readonly role: CallParticipant["role"];
  /** The user who invited this participant; null for the caller. */
  readonly invitedBy: number | null;
  #state: ParticipantState;
  /** The device that talks in the call: the caller's, or the invitee's answering device. */
  #device: Device | undefined;
  /** Devices still ringing for this invitee (empty once answered or gone). */
  readonly #ringing = new Set<Device>();
  #ringTimer: NodeJS.Timeout | undefined;
  /**
   * Set while the talking device's connection is lost: the member, their device and media leg
   * stay until the device takes the call back (`auth.resume`) or this timer ends the grace period.
   */
  #graceTimer: NodeJS.Timeout | undefined;
  /**
   * Set while the talking device's media leg failed after it had worked (a network change): the
   * device was told to set up a new leg, and leaves as media_failed if none comes in time.
   */
  #mediaTimer: NodeJS.Timeout | undefined;
  #joinedAt: Date | undefined;
  #leftAt: Date | undefined;
  /** How the call went for this participant, once they left (see CallService). */
  #outcome: CallOutcome | undefined;

  constructor(party: Party, role: CallParticipant["role"], invitedBy: number | null, device?: Device) {
    this.party = party;
    this.role = role;
    this.invitedBy = invitedBy;
    this.#device = device;
    this.#state = role === "caller" ? "calling" : "ringing";
  }

  get userId(): number {
    return this.party.userId;
  }

  get state(): ParticipantState {
    return this.#state;
  }

  /** The device that talks in the call: the caller's, or the invitee's answering device. */
  get device(): Device | undefined {
    return this.#device;
  }

  /** Devices still ringing for this invitee (empty once answered or gone). */
  get ringing(): ReadonlySet<Device> {
    return this.#ringing;
  }

  get joinedAt(): Date | undefined {
    return this.#joinedAt;
  }

  get leftAt(): Date | undefined {
    return this.#leftAt;
  }

  /** How the call went for this participant, once they left (see CallService). */
  get outcome(): CallOutcome | undefined {
    return this.#outcome;
  }

  /** Still part of the call: talking, calling or ringing. */
  get present(): boolean {
    return this.#state !== "left";
  }

  /** The invitee could not be rung (offline, do-not-disturb, too many calls): listed as left. */
  refuse(outcome: CallOutcome): void {
    this.#state = "left";
    this.#outcome = outcome;
  }

  /** The call rings on these devices of the invitee. */
  ringOn(devices: Iterable<Device>): void {
    for (const device of devices) this.#ringing.add(device);
  }

  /** Starts the ring timer: `onNoAnswer` runs if the invitee still rings after `timeoutMs`. */
  ring(timeoutMs: number, onNoAnswer: () => void): void {
    this.#ringTimer = setTimeout(() => {
      if (this.#state === "ringing") onNoAnswer();
    }, timeoutMs);
    this.#ringTimer.unref();
  }

  /** One ringing device is gone; returns false if it did not ring. */
  stopRingingOn(device: Device): boolean {
    return this.#ringing.delete(device);
  }

  /**
   * The invitee answers on `device`, which talks from now on; returns their other devices, which
   * stop ringing.
   */
  answer(device: Device, at: Date = new Date()): Device[] {
    clearTimeout(this.#ringTimer);
    const others = [...this.#ringing].filter((d) => d !== device);
    this.#ringing.clear();
    this.#device = device;
    this.#state = "connected";
    this.#joinedAt = at;
    return others;
  }

  /** The caller is connected: someone answered at `at`. */
  connect(at: Date): void {
    this.#state = "connected";
    this.#joinedAt = at;
  }

  /**
   * Leaves the call with `outcome` (how it went for them): stops the ring timer and forgets the
   * ringing devices. Returns the devices that were told about the call (talking and ringing).
   */
  leave(outcome: CallOutcome, at: Date = new Date()): Device[] {
    const devices = [...(this.#device ? [this.#device] : []), ...this.#ringing];
    clearTimeout(this.#ringTimer);
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    clearTimeout(this.#mediaTimer);
    this.#mediaTimer = undefined;
    this.#state = "left";
    this.#leftAt = at;
    this.#outcome = outcome;
    this.#ringing.clear();
    return devices;
  }

  /** The talking device's connection is lost and the call waits for it (see `awaitReconnect`). */
  get reconnecting(): boolean {
    return this.#graceTimer !== undefined;
  }

  /**
   * The talking device's connection is lost: the call waits `graceMs` for it, then runs
   * `onExpired` (unless `reconnectWith` came first).
   */
  awaitReconnect(graceMs: number, onExpired: () => void): void {
    this.#graceTimer = setTimeout(() => {
      this.#graceTimer = undefined;
      onExpired();
    }, graceMs);
    this.#graceTimer.unref();
  }

  /** The device took the call back (as `device`, its new connection); returns the one it replaces. */
  reconnectWith(device: Device): Device | undefined {
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    const old = this.#device;
    this.#device = device;
    return old;
  }

  /**
   * The talking device's leg failed after it had worked: runs `onExpired` after `graceMs` unless
   * `newLegArrived` came first. Returns false (and changes nothing) if it already waits.
   */
  awaitNewLeg(graceMs: number, onExpired: () => void): boolean {
    if (this.#mediaTimer) return false;
    this.#mediaTimer = setTimeout(() => {
      this.#mediaTimer = undefined;
      onExpired();
    }, graceMs);
    this.#mediaTimer.unref();
    return true;
  }

  /** A new leg came in; returns true if the member was waiting for one (`awaitNewLeg`). */
  newLegArrived(): boolean {
    if (!this.#mediaTimer) return false;
    clearTimeout(this.#mediaTimer);
    this.#mediaTimer = undefined;
    return true;
  }

  /** Takes part with a device (the caller, or an invitee who answered) and has not left. */
  get talking(): boolean {
    return this.#state === "calling" || this.#state === "connected";
  }
}

/**
 * One call between two or more people. The caller's device is in from the start; each invitee
 * rings on all their devices until one answers (they are connected), they decline, their ring
 * times out or the call ends. The call is "ringing" until the first answer, "active" from then
 * on, and ends when fewer than two participants remain (or nobody talking is left). More than two
 * invited make it a conference. State moves only through `transitionTo()`.
 *
 *   ringing --first answer--> active --last but one leaves / operator / shutdown--> ended
 *      |                                                                    ^
 *      +--every invitee declines / does not answer, caller cancels ---------+
 *
 * Hold and mute are flags per participant, not states.
 */
export class Call {
  readonly id: string;
  readonly createdAt = new Date();
  #answeredAt: Date | undefined;
  /** Everyone invited, by user id, in invitation order (the caller first). */
  readonly members = new Map<number, Member>();
  /** Media legs by device id. */
  readonly #legs = new Map<number, MediaLeg>();
  /** Users who hold the call (no audio flows to or from a participant who holds it). */
  readonly #held = new Set<number>();
  /** Users whose microphone is muted. */
  readonly #muted = new Set<number>();
  readonly maxParticipants: number;
  #heldSince: number | undefined;
  #heldMs = 0;
  #state: CallState = "ringing";
  readonly #logger: Logger;

  constructor(id: string, caller: Party, callerDevice: Device, maxParticipants: number, logger: Logger) {
    this.id = id;
    this.maxParticipants = maxParticipants;
    this.members.set(caller.userId, new Member(caller, "caller", null, callerDevice));
    this.#logger = logger.child({ callId: id });
  }

  get state(): CallState {
    return this.#state;
  }

  get logger(): Logger {
    return this.#logger;
  }

  /** When the first invitee answered. */
  get answeredAt(): Date | undefined {
    return this.#answeredAt;
  }

  /** Media legs by device id. */
  get legs(): ReadonlyMap<number, MediaLeg> {
    return this.#legs;
  }

  /** Users who hold the call (no audio flows to or from a participant who holds it). */
  get held(): ReadonlySet<number> {
    return this.#held;
  }

  /** Users whose microphone is muted. */
  get muted(): ReadonlySet<number> {
    return this.#muted;
  }

  /** The member who started the call. */
  get caller(): Member {
    return this.members.values().next().value as Member;
  }

  /** More than two people were invited. */
  get conference(): boolean {
    return this.members.size > 2;
  }

  /** Participants still in the call (talking or ringing). */
  present(): Member[] {
    return [...this.members.values()].filter((m) => m.present);
  }

  /** Participants who take part with a device right now (not ringing, not gone). */
  talking(): Member[] {
    return [...this.members.values()].filter((m) => m.talking);
  }

  /** Whether the call can go on: someone talks, and someone else talks or rings. */
  viable(): boolean {
    const present = this.present();
    return present.length >= 2 && present.some((m) => m.talking);
  }

  invite(party: Party, by: number): Member {
    const member = new Member(party, "callee", by);
    this.members.delete(party.userId); // someone who left and is invited again goes to the end
    this.members.set(party.userId, member);
    return member;
  }

  /** The member this device belongs to, if it talks or rings in the call. */
  memberOf(device: Device): Member | undefined {
    const member = this.members.get(device.userId);
    if (!member?.present) return undefined;
    return member.device === device || member.ringing.has(device) ? member : undefined;
  }

  /** The member, if this device talks in the call (not merely rings). */
  talkerOf(device: Device): Member | undefined {
    const member = this.memberOf(device);
    return member?.talking && member.device === device ? member : undefined;
  }

  /** Moves to `next` if allowed; returns false (and logs) for a stale or backward move. */
  transitionTo(next: CallState, detail: Record<string, unknown> = {}): boolean {
    if (!ALLOWED[this.#state].includes(next)) {
      this.#logger.debug({ from: this.#state, to: next }, "ignored call transition");
      return false;
    }
    this.#logger.info({ from: this.#state, to: next, ...detail }, "call state");
    this.#state = next;
    return true;
  }

  /**
   * The first answer, at `at`: the call becomes active and its caller connected. Returns false
   * (changing nothing) if it was not ringing.
   */
  answered(at: Date, detail: Record<string, unknown> = {}): boolean {
    if (!this.transitionTo("active", detail)) return false;
    this.#answeredAt = at;
    this.caller.connect(at);
    return true;
  }

  /** Puts the call on or off hold for `userId`; returns false when nothing changed. */
  setHeld(userId: number, held: boolean): boolean {
    if (this.#held.has(userId) === held) return false;
    if (held) this.#held.add(userId);
    else this.#held.delete(userId);
    this.#logger.info({ userId, held }, "hold");
    this.#updateHeldTime();
    return true;
  }

  /** Hold time counts while any talking participant holds the call. */
  #updateHeldTime(): void {
    const now = Date.now();
    const anyHeld = [...this.#held].some((userId) => this.members.get(userId)?.talking);
    if (anyHeld && this.#heldSince === undefined) this.#heldSince = now;
    if (!anyHeld && this.#heldSince !== undefined) {
      this.#heldMs += now - this.#heldSince;
      this.#heldSince = undefined;
    }
  }

  /** Marks `userId`'s microphone muted or not; returns false when nothing changed. */
  setMuted(userId: number, muted: boolean): boolean {
    if (this.#muted.has(userId) === muted) return false;
    if (muted) this.#muted.add(userId);
    else this.#muted.delete(userId);
    return true;
  }

  /** The device's media leg from now on; an earlier one of the device is closed first. */
  putLeg(deviceId: number, leg: MediaLeg): void {
    this.closeLeg(deviceId);
    this.#legs.set(deviceId, leg);
  }

  /** Closes and forgets the device's media leg, if it has one. */
  closeLeg(deviceId: number): void {
    const leg = this.#legs.get(deviceId);
    if (!leg) return;
    this.#legs.delete(deviceId);
    leg.close();
  }

  /** The leg of device `from` carries on as device `to`'s (a reconnected device); returns it. */
  moveLeg(from: number, to: number): MediaLeg | undefined {
    const leg = this.#legs.get(from);
    if (leg) {
      this.#legs.delete(from);
      this.#legs.set(to, leg);
    }
    return leg;
  }

  /** A participant left: their hold and mute no longer count. */
  forget(userId: number): void {
    this.#held.delete(userId);
    this.#muted.delete(userId);
    this.#updateHeldTime();
  }

  /** Total time on hold so far. */
  heldMs(now = Date.now()): number {
    return this.#heldMs + (this.#heldSince === undefined ? 0 : now - this.#heldSince);
  }

  /** Devices that are told about the call: every talking device and every ringing one. */
  devices(): Device[] {
    const devices: Device[] = [];
    for (const member of this.members.values()) {
      if (!member.present) continue;
      if (member.device) devices.push(member.device);
      devices.push(...member.ringing);
    }
    return devices;
  }

  /** True while this participant's leg reports speech. */
  speaking(member: Member): boolean {
    const leg = member.device ? this.#legs.get(member.device.id) : undefined;
    return leg?.speaking ?? false;
  }

  info(): CallInfo {
    return {
      callId: this.id,
      state: this.#state,
      createdAt: this.createdAt.toISOString(),
      answeredAt: this.answeredAt?.toISOString() ?? null,
      participants: [...this.members.values()].map((member) => ({
        userId: member.userId,
        username: member.party.username,
        displayName: member.party.displayName,
        role: member.role,
        invitedBy: member.invitedBy,
        state: this.#state === "ended" ? "left" : member.state,
        held: this.#held.has(member.userId),
        muted: this.#muted.has(member.userId),
        speaking: member.talking && this.speaking(member),
        ...(member.reconnecting ? { reconnecting: true } : {}),
      })),
      conference: this.conference,
      maxParticipants: this.maxParticipants,
    };
  }
}
