import type { CallEndReason, CallInfo, CallOutcome, CallParticipant, CallState, IceServer } from "@parley/protocol";
import { Emitter } from "./typed-emitter.js";

/**
 * The part of RTCPeerConnection the SDK uses; the browser's RTCPeerConnection and werift's both
 * fit. The app creates it (with its microphone track or its own audio transceiver, and its
 * `ontrack` handling), the SDK negotiates it with the server.
 */
export interface PeerConnectionLike {
  addTransceiver(kind: "audio", init: { direction: "sendrecv" | "recvonly" }): unknown;
  getTransceivers(): unknown[];
  createOffer(): Promise<{ type: string; sdp?: string }>;
  // biome-ignore lint/suspicious/noExplicitAny: browser and werift description types differ
  setLocalDescription(description: any): Promise<unknown>;
  readonly localDescription: { sdp: string } | null | undefined;
  /** "connected", "disconnected", "failed"...: a failed path is renewed after a reconnect. */
  readonly connectionState?: string;
  setRemoteDescription(description: { type: "answer"; sdp: string }): Promise<unknown>;
  readonly iceGatheringState: string;
  close(): unknown;
}

/**
 * What a new media leg is set up with: the relay (TURN) servers the server hands out, with this
 * user's short-lived credentials (empty when it has none). Put them in the connection's
 * `iceServers`; the relay's own address comes in the server's answer.
 */
export interface MediaSetup {
  iceServers: IceServer[];
}

/** May be async, e.g. to find the local address of the current route to the server. */
export type PeerConnectionFactory = (call: Call, setup: MediaSetup) => PeerConnectionLike | Promise<PeerConnectionLike>;

export interface CallEnd {
  reason: CallEndReason;
  outcome: CallOutcome;
  /** The user who ended it, if one did. */
  by: number | null;
}

export interface CallEvents {
  /** Any change pushed by the server (state, participants). */
  info: [CallInfo];
  state: [CallState];
  ended: [CallEnd];
  /** The media connection could not be set up; the call itself goes on until it ends. */
  mediaError: [Error];
  /**
   * A new media connection replaced the old one (the network changed, or the relay stopped
   * hearing this device): `peerConnection` is the new one, the old one is closed.
   */
  mediaRenewed: [];
}

/** Operations the call asks its client to perform on the wire. */
export interface CallActions {
  answer(call: Call): Promise<void>;
  decline(call: Call): Promise<void>;
  hangup(call: Call): Promise<void>;
  hold(call: Call, held: boolean): Promise<void>;
  add(call: Call, username: string): Promise<void>;
  mute(call: Call, muted: boolean): Promise<void>;
}

/** One call as this device sees it. */
export class Call extends Emitter<CallEvents> {
  readonly id: string;
  readonly direction: "outgoing" | "incoming";
  /** Call waiting: this call rang while the user was already in another call. */
  readonly waiting: boolean;
  #info: CallInfo;
  #end: CallEnd | undefined;
  peerConnection: PeerConnectionLike | undefined;
  readonly #actions: CallActions;
  readonly #selfId: number;
  readonly #endedPromise: Promise<CallEnd>;
  #resolveEnded!: (end: CallEnd) => void;

  constructor(
    info: CallInfo,
    direction: "outgoing" | "incoming",
    selfId: number,
    actions: CallActions,
    waiting = false,
  ) {
    super();
    this.id = info.callId;
    this.direction = direction;
    this.waiting = waiting;
    this.#info = info;
    this.#selfId = selfId;
    this.#actions = actions;
    this.#endedPromise = new Promise((resolve) => {
      this.#resolveEnded = resolve;
    });
  }

  get info(): CallInfo {
    return this.#info;
  }

  get state(): CallState {
    return this.#info.state;
  }

  /** The other participant(s), including those still ringing and those who left. */
  get peers(): CallParticipant[] {
    return this.#info.participants.filter((p) => p.userId !== this.#selfId);
  }

  /** The other participants still in the call (talking or ringing). */
  get activePeers(): CallParticipant[] {
    return this.peers.filter((p) => p.state !== "left");
  }

  /**
   * This user's own state in the call: "calling" / "ringing" until they (or, for the caller,
   * someone) answer, "connected" while they talk, "left". In a conference the call may be active
   * while this user's device still rings.
   */
  get myState(): CallParticipant["state"] {
    return this.#info.participants.find((p) => p.userId === this.#selfId)?.state ?? "left";
  }

  /** Who invited this user into the call (undefined for the caller's own calls). */
  get invitedBy(): CallParticipant | undefined {
    const by = this.#info.participants.find((p) => p.userId === this.#selfId)?.invitedBy;
    return by === null || by === undefined ? undefined : this.#info.participants.find((p) => p.userId === by);
  }

  /** More than two people were invited: a group call or conference. */
  get conference(): boolean {
    return this.#info.conference;
  }

  /**
   * Invites one more user into this call (it becomes a conference). Rejects with
   * CONFERENCE_FULL, ALREADY_PARTICIPANT, USER_OFFLINE, USER_BUSY or USER_NOT_FOUND.
   */
  add(username: string): Promise<void> {
    return this.#actions.add(this, username);
  }

  /** When the call was answered, or undefined while it rings. */
  get answeredAt(): Date | undefined {
    return this.#info.answeredAt ? new Date(this.#info.answeredAt) : undefined;
  }

  get endInfo(): CallEnd | undefined {
    return this.#end;
  }

  /** Resolves when the call ends, with why. */
  whenEnded(): Promise<CallEnd> {
    return this.#endedPromise;
  }

  answer(): Promise<void> {
    return this.#actions.answer(this);
  }

  decline(): Promise<void> {
    return this.#actions.decline(this);
  }

  /** True while this user holds the call. */
  get onHold(): boolean {
    return this.#info.participants.some((p) => p.userId === this.#selfId && p.held);
  }

  /** True while every other participant talking in the call holds it (nobody to hear). */
  get heldByPeer(): boolean {
    const talking = this.peers.filter((p) => p.state === "connected" || p.state === "calling");
    return talking.length > 0 && talking.every((p) => p.held);
  }

  /** Puts the call on hold: no audio flows either way until `resume()`. */
  hold(): Promise<void> {
    return this.#actions.hold(this, true);
  }

  /** Takes the call off hold; the user's other calls go on hold. */
  resume(): Promise<void> {
    return this.#actions.hold(this, false);
  }

  /**
   * Tells the other participants the microphone is muted or not. The app mutes the microphone
   * itself (e.g. `track.enabled = false`).
   */
  setMuted(muted: boolean): Promise<void> {
    return this.#actions.mute(this, muted);
  }

  /** Cancels a call that still rings (caller), declines it (callee) or ends it. */
  hangup(): Promise<void> {
    return this.#actions.hangup(this);
  }

  /** @internal the server pushed new call info. */
  update(info: CallInfo): void {
    const previous = this.#info.state;
    this.#info = info;
    this.emit("info", info);
    if (info.state !== previous) this.emit("state", info.state);
  }

  /** @internal the call ended. Idempotent. */
  finish(end: CallEnd): void {
    if (this.#end) return;
    this.#end = end;
    this.#info = { ...this.#info, state: "ended" };
    try {
      this.peerConnection?.close();
    } catch {
      // already closed
    }
    this.emit("state", "ended");
    this.emit("ended", end);
    this.#resolveEnded(end);
  }

  /** @internal a new media connection replaced `previous` (see `mediaRenewed`). */
  mediaRenewed(pc: PeerConnectionLike): void {
    const previous = this.peerConnection;
    this.peerConnection = pc;
    try {
      previous?.close();
    } catch {
      // already closed
    }
    this.emit("mediaRenewed");
  }

  /** @internal */
  mediaFailed(error: Error): void {
    this.emit("mediaError", error);
  }
}
