import type { Call, ParleyClient, PeerConnectionFactory } from "@parley/client";
import { Microphone } from "../media/microphone.js";
import { CallManager, type CallsState } from "./call-manager.js";
import type { PreferencesSlice } from "./preferences-slice.js";
import type { ClientAccess, SoftphoneState, StateAccess } from "./softphone-state.js";

/** This device's calls and its microphone: the calls' state (`calls`, `call`, …) and `micError`. */
export class CallsSlice {
  readonly #state: StateAccess;
  readonly #session: ClientAccess;
  readonly #prefs: PreferencesSlice;
  readonly #microphone: Microphone;
  readonly #calls: CallManager;

  constructor(state: StateAccess, session: ClientAccess, prefs: PreferencesSlice, onCallEnded: () => void) {
    this.#state = state;
    this.#session = session;
    this.#prefs = prefs;
    this.#microphone = new Microphone(prefs.saved.micDeviceId);
    this.#microphone.onChange = () => this.#state.set({ micMuted: this.#microphone.muted });
    this.#calls = new CallManager(this.#microphone, () => this.#state.set(this.#calls.state));
    this.#calls.onCallEnded = onCallEnded;
  }

  initialState(): CallsState & Pick<SoftphoneState, "micError"> {
    return { ...this.#calls.state, micError: false };
  }

  peerConnectionFactory(): PeerConnectionFactory {
    return this.#calls.peerConnectionFactory();
  }

  incoming(call: Call): void {
    this.#calls.incoming(call);
  }

  /** Signing out: every call ends. */
  reset(): void {
    this.#calls.reset();
  }

  /** Signing out: the microphone is let go; no error to show. */
  releaseMicrophone(): Pick<SoftphoneState, "micError"> {
    this.#microphone.release();
    return { micError: false };
  }

  /** Opens the microphone now so calls can start at once. */
  async prepareMicrophone(): Promise<boolean> {
    if (!navigator.mediaDevices?.getUserMedia) {
      this.#state.set({ micError: true });
      return false;
    }
    try {
      await this.#microphone.acquire();
      if (this.#state.get().micError) this.#state.set({ micError: false });
      return true;
    } catch {
      this.#state.set({ micError: true });
      return false;
    }
  }

  async placeCall(username: string, displayName: string): Promise<void> {
    const client = this.#connectedClient();
    if (!client) return;
    await this.#calls.place(client, username, displayName, () => this.prepareMicrophone());
  }

  /** Calls several people at once: a group call (conference). */
  async placeGroupCall(users: { username: string; displayName: string }[]): Promise<void> {
    const client = this.#connectedClient();
    if (!client || users.length === 0) return;
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

  toggleMicrophone(): void {
    this.#calls.toggleMicrophone();
  }

  async setMicrophoneDevice(deviceId: string): Promise<void> {
    const track = await this.#microphone.switchTo(deviceId);
    await this.#calls.microphoneReplaced(track);
    this.#prefs.save({ micDeviceId: deviceId });
  }

  #connectedClient(): ParleyClient | undefined {
    const client = this.#session.client;
    return client?.connectionState === "connected" ? client : undefined;
  }
}
