import type { Call, CallEnd, ParleyClient, PeerConnectionFactory } from "@parley/client";
import type { CallParticipant } from "@parley/protocol";
import { TonePlayer } from "../audio/tones.js";
import { watchSpeaking } from "../media/audio-level.js";
import { type CallQuality, CallStatsMonitor, NO_QUALITY } from "../media/call-stats.js";
import type { Microphone } from "../media/microphone.js";
import { createPeerConnectionFactory, replaceMicrophoneTrack } from "../media/peer-connection.js";
import { type EndKind, endKindOf, inviteFailureKind } from "./call-end.js";
import { errorCodeOf } from "./errors.js";

/**
 * One call as the UI shows it.
 *
 *   dialing --invite ok--> ringing --answered--> active (held <-> talking)
 *      |                      |                    |
 *      +----------------------+--------------------+--> removed; an EndNotice says why
 *
 * Incoming calls start in `ringing`. `dialing` exists only on this device, before the server
 * has accepted the invite.
 */
export interface CallView {
  /** Local, stable for the life of the view (the server id arrives after dialing). */
  key: number;
  id: string | undefined;
  direction: "outgoing" | "incoming";
  peerName: string;
  peerUsername: string;
  phase: "dialing" | "ringing" | "active";
  /** Outgoing: the callee's phone rings. */
  calleeRinging: boolean;
  /** A group call or conference (more than two people invited). */
  conference: boolean;
  /** Everyone else invited to the call, with their live state (joined, ringing, left, speaking, muted). */
  participants: CallParticipant[];
  /** The most people this call may have (the server's conference size). */
  maxParticipants: number;
  /** Local clock, ms, when the call was answered. */
  activeSince: number | undefined;
  /** This user holds the call (or answered another one). */
  held: boolean;
  heldByPeer: boolean;
  peerMuted: boolean;
  /** The other side's connection dropped; the call waits for them to come back. */
  peerReconnecting: boolean;
  /** Incoming while another call is answered: call waiting. */
  waiting: boolean;
  mediaError: boolean;
  /** An answer / decline / hang-up request is on its way. */
  busy: boolean;
}

export interface EndNotice {
  seq: number;
  kind: EndKind;
  name: string;
}

export interface CallsState {
  /** Every call on this device, in the order they started. */
  calls: CallView[];
  /** The call in front: the one talking, else the one ringing out, else ringing in, else held. */
  call: CallView | undefined;
  /** The server's audio per call, by view key: one stream per receive slot (several in a conference). */
  remoteStreams: Record<number, MediaStream[]>;
  /** Quality of the call in front, while it is answered. */
  quality: CallQuality;
  speaking: { local: boolean; remote: boolean };
  endNotice: EndNotice | undefined;
  /** "Incoming call from …", for the assertive live region. */
  announcement: { seq: number; name: string } | undefined;
  micMuted: boolean;
  /** Whether a new call may be placed: no call, or every call is on hold. */
  canCall: boolean;
  /**
   * Whether a held call may be resumed: not while a call rings out. The server holds my other calls
   * when I resume one, but not when the call I placed is answered, so resuming during the ring
   * would leave two live calls once it is answered.
   */
  canResume: boolean;
}

interface Entry {
  view: CallView;
  call: Call | undefined;
  cancelled: boolean;
  offs: (() => void)[];
}

const END_NOTICE_MS = 4000;

/**
 * `previous` is the key of the call in front so far. When every answered call is on hold, it stays
 * in front: holding the call in front must not swap in another held call, or the Hold toggle
 * pressed again would resume that other call instead of the one the user just held.
 */
function pickMain(views: CallView[], previous: number | undefined): CallView | undefined {
  const kept = views.find((v) => v.key === previous && v.phase === "active");
  return (
    views.find((v) => v.phase === "active" && !v.held) ??
    views.find((v) => v.direction === "outgoing" && v.phase !== "active") ??
    views.find((v) => v.phase === "ringing" && !v.waiting) ??
    kept ??
    views.find((v) => v.phase === "active") ??
    views[0]
  );
}

/**
 * The calls of this device: places and receives them through the SDK, owns their media (peer
 * connections from the microphone, remote streams, stats, level meters) and the tones.
 */
export class CallManager {
  readonly #microphone: Microphone;
  readonly #onChange: () => void;
  readonly #tones = new TonePlayer();
  #entries: Entry[] = [];
  #nextKey = 1;
  #seq = 0;
  readonly #peerConnections = new Map<string, RTCPeerConnection>();
  /** Remote streams (by slot) that arrived before their call was attached, by call id. */
  readonly #earlyStreams = new Map<string, MediaStream[]>();
  #monitored: string | undefined;
  #stats: CallStatsMonitor | undefined;
  #stopLocalLevel: (() => void) | undefined;
  #stopRemoteLevel: (() => void) | undefined;
  #endTimer: ReturnType<typeof setTimeout> | undefined;
  /** Called when a call ended (to refresh the history). */
  onCallEnded: (() => void) | undefined;
  state: CallsState = {
    calls: [],
    call: undefined,
    remoteStreams: {},
    quality: NO_QUALITY,
    speaking: { local: false, remote: false },
    endNotice: undefined,
    announcement: undefined,
    micMuted: false,
    canCall: true,
    canResume: true,
  };

  constructor(microphone: Microphone, onChange: () => void) {
    this.#microphone = microphone;
    this.#onChange = onChange;
  }

  /** The SDK's `createPeerConnection` for this device. */
  peerConnectionFactory(): PeerConnectionFactory {
    return createPeerConnectionFactory(this.#microphone, {
      created: (call, pc) => {
        this.#peerConnections.set(call.id, pc);
        // The connection can come after the answer (the SDK asks for TURN servers first), or renew
        // the call's media (a new network): follow it if it is the call in front.
        if (call.id === this.#monitored) {
          this.#monitored = undefined;
          this.#syncMonitoring(this.state.call);
        }
      },
      remoteTrack: (call, track, slot) => {
        const stream = new MediaStream([track]);
        const entry = this.#entries.find((e) => e.call === call);
        if (!entry) {
          const early = [...(this.#earlyStreams.get(call.id) ?? [])];
          early[slot] = stream;
          this.#earlyStreams.set(call.id, early);
          return;
        }
        this.#setStream(entry, stream, slot);
      },
    });
  }

  // ---- Placing and receiving -----------------------------------------------------------------

  /**
   * Calls `to` (a username, or several: a group call); `prepare` runs while "Calling …" shows
   * (opening the microphone). `displayName` names the call until the server's info arrives.
   */
  async place(client: ParleyClient, to: string | string[], displayName: string, prepare: () => Promise<unknown>) {
    if (!this.state.canCall) return;
    this.#clearEndNotice();
    const entry: Entry = {
      view: {
        key: this.#nextKey++,
        id: undefined,
        direction: "outgoing",
        peerName: displayName,
        peerUsername: typeof to === "string" ? to : (to[0] ?? ""),
        phase: "dialing",
        calleeRinging: false,
        conference: typeof to !== "string" && to.length > 1,
        participants: [],
        maxParticipants: 0,
        activeSince: undefined,
        held: false,
        heldByPeer: false,
        peerMuted: false,
        peerReconnecting: false,
        waiting: false,
        mediaError: false,
        busy: false,
      },
      call: undefined,
      cancelled: false,
      offs: [],
    };
    this.#entries.push(entry);
    this.#update();
    await prepare();
    if (entry.cancelled) {
      this.#remove(entry);
      this.#notice("cancelled", displayName);
      return;
    }
    let call: Call;
    try {
      call = await client.call(to);
    } catch (error) {
      this.#remove(entry);
      this.#notice(inviteFailureKind(errorCodeOf(error)), displayName);
      return;
    }
    this.#attach(entry, call);
    if (entry.cancelled) void call.hangup().catch(() => {});
  }

  /** A call rings on this device (the SDK delegate). */
  incoming(call: Call): void {
    if (this.#entries.some((e) => e.call === call)) return;
    if (!this.#entries.some((e) => e.view.phase === "active" || e.view.phase === "ringing")) this.#clearEndNotice();
    const peer = call.invitedBy ?? call.peers[0];
    const entry: Entry = {
      view: {
        key: this.#nextKey++,
        id: call.id,
        direction: "incoming",
        peerName: peer?.displayName ?? "",
        peerUsername: peer?.username ?? "",
        phase: "ringing",
        calleeRinging: false,
        conference: call.conference,
        participants: call.peers,
        maxParticipants: call.info.maxParticipants,
        activeSince: undefined,
        held: false,
        heldByPeer: false,
        peerMuted: false,
        peerReconnecting: false,
        waiting: call.waiting,
        mediaError: false,
        busy: false,
      },
      call: undefined,
      cancelled: false,
      offs: [],
    };
    this.#entries.push(entry);
    this.state = { ...this.state, announcement: { seq: ++this.#seq, name: entry.view.peerName } };
    this.#attach(entry, call);
  }

  #attach(entry: Entry, call: Call): void {
    entry.call = call;
    entry.view = { ...entry.view, id: call.id };
    entry.offs = [
      call.on("info", () => this.#refresh(entry)),
      call.on("mediaError", () => this.#patch(entry, { mediaError: true })),
    ];
    void call.whenEnded().then((end) => this.#ended(entry, end));
    const early = this.#earlyStreams.get(call.id);
    this.#earlyStreams.delete(call.id);
    for (const [slot, stream] of (early ?? []).entries()) if (stream) this.#setStream(entry, stream, slot, false);
    this.#refresh(entry);
  }

  /** Copies the call's state (pushed by the server) into its view. */
  #refresh(entry: Entry): void {
    const call = entry.call;
    if (!call || !this.#entries.includes(entry)) return;
    // In a conference the call is active before this user answers: it is theirs once they joined.
    const active = call.state === "active" && call.myState === "connected";
    const becameActive = active && entry.view.phase !== "active";
    // Ringing in: named after who invites this user. Otherwise a conference is named after
    // everyone still in it, a 1:1 call after the other person.
    const ringingIn = call.direction === "incoming" && !active;
    const peer = (ringingIn ? call.invitedBy : undefined) ?? call.peers[0];
    const present = call.activePeers;
    const name =
      call.conference && !ringingIn
        ? (present.length ? present : call.peers).map((p) => p.displayName).join(", ")
        : peer?.displayName;
    entry.view = {
      ...entry.view,
      peerName: name ?? entry.view.peerName,
      peerUsername: peer?.username ?? entry.view.peerUsername,
      phase: active ? "active" : call.state !== "ended" ? "ringing" : entry.view.phase,
      calleeRinging: call.peers.some((p) => p.state === "ringing" || p.state === "connected"),
      conference: call.conference,
      participants: call.peers,
      maxParticipants: call.info.maxParticipants,
      activeSince: entry.view.activeSince ?? (active ? Date.now() : undefined),
      held: call.onHold,
      heldByPeer: call.heldByPeer,
      peerMuted: call.peers.some((p) => p.muted),
      peerReconnecting: call.peers.some((p) => p.reconnecting === true && p.state !== "left"),
      busy: becameActive ? false : entry.view.busy,
    };
    if (becameActive && this.#microphone.muted) void call.setMuted(true).catch(() => {});
    this.#update();
  }

  #patch(entry: Entry, patch: Partial<CallView>): void {
    if (!this.#entries.includes(entry)) return;
    entry.view = { ...entry.view, ...patch };
    this.#update();
  }

  #ended(entry: Entry, end: CallEnd): void {
    if (!this.#entries.includes(entry)) return;
    const name = entry.view.peerName;
    this.#remove(entry);
    this.#notice(endKindOf(entry.view.direction, end), name);
    this.onCallEnded?.();
  }

  #remove(entry: Entry): void {
    for (const off of entry.offs) off();
    this.#entries = this.#entries.filter((e) => e !== entry);
    if (entry.view.id) this.#peerConnections.delete(entry.view.id);
    const { [entry.view.key]: _gone, ...streams } = this.state.remoteStreams;
    this.state = { ...this.state, remoteStreams: streams };
    if (this.#entries.length === 0 && this.#microphone.muted) this.#microphone.setMuted(false);
    this.#update();
  }

  #setStream(entry: Entry, stream: MediaStream, slot: number, update = true): void {
    const streams = [...(this.state.remoteStreams[entry.view.key] ?? [])];
    streams[slot] = stream;
    this.state = { ...this.state, remoteStreams: { ...this.state.remoteStreams, [entry.view.key]: streams } };
    if (slot === 0 && entry.view.id !== undefined && entry.view.id === this.#monitored) this.#watchRemote(stream);
    if (update) this.#update();
  }

  // ---- Actions -------------------------------------------------------------------------------

  #entry(key?: number): Entry | undefined {
    const wanted = key ?? this.state.call?.key;
    return this.#entries.find((e) => e.view.key === wanted);
  }

  async answer(key?: number): Promise<void> {
    const entry = this.#entry(key);
    const call = entry?.call;
    if (!entry || !call || call.direction !== "incoming" || call.myState !== "ringing") return;
    this.#patch(entry, { busy: true });
    try {
      await call.answer();
    } catch {
      // CALL_ENDED, CALL_ALREADY_ANSWERED: the call.ended event that follows says why
    } finally {
      this.#patch(entry, { busy: false });
    }
  }

  async decline(key?: number): Promise<void> {
    const entry = this.#entry(key);
    if (!entry?.call) return;
    this.#patch(entry, { busy: true });
    try {
      await entry.call.decline();
    } catch {
      // already ended
    }
  }

  /** Cancels a call that rings, or hangs up. */
  async hangup(key?: number): Promise<void> {
    const entry = this.#entry(key);
    if (!entry) return;
    if (!entry.call) {
      entry.cancelled = true;
      this.#patch(entry, { busy: true });
      return;
    }
    this.#patch(entry, { busy: true });
    try {
      await entry.call.hangup();
    } catch {
      // already ended
    }
  }

  /** Invites `username` into the call in front (or `key`), making it a conference. Rejects with the server's error. */
  async addParticipant(username: string, key?: number): Promise<void> {
    const call = this.#entry(key)?.call;
    if (!call) return;
    await call.add(username);
  }

  async setHeld(held: boolean, key?: number): Promise<void> {
    const call = this.#entry(key)?.call;
    if (call?.state !== "active" || call.myState !== "connected" || (!held && !this.state.canResume)) return;
    await (held ? call.hold() : call.resume());
  }

  toggleMicrophone(): void {
    const muted = !this.#microphone.muted;
    this.#microphone.setMuted(muted);
    for (const { call } of this.#entries) {
      if (call?.state === "active") void call.setMuted(muted).catch(() => {});
    }
  }

  /** The microphone changed (device switch): send the new track in every call. */
  async microphoneReplaced(track: MediaStreamTrack): Promise<void> {
    for (const pc of this.#peerConnections.values()) await replaceMicrophoneTrack(pc, track);
    if (this.#monitored) this.#watchLocal();
  }

  /** Signing out: end every call at once, quietly. */
  reset(): void {
    for (const entry of this.#entries) {
      for (const off of entry.offs) off();
      if (entry.call && !entry.call.endInfo) void entry.call.hangup().catch(() => {});
    }
    this.#entries = [];
    this.#peerConnections.clear();
    this.#earlyStreams.clear();
    if (this.#endTimer) clearTimeout(this.#endTimer);
    this.state = { ...this.state, remoteStreams: {}, endNotice: undefined, announcement: undefined };
    this.#update();
  }

  dismissEndNotice(): void {
    this.#clearEndNotice();
    this.#onChange();
  }

  // ---- Derived state, tones, monitoring ------------------------------------------------------

  #update(): void {
    const anyActive = this.#entries.some((e) => e.view.phase === "active");
    for (const entry of this.#entries) {
      const waiting =
        entry.view.direction === "incoming" &&
        entry.view.phase === "ringing" &&
        this.#entries.some((e) => e !== entry && e.view.phase === "active");
      if (waiting !== entry.view.waiting) entry.view = { ...entry.view, waiting };
    }
    const calls = this.#entries.map((e) => e.view);
    const call = pickMain(calls, this.state.call?.key);
    const ringingIn = calls.some((v) => v.direction === "incoming" && v.phase === "ringing");
    this.state = {
      ...this.state,
      calls,
      call,
      micMuted: this.#microphone.muted,
      canCall: calls.every((v) => v.phase === "active" && v.held),
      canResume: !calls.some((v) => v.direction === "outgoing" && v.phase !== "active"),
      announcement: ringingIn ? this.state.announcement : undefined,
    };
    // Tones: ringback while ringing out; ringtone for a call in; a discreet beep for call waiting.
    const outgoing = calls.find((v) => v.direction === "outgoing" && v.phase === "ringing");
    if (outgoing) this.#tones.ringback();
    else if (ringingIn && !anyActive) this.#tones.ringtone();
    else if (ringingIn) this.#tones.waiting();
    else this.#tones.stop();
    this.#syncMonitoring(call);
    this.#onChange();
  }

  /** Stats and level meters follow the call in front while it is answered. */
  #syncMonitoring(main: CallView | undefined): void {
    const id = main?.phase === "active" ? main.id : undefined;
    if (id === this.#monitored) return;
    this.#stats?.stop();
    this.#stats = undefined;
    this.#stopLocalLevel?.();
    this.#stopLocalLevel = undefined;
    this.#stopRemoteLevel?.();
    this.#stopRemoteLevel = undefined;
    this.#monitored = id;
    this.state = { ...this.state, quality: NO_QUALITY, speaking: { local: false, remote: false } };
    if (!id || !main) return;
    const pc = this.#peerConnections.get(id);
    if (pc)
      this.#stats = new CallStatsMonitor(pc, (quality) => {
        if (this.#monitored !== id) return;
        this.state = { ...this.state, quality };
        this.#onChange();
      });
    this.#watchLocal();
    const stream = this.state.remoteStreams[main.key]?.[0];
    if (stream) this.#watchRemote(stream);
  }

  #watchLocal(): void {
    this.#stopLocalLevel?.();
    const stream = this.#microphone.stream;
    this.#stopLocalLevel = stream ? watchSpeaking(stream, (local) => this.#speaking({ local })) : undefined;
  }

  #watchRemote(stream: MediaStream): void {
    this.#stopRemoteLevel?.();
    this.#stopRemoteLevel = watchSpeaking(stream, (remote) => this.#speaking({ remote }));
  }

  #speaking(patch: Partial<CallsState["speaking"]>): void {
    this.state = { ...this.state, speaking: { ...this.state.speaking, ...patch } };
    this.#onChange();
  }

  #notice(kind: EndKind, name: string): void {
    if (this.#endTimer) clearTimeout(this.#endTimer);
    const seq = ++this.#seq;
    this.state = { ...this.state, endNotice: { seq, kind, name } };
    this.#onChange();
    this.#endTimer = setTimeout(() => {
      if (this.state.endNotice?.seq !== seq) return;
      this.state = { ...this.state, endNotice: undefined };
      this.#onChange();
    }, END_NOTICE_MS);
  }

  #clearEndNotice(): void {
    if (this.#endTimer) clearTimeout(this.#endTimer);
    if (this.state.endNotice) this.state = { ...this.state, endNotice: undefined };
  }
}
