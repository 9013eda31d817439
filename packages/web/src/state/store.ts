import { type ConnectionState, ParleyClient, type WebSocketLike } from "@parley/client";
import type {
  AuthResult,
  CallHistoryEntry,
  DirectoryUser,
  PhonebookEntry,
  RequestParams,
  SelectableStatus,
  Self,
} from "@parley/protocol";
import { Microphone } from "../media/microphone.js";
import { CallManager, type CallsState } from "./call-manager.js";
import { browserDeviceName } from "./device-name.js";
import { errorCodeOf, NotConnectedError } from "./errors.js";
import {
  deviceTokenStore,
  loadHistorySeen,
  loadMediaPrefs,
  loadServerUrl,
  loadSession,
  type MediaPrefs,
  saveHistorySeen,
  saveMediaPrefs,
  saveServerUrl,
  saveSession,
} from "./storage.js";

export type { CallView, EndNotice } from "./call-manager.js";

export type Page = "contacts" | "history" | "account";

/** Why the app is back on the sign-in screen. */
export type SignedOutReason = "normal" | "revoked" | "expired" | "disabled" | "deleted";

export interface HistoryState {
  entries: CallHistoryEntry[];
  status: "idle" | "loading" | "loaded" | "error";
  missedCount: number;
}

export interface SoftphoneState extends CallsState {
  phase: "starting" | "resuming" | "signedOut" | "signedIn";
  serverUrl: string;
  connection: ConnectionState;
  /** Why the app signed out by itself. */
  signedOutReason: SignedOutReason | undefined;
  /** The saved session could not be resumed for a reason other than its end (server down). */
  resumeError: unknown;
  /** The operator disconnected this device; no automatic reconnect. */
  kicked: boolean;
  self: Self | undefined;
  /** Everyone but me, sorted by display name. */
  directory: DirectoryUser[];
  phonebook: PhonebookEntry[];
  page: Page;
  history: HistoryState;
  micError: boolean;
  speakerMuted: boolean;
  prefs: MediaPrefs;
}

/** The server address could not be reached. */
export class UnreachableError extends Error {
  readonly url: string;
  constructor(url: string, options?: { cause?: unknown }) {
    super(`Cannot reach the server at ${url}.`, options);
    this.name = "UnreachableError";
    this.url = url;
  }
}

const AUTO_AWAY_MS = 10 * 60_000;
const HISTORY_LIMIT = 200;

/**
 * The softphone's state and actions: wraps one ParleyClient (the SDK), the microphone, the call
 * media and the tones. React reads it through `useSyncExternalStore`; every change replaces the
 * state object.
 */
export class SoftphoneStore {
  #state: SoftphoneState;
  readonly #listeners = new Set<() => void>();
  #client: ParleyClient | undefined;
  #clientUrl = "";
  #detach: (() => void)[] = [];
  readonly #microphone: Microphone;
  readonly #calls: CallManager;
  #lastActivity = Date.now();
  #autoAway = false;
  /** False on the operator console: no microphone, incoming calls are left to the user's softphones. */
  readonly #softphone: boolean;

  constructor(options: { softphone?: boolean } = {}) {
    this.#softphone = options.softphone ?? true;
    const prefs = loadMediaPrefs();
    this.#microphone = new Microphone(prefs.micDeviceId);
    this.#microphone.onChange = () => this.#set({ micMuted: this.#microphone.muted });
    this.#calls = new CallManager(this.#microphone, () => this.#set(this.#calls.state));
    this.#calls.onCallEnded = () => {
      void this.refreshHistory();
      // The server writes the history row as the call ends; fetch again in case we were first.
      setTimeout(() => void this.refreshHistory(), 1500);
    };
    this.#state = {
      ...this.#calls.state,
      phase: "starting",
      serverUrl: loadServerUrl(),
      connection: "disconnected",
      signedOutReason: undefined,
      resumeError: undefined,
      kicked: false,
      self: undefined,
      directory: [],
      phonebook: [],
      page: "contacts",
      history: { entries: [], status: "idle", missedCount: 0 },
      micError: false,
      speakerMuted: false,
      prefs,
    };
  }

  // ---- React binding -------------------------------------------------------------------------

  /** The SDK client of the current sign-in, if any: the operator console sends its requests on it. */
  get client(): ParleyClient | undefined {
    return this.#client;
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  readonly getState = (): SoftphoneState => this.#state;

  #set(patch: Partial<SoftphoneState>): void {
    this.#state = { ...this.#state, ...patch };
    for (const listener of [...this.#listeners]) listener();
  }

  // ---- Start, sign in, sign out --------------------------------------------------------------

  /** On page load: resume the saved session, if any. */
  start(): void {
    if (this.#state.phase !== "starting") return;
    this.#startIdleWatch();
    const saved = loadSession();
    if (saved) void this.#resume(saved.url, saved.token);
    else this.#set({ phase: "signedOut" });
  }

  async retryResume(): Promise<void> {
    const saved = loadSession();
    if (saved) await this.#resume(saved.url, saved.token);
  }

  async signIn(url: string, username: string, password: string): Promise<void> {
    const client = await this.#connectedClient(url);
    this.#signedIn(url, client, await client.login(username.trim(), password, browserDeviceName()));
  }

  async register(url: string, username: string, password: string, displayName: string): Promise<void> {
    const client = await this.#connectedClient(url);
    const params: RequestParams<"auth.register"> = {
      username: username.trim(),
      password,
      deviceName: browserDeviceName(),
    };
    if (displayName.trim()) params.displayName = displayName.trim();
    this.#signedIn(url, client, await client.register(params));
  }

  /** Reconnects by hand after the SDK gave up (kicked, or the server stayed away). */
  async reconnect(): Promise<void> {
    const saved = loadSession();
    if (!saved) {
      this.#signOut("expired");
      return;
    }
    this.#set({ kicked: false, connection: "connecting" });
    this.#discardClient();
    const client = this.#newClient(saved.url);
    try {
      await client.connect();
    } catch {
      this.#set({ connection: "disconnected" });
      return;
    }
    try {
      this.#signedIn(saved.url, client, await client.resume(saved.token));
    } catch (error) {
      this.#sessionRefused(error);
    }
  }

  /**
   * Logs out. This device signs out locally even when the server cannot be told (it is down);
   * "everywhere" must reach the server, so it fails instead.
   */
  async logout(allDevices: boolean): Promise<void> {
    if (allDevices) {
      await this.#requireClient().logout(true);
    } else {
      try {
        await this.#requireClient().logout(false);
      } catch {
        // signed out here anyway
      }
    }
    this.#signOut("normal");
  }

  async deleteAccount(password: string): Promise<void> {
    await this.#requireClient().deleteAccount(password);
    this.#signOut("deleted");
  }

  async #resume(url: string, token: string): Promise<void> {
    this.#set({ phase: "resuming", resumeError: undefined, serverUrl: url });
    let client: ParleyClient;
    try {
      client = await this.#connectedClient(url);
    } catch (error) {
      this.#set({ phase: "signedOut", resumeError: error });
      return;
    }
    try {
      this.#signedIn(url, client, await client.resume(token));
    } catch (error) {
      this.#sessionRefused(error);
    }
  }

  /** `auth.resume` failed: a dead session means signing in again; anything else may pass. */
  #sessionRefused(error: unknown): void {
    const code = errorCodeOf(error);
    if (code === "SESSION_INVALID") this.#signOut("expired");
    else if (code === "ACCOUNT_DISABLED") this.#signOut("disabled");
    else if (this.#state.phase === "signedIn") this.#set({ connection: "disconnected" });
    else this.#set({ phase: "signedOut", resumeError: error });
  }

  /** A client connected to `url`: the current one when it fits, else a new one. */
  async #connectedClient(url: string): Promise<ParleyClient> {
    saveServerUrl(url);
    this.#set({ serverUrl: url });
    if (this.#client && this.#clientUrl === url && this.#client.connectionState === "connected") return this.#client;
    this.#discardClient();
    const client = this.#newClient(url);
    try {
      await client.connect();
    } catch (error) {
      if (this.#client === client) this.#discardClient();
      throw new UnreachableError(url, { cause: error });
    }
    return client;
  }

  #newClient(url: string): ParleyClient {
    const client = new ParleyClient({
      url,
      // The browser's WebSocket handlers take `Event`s, the SDK's interface `unknown`: same object.
      webSocket: (u) => new WebSocket(u) as unknown as WebSocketLike,
      client: { name: "parley-web", version: "0.1.0" },
      reconnect: true,
      deviceTokens: deviceTokenStore,
      ...(this.#softphone ? { createPeerConnection: this.#calls.peerConnectionFactory() } : {}),
    });
    this.#client = client;
    this.#clientUrl = url;
    client.delegate = {
      onIncomingCall: (call) => {
        if (this.#softphone && this.#client === client && this.#state.phase === "signedIn") this.#calls.incoming(call);
      },
    };
    this.#detach = [
      client.on("connection", (state) => this.#onConnection(client, state)),
      client.on("directory", (users) => {
        if (this.#client === client) this.#set({ directory: this.#others(users) });
      }),
      client.on("account", (self) => {
        if (this.#client === client && this.#state.phase === "signedIn")
          this.#set({ self, directory: this.#others(client.directory, self) });
      }),
      client.on("phonebook", (entries) => {
        if (this.#client === client) this.#set({ phonebook: entries });
      }),
      client.on("sessionEnded", ({ reason }) => {
        if (this.#client === client) this.#onSessionOver(reason);
      }),
      client.on("disconnected", ({ reason }) => {
        if (this.#client === client) this.#onSessionOver(reason);
      }),
    ];
    return client;
  }

  #discardClient(): void {
    for (const off of this.#detach) off();
    this.#detach = [];
    const client = this.#client;
    this.#client = undefined;
    if (client) {
      client.delegate = {};
      client.disconnect();
    }
  }

  #signedIn(url: string, client: ParleyClient, result: AuthResult): void {
    if (this.#client !== client) return;
    saveSession({ url, token: result.token });
    this.#set({
      phase: "signedIn",
      serverUrl: url,
      connection: client.connectionState,
      signedOutReason: undefined,
      resumeError: undefined,
      kicked: false,
      self: result.user,
      directory: this.#others(client.directory, result.user),
      phonebook: client.phonebook,
      history:
        this.#state.self?.id === result.user.id ? this.#state.history : { entries: [], status: "idle", missedCount: 0 },
    });
    this.#autoAway = false;
    void this.refreshHistory();
    if (this.#softphone) void this.prepareMicrophone();
  }

  #signOut(reason: SignedOutReason): void {
    this.#calls.reset();
    this.#discardClient();
    this.#microphone.release();
    saveSession(undefined);
    this.#set({
      phase: "signedOut",
      signedOutReason: reason,
      resumeError: undefined,
      connection: "disconnected",
      kicked: false,
      self: undefined,
      directory: [],
      phonebook: [],
      page: "contacts",
      history: { entries: [], status: "idle", missedCount: 0 },
      micError: false,
    });
  }

  #onConnection(client: ParleyClient, state: ConnectionState): void {
    if (this.#client !== client) return;
    if (this.#state.phase !== "signedIn") return;
    this.#set({ connection: state });
    if (state === "connected" && client.self) {
      // Back after a reconnect: the SDK resumed the session and refreshed the lists.
      this.#set({
        self: client.self,
        directory: this.#others(client.directory, client.self),
        phonebook: client.phonebook,
      });
      void this.refreshHistory();
    }
  }

  /** The server closed the session (or is about to): decide what the user sees. */
  #onSessionOver(reason: string): void {
    if (this.#state.phase !== "signedIn") return;
    switch (reason) {
      case "SESSION_REVOKED":
        this.#signOut("revoked");
        break;
      case "SESSION_INVALID":
      case "SESSION_EXPIRED":
        this.#signOut("expired");
        break;
      case "ACCOUNT_DISABLED":
        this.#signOut("disabled");
        break;
      case "KICKED":
        this.#set({ kicked: true });
        break;
    }
  }

  #others(users: DirectoryUser[], self = this.#state.self): DirectoryUser[] {
    return users.filter((u) => u.id !== self?.id);
  }

  #requireClient(): ParleyClient {
    const client = this.#client;
    if (client?.connectionState !== "connected") throw new NotConnectedError();
    return client;
  }

  // ---- Navigation, presence ------------------------------------------------------------------

  setPage(page: Page): void {
    this.#set({ page });
    if (page === "history") {
      this.markHistorySeen();
      void this.refreshHistory();
    }
  }

  async setStatus(status: SelectableStatus): Promise<void> {
    this.#autoAway = false;
    const self = await this.#requireClient().setStatus(status);
    this.#set({ self });
  }

  #startIdleWatch(): void {
    const active = () => {
      this.#lastActivity = Date.now();
      if (this.#autoAway) {
        this.#autoAway = false;
        if (this.#state.self?.status === "away" && this.#client?.connectionState === "connected")
          void this.#client.setStatus("available").then(
            (self) => this.#set({ self }),
            () => {},
          );
      }
    };
    for (const type of ["pointerdown", "keydown", "wheel", "touchstart"]) window.addEventListener(type, active, true);
    // A new network (Wi-Fi to hotspot): check the connection now rather than at the next ping.
    window.addEventListener("online", () => void this.#client?.checkConnection());
    let lastMove = 0;
    window.addEventListener(
      "pointermove",
      () => {
        const now = Date.now();
        if (now - lastMove > 5000) {
          lastMove = now;
          active();
        }
      },
      true,
    );
    setInterval(() => {
      const client = this.#client;
      if (
        this.#state.phase === "signedIn" &&
        !this.#state.call &&
        this.#state.self?.status === "available" &&
        client?.connectionState === "connected" &&
        Date.now() - this.#lastActivity > AUTO_AWAY_MS
      ) {
        this.#autoAway = true;
        void client.setStatus("away").then(
          (self) => this.#set({ self }),
          () => {},
        );
      }
    }, 30_000);
  }

  // ---- Calls ---------------------------------------------------------------------------------

  /** Opens the microphone now so calls can start at once. */
  async prepareMicrophone(): Promise<boolean> {
    if (!navigator.mediaDevices?.getUserMedia) {
      this.#set({ micError: true });
      return false;
    }
    try {
      await this.#microphone.acquire();
      if (this.#state.micError) this.#set({ micError: false });
      return true;
    } catch {
      this.#set({ micError: true });
      return false;
    }
  }

  async placeCall(username: string, displayName: string): Promise<void> {
    const client = this.#client;
    if (client?.connectionState !== "connected") return;
    await this.#calls.place(client, username, displayName, () => this.prepareMicrophone());
  }

  /** Calls several people at once: a group call (conference). */
  async placeGroupCall(users: { username: string; displayName: string }[]): Promise<void> {
    const client = this.#client;
    if (client?.connectionState !== "connected" || users.length === 0) return;
    const name = users.map((u) => u.displayName).join(", ");
    await this.#calls.place(
      client,
      users.map((u) => u.username),
      name,
      () => this.prepareMicrophone(),
    );
  }

  /** Invites one more person into the call in front. Rejects with the server's error (e.g. CONFERENCE_FULL). */
  async addParticipant(username: string): Promise<void> {
    await this.#calls.addParticipant(username);
  }

  async answer(key?: number): Promise<void> {
    await this.prepareMicrophone();
    await this.#calls.answer(key);
  }

  decline(key?: number): Promise<void> {
    return this.#calls.decline(key);
  }

  /** Cancels a call that rings, or hangs up. */
  hangup(key?: number): Promise<void> {
    return this.#calls.hangup(key);
  }

  /** Puts a call on hold or takes it off (which holds the others). */
  setHeld(held: boolean, key?: number): Promise<void> {
    return this.#calls.setHeld(held, key);
  }

  dismissEndNotice(): void {
    this.#calls.dismissEndNotice();
  }

  // ---- In-call audio controls ----------------------------------------------------------------

  toggleMicrophone(): void {
    this.#calls.toggleMicrophone();
  }

  async setMicrophoneDevice(deviceId: string): Promise<void> {
    const track = await this.#microphone.switchTo(deviceId);
    await this.#calls.microphoneReplaced(track);
    this.#savePrefs({ micDeviceId: deviceId });
  }

  setSpeakerDevice(deviceId: string): void {
    this.#savePrefs({ speakerDeviceId: deviceId });
  }

  setSpeakerVolume(volume: number): void {
    this.#savePrefs({ speakerVolume: Math.min(1, Math.max(0, volume)) });
    if (volume > 0 && this.#state.speakerMuted) this.#set({ speakerMuted: false });
  }

  toggleSpeaker(): void {
    this.#set({ speakerMuted: !this.#state.speakerMuted });
  }

  #savePrefs(patch: Partial<MediaPrefs>): void {
    const prefs = { ...this.#state.prefs, ...patch };
    saveMediaPrefs(prefs);
    this.#set({ prefs });
  }

  // ---- History -------------------------------------------------------------------------------

  async refreshHistory(): Promise<void> {
    const client = this.#client;
    if (client?.connectionState !== "connected" || this.#state.phase !== "signedIn") return;
    if (this.#state.history.status !== "loaded") this.#set({ history: { ...this.#state.history, status: "loading" } });
    try {
      const entries = await client.history(HISTORY_LIMIT);
      if (this.#client !== client) return;
      this.#set({ history: { entries, status: "loaded", missedCount: this.#countMissed(entries) } });
      if (this.#state.page === "history") this.markHistorySeen();
    } catch {
      if (this.#client === client) this.#set({ history: { ...this.#state.history, status: "error" } });
    }
  }

  /** Opening the history clears the missed-call badge. */
  markHistorySeen(): void {
    const self = this.#state.self;
    const newest = this.#state.history.entries[0];
    if (self && newest) saveHistorySeen(self.id, newest.createdAt);
    if (this.#state.history.missedCount !== 0) this.#set({ history: { ...this.#state.history, missedCount: 0 } });
  }

  #countMissed(entries: CallHistoryEntry[]): number {
    const self = this.#state.self;
    if (!self) return 0;
    const seen = loadHistorySeen(self.id);
    const seenAt = seen ? Date.parse(seen) : Number.NEGATIVE_INFINITY;
    return entries.filter((e) => e.missed && Date.parse(e.createdAt) > seenAt).length;
  }

  // ---- Phone book and account ----------------------------------------------------------------

  async addToPhonebook(params: RequestParams<"phonebook.add">): Promise<PhonebookEntry> {
    return this.#requireClient().request("phonebook.add", params);
  }

  async updatePhonebookEntry(params: RequestParams<"phonebook.update">): Promise<PhonebookEntry> {
    return this.#requireClient().request("phonebook.update", params);
  }

  async removePhonebookEntry(id: number): Promise<void> {
    await this.#requireClient().request("phonebook.remove", { id });
  }

  async setDisplayName(displayName: string): Promise<void> {
    const self = await this.#requireClient().request("account.setDisplayName", { displayName: displayName.trim() });
    this.#set({ self });
  }

  async setUsername(username: string): Promise<void> {
    const self = await this.#requireClient().request("account.setUsername", { username: username.trim() });
    this.#set({ self });
  }

  async changePassword(oldPassword: string, newPassword: string): Promise<void> {
    await this.#requireClient().request("account.changePassword", { oldPassword, newPassword });
  }

  async sessions() {
    return (await this.#requireClient().request("account.sessions", {})).sessions;
  }
}
