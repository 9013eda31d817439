import { SAMPLE_RATE } from "./constants.js";
import { AudioRecorder, type RtpAudioPacket } from "./recorder.js";
import { writeWav } from "./wav.js";

/**
 * Records several incoming Opus streams (a conference: one per receive slot) and mixes them into
 * one 48 kHz mono timeline, as a listener hears them. Each stream keeps its own RTP timeline
 * (see AudioRecorder); streams are placed against each other by when their first packet arrived.
 */
export class MixingRecorder {
  readonly #streams = new Map<number, { recorder: AudioRecorder; firstArrivalMs: number }>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Accepts one packet of stream `stream` (any number identifying the stream, e.g. its slot). */
  push(stream: number, packet: RtpAudioPacket): void {
    let entry = this.#streams.get(stream);
    if (!entry) {
      entry = { recorder: new AudioRecorder(), firstArrivalMs: this.#now() };
      this.#streams.set(stream, entry);
    }
    entry.recorder.push(packet);
  }

  /** How many streams carried audio. */
  get streams(): number {
    return this.#streams.size;
  }

  /** Packets accepted over every stream. */
  get packetsReceived(): number {
    let total = 0;
    for (const { recorder } of this.#streams.values()) total += recorder.packetsReceived;
    return total;
  }

  /** The mix so far: every stream summed (clipped to 16 bits) at its arrival offset. */
  get samples(): Int16Array {
    const entries = [...this.#streams.values()];
    if (entries.length === 0) return new Int16Array(0);
    const start = Math.min(...entries.map((e) => e.firstArrivalMs));
    const tracks = entries.map((e) => ({
      offset: Math.round(((e.firstArrivalMs - start) * SAMPLE_RATE) / 1000),
      pcm: e.recorder.samples,
    }));
    const length = Math.max(...tracks.map((t) => t.offset + t.pcm.length));
    const mix = new Float64Array(length);
    for (const { offset, pcm } of tracks) for (let i = 0; i < pcm.length; i++) mix[offset + i]! += pcm[i] as number;
    return Int16Array.from(mix, (v) => Math.max(-32768, Math.min(32767, Math.round(v))));
  }

  /** Writes the mix as a 48 kHz mono 16-bit WAV. */
  save(file: string): void {
    writeWav(file, this.samples);
  }

  /** Frees every stream's decoder; `samples`/`save` still work afterwards. */
  close(): void {
    for (const { recorder } of this.#streams.values()) recorder.close();
  }
}
