import {
  type Call,
  type ConnectionState,
  ParleyClient,
  type PeerConnectionFactory,
  type WebSocketLike,
} from "@parley/client";
import type { AuthResult, DirectoryUser, RequestParams, SelectableStatus, Self } from "@parley/protocol";
import { browserDeviceName } from "./device-name.js";
import { errorCodeOf, NotConnectedError, UnreachableError } from "./errors.js";
import type { ClientAccess, SignedOutReason, SoftphoneState, StateAccess } from "./softphone-state.js";
import { deviceTokenStore, loadServerUrl, loadSession, saveServerUrl, saveSession } from "./storage.js";

/** What the other slices do at the session's turns; the store wires them. */
export interface SessionHooks {
  /** The peer connections of each new client's calls; none on the operator console. */
  peerConnectionFactory(): PeerConnectionFactory | undefined;
  /** A call rings on this device while signed in. */
  incomingCall(call: Call): void;
  /** The other slices' state for a sign-in of `user`, set together with the session's. */
  signInState(user: Self): Partial<SoftphoneState>;
  /** After the sign-in state is set. */
  signedIn(): void;
  /** Connected again after a reconnect, the session resumed by the SDK. */
  reconnected(): void;
  /** Signing out, before the client is let go: the calls end. */
  endingSession(): void;
  /** Signing out, after the client is let go: devices released; the other slices' signed-out state. */
  sessionEnded(): Partial<SoftphoneState>;
}

type SessionState = Pick<
  SoftphoneState,
  | "phase"
  | "serverUrl"
  | "connection"
  | "signedOutReason"
  | "resumeError"
  | "kicked"
  | "self"
  | "directory"
  | "phonebook"
>;

/**
 * The sign-in and its connection: the one ParleyClient (the SDK) of the current sign-in, resume,
 * reconnect, sign-out, and the lists the SDK keeps (`self`, `directory`, `phonebook`).
 */
export class SessionSlice implements ClientAccess {
  readonly #state: StateAccess;
  readonly #hooks: SessionHooks;
  #client: ParleyClient | undefined;
  #clientUrl = "";
  #detach: (() => void)[] = [];

  constructor(state: StateAccess, hooks: SessionHooks) {
    this.#state = state;
    this.#hooks = hooks;
  }

  initialState(): SessionState {
    return {
      phase: "starting",
      serverUrl: loadServerUrl(),
      connection: "disconnected",
      signedOutReason: undefined,
      resumeError: undefined,
      kicked: false,
      self: undefined,
      directory: [],
      phonebook: [],
    };
  }

  /** The SDK client of the current sign-in, if any. */
  get client(): ParleyClient | undefined {
    return this.#client;
  }

  requireClient(): ParleyClient {
    const client = this.#client;
    if (client?.connectionState !== "connected") throw new NotConnectedError();
    return client;
  }

  /** On page load: resume the saved session, if any. */
  resumeSaved(): void {
    const saved = loadSession();
    if (saved) void this.#resume(saved.url, saved.token);
    else this.#state.set({ phase: "signedOut" });
  }

  /** A new network (Wi-Fi to hotspot): check the connection now rather than at the next ping. */
  watchNetwork(): void {
    window.addEventListener("online", () => void this.#client?.checkConnection());
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
      this.signOut("expired");
      return;
    }
    this.#state.set({ kicked: false, connection: "connecting" });
    this.#discardClient();
    const client = this.#newClient(saved.url);
    try {
      await client.connect();
    } catch {
      this.#state.set({ connection: "disconnected" });
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
      await this.requireClient().logout(true);
    } else {
      try {
        await this.requireClient().logout(false);
      } catch {
        // signed out here anyway
      }
    }
    this.signOut("normal");
  }

  async deleteAccount(password: string): Promise<void> {
    await this.requireClient().deleteAccount(password);
    this.signOut("deleted");
  }

  async setStatus(status: SelectableStatus): Promise<void> {
    const self = await this.requireClient().setStatus(status);
    this.selfChanged(self);
  }

  /** The server's latest view of my account (a reply to a change). */
  selfChanged(self: Self): void {
    this.#state.set({ self });
  }

  signOut(reason: SignedOutReason): void {
    this.#hooks.endingSession();
    this.#discardClient();
    const others = this.#hooks.sessionEnded();
    saveSession(undefined);
    this.#state.set({
      phase: "signedOut",
      signedOutReason: reason,
      resumeError: undefined,
      connection: "disconnected",
      kicked: false,
      self: undefined,
      directory: [],
      phonebook: [],
      ...others,
    });
  }

  async #resume(url: string, token: string): Promise<void> {
    this.#state.set({ phase: "resuming", resumeError: undefined, serverUrl: url });
    let client: ParleyClient;
    try {
      client = await this.#connectedClient(url);
    } catch (error) {
      this.#state.set({ phase: "signedOut", resumeError: error });
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
    if (code === "SESSION_INVALID") this.signOut("expired");
    else if (code === "ACCOUNT_DISABLED") this.signOut("disabled");
    else if (this.#state.get().phase === "signedIn") this.#state.set({ connection: "disconnected" });
    else this.#state.set({ phase: "signedOut", resumeError: error });
  }

  /** A client connected to `url`: the current one when it fits, else a new one. */
  async #connectedClient(url: string): Promise<ParleyClient> {
    saveServerUrl(url);
    this.#state.set({ serverUrl: url });
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
    const createPeerConnection = this.#hooks.peerConnectionFactory();
    const client = new ParleyClient({
      url,
      // The browser's WebSocket handlers take `Event`s, the SDK's interface `unknown`: same object.
      webSocket: (u) => new WebSocket(u) as unknown as WebSocketLike,
      client: { name: "parley-web", version: "0.1.0" },
      reconnect: true,
      deviceTokens: deviceTokenStore,
      ...(createPeerConnection ? { createPeerConnection } : {}),
    });
    this.#client = client;
    this.#clientUrl = url;
    client.delegate = {
      onIncomingCall: (call) => {
        if (this.#client === client && this.#state.get().phase === "signedIn") this.#hooks.incomingCall(call);
      },
    };
    this.#detach = [
      client.on("connection", (state) => this.#onConnection(client, state)),
      client.on("directory", (users) => {
        if (this.#client === client) this.#state.set({ directory: this.#others(users) });
      }),
      client.on("account", (self) => {
        if (this.#client === client && this.#state.get().phase === "signedIn")
          this.#state.set({ self, directory: this.#others(client.directory, self) });
      }),
      client.on("phonebook", (entries) => {
        if (this.#client === client) this.#state.set({ phonebook: entries });
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
    this.#state.set({
      phase: "signedIn",
      serverUrl: url,
      connection: client.connectionState,
      signedOutReason: undefined,
      resumeError: undefined,
      kicked: false,
      self: result.user,
      directory: this.#others(client.directory, result.user),
      phonebook: client.phonebook,
      ...this.#hooks.signInState(result.user),
    });
    this.#hooks.signedIn();
  }

  #onConnection(client: ParleyClient, state: ConnectionState): void {
    if (this.#client !== client) return;
    if (this.#state.get().phase !== "signedIn") return;
    this.#state.set({ connection: state });
    if (state === "connected" && client.self) {
      // Back after a reconnect: the SDK resumed the session and refreshed the lists.
      this.#state.set({
        self: client.self,
        directory: this.#others(client.directory, client.self),
        phonebook: client.phonebook,
      });
      this.#hooks.reconnected();
    }
  }

  /** The server closed the session (or is about to): decide what the user sees. */
  #onSessionOver(reason: string): void {
    if (this.#state.get().phase !== "signedIn") return;
    switch (reason) {
      case "SESSION_REVOKED":
        this.signOut("revoked");
        break;
      case "SESSION_INVALID":
      case "SESSION_EXPIRED":
        this.signOut("expired");
        break;
      case "ACCOUNT_DISABLED":
        this.signOut("disabled");
        break;
      case "KICKED":
        this.#state.set({ kicked: true });
        break;
    }
  }

  #others(users: DirectoryUser[], self = this.#state.get().self): DirectoryUser[] {
    return users.filter((u) => u.id !== self?.id);
  }
}
