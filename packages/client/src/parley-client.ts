import {
  type AuthResult,
  type CallInfo,
  CloseCode,
  closeReasonOf,
  type DirectoryUser,
  type EventMessage,
  ParleyError,
  type PhonebookEntry,
  PROTOCOL_VERSION,
  type RequestParams,
  type RequestResult,
  type RequestType,
  type SelectableStatus,
  type Self,
} from "@parley/protocol";
import { Call, type CallActions, type PeerConnectionFactory, type PeerConnectionLike } from "./call.js";
import { RequestTimeoutError, SignalingChannel, type WebSocketFactory } from "./signaling-channel.js";
import { Emitter } from "./typed-emitter.js";

export interface ParleyClientEvents {
  /** The directory changed (someone came online, changed status or name, appeared or left). */
  directory: [DirectoryUser[]];
  presence: [{ userId: number; status: DirectoryUser["status"]; devices: number }];
  /** Your own account changed (possibly from another device). */
  account: [Self];
  phonebook: [PhonebookEntry[]];
  /** The server is about to close the connection, and why. */
  sessionEnded: [{ reason: string; message: string }];
  /** The connection closed. `reason` is a close reason such as "KICKED" or "GOING_AWAY". */
  disconnected: [{ code: number; reason: string }];
  /** A call rings on this device (after `delegate.onIncomingCall`). */
  incomingCall: [Call];
  /** The connection's state changed. */
  connection: [ConnectionState];
  /** Every raw event, for tools and tests. */
  event: [EventMessage];
}

export interface ParleyClientOptions {
  /** ws:// or wss:// URL of the signaling endpoint, e.g. ws://localhost:8080/ws */
  url: string;
  /** How to open a WebSocket: the browser's `(u) => new WebSocket(u)`, or `ws` in Node. */
  webSocket: WebSocketFactory;
  client?: { name: string; version: string };
  requestTimeoutMs?: number;
  /**
   * Creates the WebRTC connection of a call: the browser's RTCPeerConnection or werift's. Without
   * it the client signals calls but sets up no media.
   */
  createPeerConnection?: PeerConnectionFactory;
  /**
   * How many other participants this device can hear at once in a conference (default 3): the
   * number of audio m-lines offered (the first sendrecv, the rest recvonly). With more people
   * talking, the server sends the loudest.
   */
  receiveStreams?: number;
  /**
   * Reconnect after an unexpected close (network loss, server restart) and resume the session.
   * Never after a kick, a revoked session, a disabled account or `disconnect()`.
   */
  reconnect?: boolean;
  /**
   * Where this device keeps its device tokens, per username (the browser: localStorage). With it,
   * `login` sends the stored token and every login or registration stores the new one, so the
   * owner's own device is never slowed down by strangers guessing the password.
   */
  deviceTokens?: DeviceTokenStore;
  /**
   * With `reconnect`: how long calls this device talks in are kept through a lost connection
   * before they end as `connection_lost` if it cannot get back (default 60 s; the server keeps
   * them for its own grace period, 30 s by default).
   */
  keepCallsMs?: number;
  /**
   * How often (ms) a logged-in client checks its connection with a `ping`; no answer within
   * `livenessTimeoutMs` (default 3000) and it is taken for dead and, with `reconnect`, replaced.
   * A network change leaves a connection silent rather than closed. Default 4000; 0: never.
   */
  livenessMs?: number;
  livenessTimeoutMs?: number;
}

/** Keeps the `deviceToken` of each account this device logged in to. */
export interface DeviceTokenStore {
  load(username: string): string | undefined;
  save(username: string, token: string): void;
}

export type ConnectionState = "disconnected" | "connecting" | "connected" | "reconnecting";

const DEFAULT_LIVENESS_MS = 4000;
const DEFAULT_LIVENESS_TIMEOUT_MS = 3000;

/** How long calls are kept through a lost connection when `keepCallsMs` is not set. */
const DEFAULT_KEEP_CALLS_MS = 60_000;

/** Close reasons after which reconnecting would be wrong. */
const FINAL_CLOSE_REASONS: readonly string[] = [
  "NORMAL",
  "KICKED",
  "ACCOUNT_DISABLED",
  "SESSION_REVOKED",
  "SESSION_EXPIRED",
  "FLOODING",
  "PROTOCOL_VERSION_UNSUPPORTED",
];

/** Decisions the app makes. */
export interface ParleyClientDelegate {
  /** A call rings on this device: show it, then `call.answer()` or `call.decline()`. */
  onIncomingCall?(call: Call): void;
}

const GATHERING_TIMEOUT_MS = 5000;
const DEFAULT_RECEIVE_STREAMS = 3;

async function iceGatheringComplete(pc: PeerConnectionLike): Promise<void> {
  const deadline = Date.now() + GATHERING_TIMEOUT_MS;
  while (pc.iceGatheringState !== "complete") {
    if (Date.now() > deadline) throw new Error("ICE gathering did not complete.");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * The Parley softphone SDK: connect, log in, live directory and presence, phone book.
 * Runs in the browser and in Node; the WebSocket implementation is injected.
 */
export class ParleyClient extends Emitter<ParleyClientEvents> {
  readonly #options: ParleyClientOptions;
  #channel: SignalingChannel | undefined;
  #self: Self | undefined;
  #token: string | undefined;
  readonly #directory = new Map<number, DirectoryUser>();
  #phonebook: PhonebookEntry[] = [];
  readonly #calls = new Map<string, Call>();
  #connectionState: ConnectionState = "disconnected";
  #closing = false;
  #reconnecting = false;
  /** The server instance of the last `hello`: another one after a reconnect means it restarted. */
  #instanceId: string | undefined;
  #serverRestarted = false;
  /**
   * Calls this device talks in that outlive a lost connection (their media goes on): taken back
   * with `auth.resume`, or ended when that fails.
   */
  readonly #kept = new Set<string>();
  #keptTimer: ReturnType<typeof setTimeout> | undefined;
  /** Calls whose media leg is being renewed now. */
  readonly #renewing = new Set<string>();
  serverVersion: string | undefined;
  signupEnabled = false;
  delegate: ParleyClientDelegate = {};

  constructor(options: ParleyClientOptions) {
    super();
    this.#options = options;
  }

  get self(): Self | undefined {
    return this.#self;
  }

  get token(): string | undefined {
    return this.#token;
  }

  get connected(): boolean {
    return this.#channel !== undefined && !this.#channel.closed;
  }

  /** Users sorted by display name, with live status. */
  get directory(): DirectoryUser[] {
    return [...this.#directory.values()].sort((a, b) => a.displayName.localeCompare(b.displayName));
  }

  get phonebook(): PhonebookEntry[] {
    return this.#phonebook;
  }

  /** Opens the WebSocket and exchanges protocol versions. */
  get connectionState(): ConnectionState {
    return this.#connectionState;
  }

  /** Opens the WebSocket and exchanges protocol versions. */
  async connect(): Promise<void> {
    this.#closing = false;
    this.#setConnectionState("connecting");
    try {
      await this.#open();
    } catch (error) {
      this.#setConnectionState("disconnected");
      throw error;
    }
    this.#setConnectionState("connected");
  }

  async #open(): Promise<void> {
    const channel = await SignalingChannel.open(
      this.#options.url,
      this.#options.webSocket,
      this.#options.requestTimeoutMs,
    );
    this.#channel = channel;
    channel.onEvent = (message) => this.#onEvent(message);
    channel.onClose = (code, reason) => {
      clearInterval(liveness);
      this.#onClosed(code, reason || closeReasonOf(code) || String(code));
    };
    const every = this.#options.livenessMs ?? DEFAULT_LIVENESS_MS;
    const liveness = every > 0 ? setInterval(() => void this.checkConnection(), every) : undefined;
    const hello = await channel.request("hello", {
      protocolVersion: PROTOCOL_VERSION,
      ...(this.#options.client ? { client: this.#options.client } : {}),
    });
    this.serverVersion = hello.serverVersion;
    this.signupEnabled = hello.signupEnabled;
    this.#serverRestarted = this.#instanceId !== undefined && hello.instanceId !== this.#instanceId;
    this.#instanceId = hello.instanceId;
  }

  #onClosed(code: number, reason: string): void {
    const wasLoggedIn = this.#self !== undefined;
    this.#self = undefined;
    const retry =
      this.#options.reconnect === true && !this.#closing && !FINAL_CLOSE_REASONS.includes(reason) && !!this.#token;
    // Calls this device talks in stay (the server keeps them for its grace period, media flowing)
    // while it reconnects; the rest (ringing here, or no reconnect) end now.
    for (const call of [...this.#calls.values()]) {
      if (retry && (wasLoggedIn || this.#reconnecting) && isTalking(call)) {
        this.#kept.add(call.id);
        this.#keptTimer ??= setTimeout(() => this.#settleKept([]), this.#options.keepCallsMs ?? DEFAULT_KEEP_CALLS_MS);
        continue;
      }
      this.#calls.delete(call.id);
      call.finish({ reason: "connection_lost", outcome: "failed", by: null });
    }
    this.emit("disconnected", { code, reason });
    if (this.#reconnecting) return; // the reconnect loop carries on
    if (retry && wasLoggedIn) void this.#reconnect();
    else this.#setConnectionState("disconnected");
  }

  /** Ends the kept calls that were not taken back (`taken`: the ones the server handed back). */
  #settleKept(taken: CallInfo[]): void {
    clearTimeout(this.#keptTimer);
    this.#keptTimer = undefined;
    const back = new Map(taken.map((info) => [info.callId, info]));
    for (const id of this.#kept) {
      const call = this.#calls.get(id);
      if (!call) continue;
      const info = back.get(id);
      if (info) {
        call.update(info);
        // Its path broke meanwhile (a new network): a new leg now, not when the relay notices.
        const state = call.peerConnection?.connectionState;
        if (state === "failed" || state === "disconnected" || state === "closed") this.#renewMedia(call);
        continue;
      }
      this.#calls.delete(id);
      call.finish(
        this.#serverRestarted
          ? { reason: "server_restarted", outcome: "interrupted", by: null }
          : { reason: "connection_lost", outcome: call.answeredAt ? "answered" : "failed", by: null },
      );
    }
    this.#kept.clear();
  }

  /**
   * Checks that the connection still answers (a `ping`); if not within `livenessTimeoutMs`, it is
   * taken for dead (closed as 1006) and, with `reconnect`, replaced. Runs every `livenessMs`; an
   * app may also call it when the device's network changes (the browser's `online` event).
   */
  async checkConnection(): Promise<boolean> {
    const channel = this.#channel;
    if (!channel || channel.closed) return false;
    try {
      await channel.request("ping", {}, this.#options.livenessTimeoutMs ?? DEFAULT_LIVENESS_TIMEOUT_MS);
      return true;
    } catch (error) {
      if (error instanceof RequestTimeoutError && this.#channel === channel) channel.abandon();
      return false;
    }
  }

  /** Reconnects with exponential backoff (1 s doubling to 30 s, with jitter) and resumes the session. */
  async #reconnect(): Promise<void> {
    this.#reconnecting = true;
    try {
      await this.#reconnectLoop();
    } finally {
      this.#reconnecting = false;
    }
  }

  async #reconnectLoop(): Promise<void> {
    this.#setConnectionState("reconnecting");
    for (let attempt = 0; !this.#closing; attempt++) {
      const delay = Math.min(30_000, 1000 * 2 ** (attempt - 1)) * (0.75 + Math.random() / 2);
      await new Promise((resolve) => setTimeout(resolve, attempt === 0 ? 250 : delay));
      if (this.#closing || !this.#token) break;
      try {
        await this.#open();
      } catch {
        continue;
      }
      try {
        await this.resume(this.#token);
        this.#setConnectionState("connected");
        return;
      } catch (error) {
        if (!(error instanceof ParleyError)) continue; // the connection dropped again: retry
        // The server refused the session (expired, revoked, account disabled): sign in again.
        this.#token = undefined;
        this.#settleKept([]);
        this.emit("sessionEnded", { reason: "SESSION_INVALID", message: (error as Error).message });
        break;
      }
    }
    this.#settleKept([]);
    this.#setConnectionState("disconnected");
  }

  #setConnectionState(state: ConnectionState): void {
    if (this.#connectionState === state) return;
    this.#connectionState = state;
    this.emit("connection", state);
  }

  /** Sends any request; the typed helpers below cover the common ones. */
  request<T extends RequestType>(type: T, params: RequestParams<T>): Promise<RequestResult<T>> {
    if (!this.#channel) return Promise.reject(new Error("Not connected; call connect() first."));
    return this.#channel.request(type, params);
  }

  register(params: RequestParams<"auth.register">): Promise<AuthResult> {
    return this.#loggedIn(this.request("auth.register", params));
  }

  /**
   * Logs in with a password. `deviceToken` defaults to the one the `deviceTokens` store holds
   * for this username; the result carries this device's new token.
   */
  login(username: string, password: string, deviceName?: string, deviceToken?: string): Promise<AuthResult> {
    const token = deviceToken ?? this.#options.deviceTokens?.load(username.trim().toLowerCase());
    return this.#loggedIn(
      this.request("auth.login", {
        username,
        password,
        ...(deviceName ? { deviceName } : {}),
        ...(token ? { deviceToken: token } : {}),
      }),
    );
  }

  /**
   * Resumes a session (after a reconnect, or a page reload). Calls kept through a lost connection
   * are handed back by the server within its grace period, or end: `server_restarted` when the
   * server restarted meanwhile, `connection_lost` otherwise.
   */
  async resume(token: string): Promise<AuthResult> {
    const calls = [...this.#kept].filter((id) => this.#calls.has(id));
    const result = await this.#loggedIn(this.request("auth.resume", { token, ...(calls.length ? { calls } : {}) }));
    this.#settleKept(result.calls ?? []);
    return result;
  }

  async logout(allDevices = false): Promise<void> {
    await this.request("auth.logout", { allDevices });
    this.#self = undefined;
    this.#token = undefined;
  }

  /** Deletes the account (the password is required); this connection stays open, logged out. */
  async deleteAccount(password: string): Promise<void> {
    await this.request("account.delete", { password });
    this.#self = undefined;
    this.#token = undefined;
  }

  async setStatus(status: SelectableStatus): Promise<Self> {
    this.#self = await this.request("presence.set", { status });
    return this.#self;
  }

  async refreshDirectory(): Promise<DirectoryUser[]> {
    const { users } = await this.request("directory.list", {});
    this.#directory.clear();
    for (const user of users) this.#directory.set(user.id, user);
    this.emit("directory", this.directory);
    return this.directory;
  }

  async refreshPhonebook(): Promise<PhonebookEntry[]> {
    const { entries } = await this.request("phonebook.list", {});
    this.#phonebook = entries;
    this.emit("phonebook", entries);
    return entries;
  }

  /** Calls in progress on this device. */
  get calls(): Call[] {
    return [...this.#calls.values()];
  }

  /**
   * [CAL] Calls a user, or several at once (a group call); media is set up at once so audio flows
   * the moment someone answers.
   */
  async call(to: string | string[]): Promise<Call> {
    const { call: info } = await this.request("call.invite", { to });
    const call = this.#track(info, "outgoing");
    void this.#startMedia(call);
    return call;
  }

  async history(limit?: number): Promise<RequestResult<"call.history">["calls"]> {
    const { calls } = await this.request("call.history", limit ? { limit } : {});
    return calls;
  }

  /** Closes the connection (without logging out: the session can be resumed) and stops reconnecting. */
  disconnect(): void {
    this.#closing = true;
    this.#channel?.close(CloseCode.NORMAL, "NORMAL");
  }

  readonly #callActions: CallActions = {
    answer: async (call) => {
      const { call: info } = await this.request("call.answer", { callId: call.id });
      call.update(info);
    },
    decline: async (call) => {
      await this.request("call.decline", { callId: call.id });
    },
    hangup: async (call) => {
      await this.request("call.hangup", { callId: call.id });
    },
    hold: async (call, held) => {
      const { call: info } = await this.request(held ? "call.hold" : "call.resume", { callId: call.id });
      call.update(info);
    },
    add: async (call, username) => {
      const { call: info } = await this.request("call.add", { callId: call.id, to: username });
      call.update(info);
    },
    mute: async (call, muted) => {
      const { call: info } = await this.request("call.mute", { callId: call.id, muted });
      call.update(info);
    },
  };

  #track(info: CallInfo, direction: "outgoing" | "incoming", waiting = false): Call {
    const call = new Call(info, direction, this.#self?.id ?? 0, this.#callActions, waiting);
    this.#calls.set(call.id, call);
    return call;
  }

  /**
   * Offers this device's media leg to the server (non-trickle ICE) and applies the answer. The
   * relay (TURN) servers come first: a device whose network blocks UDP reaches the relay through them.
   */
  async #startMedia(call: Call, renew = false): Promise<void> {
    const factory = this.#options.createPeerConnection;
    if (!factory) return;
    let pc: PeerConnectionLike | undefined;
    try {
      const { iceServers } = await this.request("media.iceServers", {});
      if (call.endInfo) return;
      pc = await factory(call, { iceServers });
      if (!renew) call.peerConnection = pc;
      if (pc.getTransceivers().length === 0) pc.addTransceiver("audio", { direction: "sendrecv" });
      // One more receive-only stream per other participant heard at once (conference slots).
      const streams = this.#options.receiveStreams ?? DEFAULT_RECEIVE_STREAMS;
      for (let i = pc.getTransceivers().length; i < streams; i++) pc.addTransceiver("audio", { direction: "recvonly" });
      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringComplete(pc);
      const offer = pc.localDescription?.sdp;
      if (!offer) throw new Error("No local description.");
      if (call.endInfo) return;
      const { sdp } = await this.request("call.media", { callId: call.id, sdp: offer });
      if (call.endInfo) return;
      await pc.setRemoteDescription({ type: "answer", sdp });
      // The server swapped the new leg in on `call.media`; the old connection goes.
      if (renew) call.mediaRenewed(pc);
      if (call.endInfo) call.peerConnection?.close();
    } catch (error) {
      if (renew && pc && pc !== call.peerConnection) pc.close();
      if (!call.endInfo) call.mediaFailed(error as Error);
    }
  }

  /**
   * Sets up a new media leg for `call` in place of the old one (the relay stopped hearing this
   * device, or its path failed): one at a time per call, only while connected.
   */
  #renewMedia(call: Call): void {
    if (this.#renewing.has(call.id) || call.endInfo || !this.connected) return;
    this.#renewing.add(call.id);
    void this.#startMedia(call, true).finally(() => this.#renewing.delete(call.id));
  }

  async #loggedIn<R extends AuthResult>(pending: Promise<R>): Promise<R> {
    const result = await pending;
    this.#self = result.user;
    this.#token = result.token;
    if (result.deviceToken) this.#options.deviceTokens?.save(result.user.username, result.deviceToken);
    this.emit("account", result.user);
    await Promise.all([this.refreshDirectory(), this.refreshPhonebook()]);
    return result;
  }

  #onEvent(message: EventMessage): void {
    this.emit("event", message);
    switch (message.event) {
      case "presence.changed": {
        const user = this.#directory.get(message.data.userId);
        if (user) {
          user.status = message.data.status;
          user.devices = message.data.devices;
          this.emit("directory", this.directory);
        }
        this.emit("presence", message.data);
        break;
      }
      case "directory.userAdded":
      case "directory.userUpdated":
        this.#directory.set(message.data.user.id, message.data.user);
        this.emit("directory", this.directory);
        break;
      case "directory.userRemoved":
        this.#directory.delete(message.data.userId);
        this.emit("directory", this.directory);
        break;
      case "account.updated":
        this.#self = message.data.user;
        this.emit("account", message.data.user);
        break;
      case "phonebook.updated":
        this.#phonebook = message.data.entries;
        this.emit("phonebook", message.data.entries);
        break;
      case "session.ended":
        this.emit("sessionEnded", message.data);
        break;
      case "call.incoming": {
        const call = this.#track(message.data.call, "incoming", message.data.waiting);
        void this.#startMedia(call);
        this.delegate.onIncomingCall?.(call);
        this.emit("incomingCall", call);
        break;
      }
      case "call.info":
        this.#calls.get(message.data.call.callId)?.update(message.data.call);
        break;
      case "call.mediaRestart": {
        const call = this.#calls.get(message.data.callId);
        if (call) this.#renewMedia(call);
        break;
      }
      case "call.ended": {
        const call = this.#calls.get(message.data.callId);
        this.#calls.delete(message.data.callId);
        call?.finish({ reason: message.data.reason, outcome: message.data.outcome, by: message.data.by });
        break;
      }
    }
  }
}

/** This device talks in the call: it placed it, or answered it here (the server keeps its leg). */
function isTalking(call: Call): boolean {
  return call.state !== "ended" && (call.myState === "calling" || call.myState === "connected");
}
