/**
 * The local microphone. One stream is acquired on first need (at sign-in) and cached, because
 * the SDK's peer-connection factory is synchronous and must find a track ready when a call
 * rings. Muting disables the track (`track.enabled = false`): the peer connection keeps sending
 * silence, so unmuting needs no renegotiation.
 */
export class Microphone {
  #stream: MediaStream | undefined;
  #pending: Promise<MediaStream> | undefined;
  #deviceId: string;
  #muted = false;
  onChange: (() => void) | undefined;

  constructor(deviceId = "") {
    this.#deviceId = deviceId;
  }

  get stream(): MediaStream | undefined {
    return this.#stream;
  }

  get track(): MediaStreamTrack | undefined {
    const track = this.#stream?.getAudioTracks()[0];
    return track && track.readyState === "live" ? track : undefined;
  }

  get deviceId(): string {
    return this.#deviceId;
  }

  get muted(): boolean {
    return this.#muted;
  }

  /** The cached stream, or a new one (asks for permission the first time). */
  acquire(): Promise<MediaStream> {
    if (this.#stream && this.track) return Promise.resolve(this.#stream);
    if (this.#pending) return this.#pending;
    this.#pending = this.#open(this.#deviceId)
      .then((stream) => {
        this.#adopt(stream);
        return stream;
      })
      .finally(() => {
        this.#pending = undefined;
      });
    return this.#pending;
  }

  /** Opens another device; the caller swaps the new track into live calls, then the old one stops. */
  async switchTo(deviceId: string): Promise<MediaStreamTrack> {
    const stream = await this.#open(deviceId);
    const previous = this.#stream;
    this.#deviceId = deviceId;
    this.#adopt(stream);
    for (const track of previous?.getTracks() ?? []) track.stop();
    const track = stream.getAudioTracks()[0];
    if (!track) throw new Error("The microphone gave no audio track.");
    return track;
  }

  setMuted(muted: boolean): void {
    this.#muted = muted;
    const track = this.track;
    if (track) track.enabled = !muted;
    this.onChange?.();
  }

  /** Stops the microphone (sign-out): the browser's recording indicator goes away. */
  release(): void {
    for (const track of this.#stream?.getTracks() ?? []) track.stop();
    this.#stream = undefined;
    this.#muted = false;
    this.onChange?.();
  }

  #adopt(stream: MediaStream): void {
    this.#stream = stream;
    const track = stream.getAudioTracks()[0];
    if (track) {
      track.enabled = !this.#muted;
      track.addEventListener("ended", () => {
        if (this.#stream === stream) this.#stream = undefined;
        this.onChange?.();
      });
    }
    this.onChange?.();
  }

  async #open(deviceId: string): Promise<MediaStream> {
    const audio: MediaTrackConstraints = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
    if (deviceId) {
      try {
        return await navigator.mediaDevices.getUserMedia({ audio: { ...audio, deviceId: { exact: deviceId } } });
      } catch (error) {
        // The remembered device is gone: fall back to the default one.
        if ((error as Error).name !== "OverconstrainedError" && (error as Error).name !== "NotFoundError") throw error;
      }
    }
    return navigator.mediaDevices.getUserMedia({ audio });
  }
}
