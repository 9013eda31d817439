import type { SoftphoneState, StateAccess } from "./softphone-state.js";
import { loadMediaPrefs, type MediaPrefs, saveMediaPrefs } from "./storage.js";

/** The audio preferences kept in the browser (devices, volume) and the speaker's mute: `prefs`, `speakerMuted`. */
export class PreferencesSlice {
  readonly #state: StateAccess;
  /** The preferences saved in the browser when the page loaded. */
  readonly saved: MediaPrefs = loadMediaPrefs();

  constructor(state: StateAccess) {
    this.#state = state;
  }

  initialState(): Pick<SoftphoneState, "prefs" | "speakerMuted"> {
    return { prefs: this.saved, speakerMuted: false };
  }

  setSpeakerDevice(deviceId: string): void {
    this.save({ speakerDeviceId: deviceId });
  }

  setSpeakerVolume(volume: number): void {
    this.save({ speakerVolume: Math.min(1, Math.max(0, volume)) });
    if (volume > 0 && this.#state.get().speakerMuted) this.#state.set({ speakerMuted: false });
  }

  toggleSpeaker(): void {
    this.#state.set({ speakerMuted: !this.#state.get().speakerMuted });
  }

  save(patch: Partial<MediaPrefs>): void {
    const prefs = { ...this.#state.get().prefs, ...patch };
    saveMediaPrefs(prefs);
    this.#state.set({ prefs });
  }
}
