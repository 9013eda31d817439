import type { CallInfo, CallParticipant, CallState, ParticipantState } from "@parley/protocol";
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
 * One 1:1 call: who calls from which device, which of the callee's devices ring, which one
 * answered, and each device's media leg. State moves only through `transitionTo()`.
 *
 *   ringing --answer--> active --hangup / connection lost / media failed / operator / shutdown--> ended
 *                        (hold and resume are flags on an active call, not states)
 *      |                                                                 ^
 *      +--decline / cancel / no answer / connection lost ----------------+
 */
export class Call {
  readonly id: string;
  readonly createdAt = new Date();
  answeredAt: Date | undefined;
  readonly caller: Party;
  readonly callee: Party;
  readonly callerDevice: Device;
  /** Callee devices still ringing (empty once answered). */
  readonly ringing = new Set<Device>();
  answeredBy: Device | undefined;
  /** Media legs by device id. */
  readonly legs = new Map<number, MediaLeg>();
  ringTimer: NodeJS.Timeout | undefined;
  /** Users who hold the call (a held call carries no audio either way). */
  readonly held = new Set<number>();
  /** Users whose microphone is muted. */
  readonly muted = new Set<number>();
  #heldSince: number | undefined;
  #heldMs = 0;
  #state: CallState = "ringing";
  readonly #logger: Logger;

  constructor(id: string, caller: Party, callerDevice: Device, callee: Party, logger: Logger) {
    this.id = id;
    this.caller = caller;
    this.callerDevice = callerDevice;
    this.callee = callee;
    this.#logger = logger.child({ callId: id });
  }

  get state(): CallState {
    return this.#state;
  }

  get logger(): Logger {
    return this.#logger;
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

  /** Puts the call on or off hold for `userId`; returns false when nothing changed. */
  setHeld(userId: number, held: boolean): boolean {
    if (this.held.has(userId) === held) return false;
    if (held) this.held.add(userId);
    else this.held.delete(userId);
    this.#logger.info({ userId, held }, "hold");
    const now = Date.now();
    if (this.held.size > 0 && this.#heldSince === undefined) this.#heldSince = now;
    if (this.held.size === 0 && this.#heldSince !== undefined) {
      this.#heldMs += now - this.#heldSince;
      this.#heldSince = undefined;
    }
    return true;
  }

  /** Total time on hold so far. */
  heldMs(now = Date.now()): number {
    return this.#heldMs + (this.#heldSince === undefined ? 0 : now - this.#heldSince);
  }

  /** Devices that take part: the caller's, and the answering one or every ringing one. */
  devices(): Device[] {
    return [this.callerDevice, ...(this.answeredBy ? [this.answeredBy] : [...this.ringing])];
  }

  isParticipantDevice(device: Device): boolean {
    return device === this.callerDevice || device === this.answeredBy || this.ringing.has(device);
  }

  info(): CallInfo {
    const calleeState: ParticipantState =
      this.#state === "ended" ? "left" : this.#state === "active" ? "connected" : "ringing";
    const callerState: ParticipantState =
      this.#state === "ended" ? "left" : this.#state === "active" ? "connected" : "calling";
    const participant = (party: Party, role: CallParticipant["role"], state: ParticipantState): CallParticipant => ({
      userId: party.userId,
      username: party.username,
      displayName: party.displayName,
      role,
      state,
      held: this.held.has(party.userId),
      muted: this.muted.has(party.userId),
    });
    return {
      callId: this.id,
      state: this.#state,
      createdAt: this.createdAt.toISOString(),
      answeredAt: this.answeredAt?.toISOString() ?? null,
      participants: [participant(this.caller, "caller", callerState), participant(this.callee, "callee", calleeState)],
    };
  }
}
