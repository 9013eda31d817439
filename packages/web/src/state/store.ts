import type { ParleyClient } from "@parley/client";
import type { PhonebookEntry, RequestParams, SelectableStatus } from "@parley/protocol";
import { AccountSlice } from "./account-slice.js";
import { AutoAway } from "./auto-away.js";
import { CallsSlice } from "./calls-slice.js";
import { emptyHistory, HistorySlice } from "./history-slice.js";
import { PhonebookSlice } from "./phonebook-slice.js";
import { PreferencesSlice } from "./preferences-slice.js";
import { SessionSlice } from "./session-slice.js";
import type { Page, SoftphoneState, StateAccess } from "./softphone-state.js";

export type { CallView, EndNotice } from "./call-manager.js";
export { UnreachableError } from "./errors.js";
export type { HistoryState, Page, SignedOutReason, SoftphoneState } from "./softphone-state.js";

/**
 * The softphone's state and actions, composed of slices that each own a part of the state: the
 * session (the SDK client, sign-in, reconnect), the calls (with the microphone, media and tones),
 * the history, the audio preferences, the automatic away status, the phone book and the account.
 * React reads it through `useSyncExternalStore`; every change replaces the state object.
 */
export class SoftphoneStore {
  #state: SoftphoneState;
  readonly #listeners = new Set<() => void>();
  readonly #session: SessionSlice;
  /**
   * This device's calls and microphone: placing, answering, declining, holding and hanging up
   * calls, muting and choosing the microphone. The UI calls it directly; the store only wires it
   * to the session and the history.
   */
  readonly calls: CallsSlice;
  readonly #history: HistorySlice;
  readonly #prefs: PreferencesSlice;
  readonly #autoAway: AutoAway;
  readonly #phonebook: PhonebookSlice;
  readonly #account: AccountSlice;
  /** False on the operator console: no microphone, incoming calls are left to the user's softphones. */
  readonly #softphone: boolean;

  constructor(options: { softphone?: boolean } = {}) {
    this.#softphone = options.softphone ?? true;
    const state: StateAccess = { get: () => this.#state, set: (patch) => this.#set(patch) };
    this.#prefs = new PreferencesSlice(state);
    this.#session = new SessionSlice(state, {
      peerConnectionFactory: () => (this.#softphone ? this.calls.peerConnectionFactory() : undefined),
      incomingCall: (call) => {
        if (this.#softphone) this.calls.incoming(call);
      },
      signInState: (user) => ({ history: this.#history.forSignIn(user.id) }),
      signedIn: () => {
        this.#autoAway.cancel();
        void this.refreshHistory();
        if (this.#softphone) void this.calls.prepareMicrophone();
      },
      reconnected: () => void this.refreshHistory(),
      endingSession: () => this.calls.reset(),
      sessionEnded: () => ({ ...this.calls.releaseMicrophone(), page: "contacts", history: emptyHistory() }),
    });
    this.calls = new CallsSlice(state, this.#session, this.#prefs, () => {
      void this.refreshHistory();
      // The server writes the history row as the call ends; fetch again in case we were first.
      setTimeout(() => void this.refreshHistory(), 1500);
    });
    this.#history = new HistorySlice(state, this.#session);
    this.#autoAway = new AutoAway(state, this.#session);
    this.#phonebook = new PhonebookSlice(this.#session);
    this.#account = new AccountSlice(this.#session);
    this.#state = {
      ...this.calls.initialState(),
      ...this.#session.initialState(),
      page: "contacts",
      history: emptyHistory(),
      ...this.#prefs.initialState(),
    };
  }

  // ---- React binding -------------------------------------------------------------------------

  /** The SDK client of the current sign-in, if any: the operator console sends its requests on it. */
  get client(): ParleyClient | undefined {
    return this.#session.client;
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
    this.#autoAway.start();
    this.#session.watchNetwork();
    this.#session.resumeSaved();
  }

  retryResume(): Promise<void> {
    return this.#session.retryResume();
  }

  signIn(url: string, username: string, password: string): Promise<void> {
    return this.#session.signIn(url, username, password);
  }

  register(url: string, username: string, password: string, displayName: string): Promise<void> {
    return this.#session.register(url, username, password, displayName);
  }

  /** Reconnects by hand after the SDK gave up (kicked, or the server stayed away). */
  reconnect(): Promise<void> {
    return this.#session.reconnect();
  }

  /**
   * Logs out. This device signs out locally even when the server cannot be told (it is down);
   * "everywhere" must reach the server, so it fails instead.
   */
  logout(allDevices: boolean): Promise<void> {
    return this.#session.logout(allDevices);
  }

  deleteAccount(password: string): Promise<void> {
    return this.#session.deleteAccount(password);
  }

  // ---- Navigation, presence ------------------------------------------------------------------

  setPage(page: Page): void {
    this.#set({ page });
    if (page === "history") {
      this.markHistorySeen();
      void this.refreshHistory();
    }
  }

  setStatus(status: SelectableStatus): Promise<void> {
    this.#autoAway.cancel();
    return this.#session.setStatus(status);
  }

  // ---- Speaker (the microphone is in `calls`) ------------------------------------------------

  setSpeakerDevice(deviceId: string): void {
    this.#prefs.setSpeakerDevice(deviceId);
  }

  setSpeakerVolume(volume: number): void {
    this.#prefs.setSpeakerVolume(volume);
  }

  toggleSpeaker(): void {
    this.#prefs.toggleSpeaker();
  }

  // ---- History -------------------------------------------------------------------------------

  refreshHistory(): Promise<void> {
    return this.#history.refresh();
  }

  /** Opening the history clears the missed-call badge. */
  markHistorySeen(): void {
    this.#history.markSeen();
  }

  // ---- Phone book and account ----------------------------------------------------------------

  addToPhonebook(params: RequestParams<"phonebook.add">): Promise<PhonebookEntry> {
    return this.#phonebook.add(params);
  }

  updatePhonebookEntry(params: RequestParams<"phonebook.update">): Promise<PhonebookEntry> {
    return this.#phonebook.update(params);
  }

  removePhonebookEntry(id: number): Promise<void> {
    return this.#phonebook.remove(id);
  }

  setDisplayName(displayName: string): Promise<void> {
    return this.#account.setDisplayName(displayName);
  }

  setUsername(username: string): Promise<void> {
    return this.#account.setUsername(username);
  }

  changePassword(oldPassword: string, newPassword: string): Promise<void> {
    return this.#account.changePassword(oldPassword, newPassword);
  }

  sessions(): ReturnType<AccountSlice["sessions"]> {
    return this.#account.sessions();
  }
}
