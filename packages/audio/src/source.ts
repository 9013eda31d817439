import { randomInt } from "node:crypto";
import { FRAME_MS, FRAME_SAMPLES } from "./constants.js";
import { OpusEncoder } from "./opus.js";

/** One RTP-ready Opus frame. `timestamp` is on the 48 kHz RTP clock (uint32), `sequenceNumber` is uint16. */
export interface AudioFrame {
  payload: Buffer;
  timestamp: number;
  sequenceNumber: number;
  marker: boolean;
  /** The frame's audio level as RFC 6464 puts it: -dBov, 0 (loudest) to 127 (silence). */
  level: number;
}

/** RFC 6464 level of a frame: its RMS in -dBov, clamped to 0..127. */
export function audioLevel(samples: Int16Array): number {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) {
    const s = (samples[i] as number) / 32768;
    sum += s * s;
  }
  const rms = Math.sqrt(sum / Math.max(1, samples.length));
  if (rms === 0) return 127;
  return Math.min(127, Math.max(0, Math.round(-20 * Math.log10(rms))));
}

export interface AudioSourceOptions {
  /** First RTP timestamp (uint32). Random by default, as RFC 3550 recommends. */
  initialTimestamp?: number;
  /** First RTP sequence number (uint16). Random by default. */
  initialSequenceNumber?: number;
}

/** Timer period: half a frame, so a frame goes out at most ~10 ms (plus event-loop delay) after it is due. */
const TICK_MS = FRAME_MS / 2;
/**
 * If the event loop stalls for longer than this many frames, the backlog is not sent as a burst: the
 * missed frames are skipped (timestamp and loop position jump ahead, sequence numbers stay consecutive,
 * marker set), exactly as if the microphone had dropped that audio.
 */
const MAX_BACKLOG_FRAMES = 10;

/**
 * Loops `samples` as a microphone: every 20 ms it encodes the next 960 samples and calls `onFrame`.
 * Driven by a 10 ms setInterval checked against performance.now(), so it sends 50 frames/s on average
 * with no long-term drift. The first frame goes out ~10 ms after start(); the first frame after each
 * start() (or after a skipped stall) has `marker` set. While `muted`, encoded silence is sent and the
 * loop position keeps advancing. The running timer keeps the process alive until stop().
 */
export class AudioSource {
  /** When true, frames carry encoded digital silence instead of the samples. */
  muted = false;
  /**
   * Opus in-band FEC for the loss this many percent of packets (0: off, the default); applied
   * from the next frame on. See OpusEncoder.setFec.
   */
  fecLossPercent = 0;
  #appliedFec = 0;

  readonly #samples: Int16Array;
  readonly #onFrame: (frame: AudioFrame) => void;
  readonly #frame = new Int16Array(FRAME_SAMPLES);
  readonly #silence = new Int16Array(FRAME_SAMPLES);
  #encoder: OpusEncoder | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** performance.now() at which slot 0 of the current run was due. */
  #epoch = 0;
  /** Frame slots consumed in the current run (sent or skipped). */
  #slots = 0;
  #position = 0;
  #timestamp: number;
  #sequenceNumber: number;
  #marker = true;
  #framesSent = 0;
  #stoppedAt: number | undefined;

  constructor(samples: Int16Array, onFrame: (frame: AudioFrame) => void, options: AudioSourceOptions = {}) {
    this.#samples = samples;
    this.#onFrame = onFrame;
    this.#timestamp = (options.initialTimestamp ?? randomInt(0, 2 ** 32)) >>> 0;
    this.#sequenceNumber = (options.initialSequenceNumber ?? randomInt(0, 2 ** 16)) & 0xffff;
  }

  /** Frames handed to onFrame so far (across start/stop cycles). */
  get framesSent(): number {
    return this.#framesSent;
  }

  /** True between start() and stop(). */
  get running(): boolean {
    return this.#timer !== undefined;
  }

  /** Starts (or resumes) sending. After a stop, the RTP timestamp jumps by the time spent stopped. */
  start(): void {
    if (this.#timer !== undefined) return;
    const now = performance.now();
    if (this.#stoppedAt !== undefined) {
      this.#advance(Math.round((now - this.#stoppedAt) / FRAME_MS));
      this.#marker = true;
    }
    this.#encoder = new OpusEncoder();
    this.#appliedFec = 0;
    this.#epoch = now;
    this.#slots = 0;
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
  }

  /** Stops the timer and frees the encoder's wasm memory. Idempotent. */
  stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#encoder?.close();
    this.#encoder = undefined;
    this.#stoppedAt = performance.now();
  }

  #tick(): void {
    // Slot k is due at epoch + k * FRAME_MS, so floor(elapsed / FRAME_MS) + 1 slots are due by now.
    const due = Math.floor((performance.now() - this.#epoch) / FRAME_MS) + 1;
    let behind = due - this.#slots;
    if (behind > MAX_BACKLOG_FRAMES) {
      const skipped = behind - 1;
      this.#advance(skipped);
      this.#slots += skipped;
      this.#marker = true;
      behind = 1;
    }
    // Re-check #timer: onFrame may call stop().
    for (; behind > 0 && this.#timer !== undefined; behind--) this.#sendNext();
  }

  /** Moves timestamp and loop position forward by `frames` without sending. */
  #advance(frames: number): void {
    if (frames <= 0) return;
    this.#timestamp = (this.#timestamp + frames * FRAME_SAMPLES) % 2 ** 32;
    if (this.#samples.length > 0) this.#position = (this.#position + frames * FRAME_SAMPLES) % this.#samples.length;
  }

  #sendNext(): void {
    const encoder = this.#encoder;
    if (encoder === undefined) return;
    const source = this.#samples;
    if (source.length > 0) {
      for (let i = 0; i < FRAME_SAMPLES; i++) {
        this.#frame[i] = source[this.#position] as number;
        this.#position = this.#position + 1 === source.length ? 0 : this.#position + 1;
      }
    }
    const pcm = this.muted || source.length === 0 ? this.#silence : this.#frame;
    if (this.fecLossPercent !== this.#appliedFec) {
      encoder.setFec(this.fecLossPercent);
      this.#appliedFec = this.fecLossPercent;
    }
    const payload = encoder.encode(pcm);
    const frame: AudioFrame = {
      payload,
      level: audioLevel(pcm),
      timestamp: this.#timestamp,
      sequenceNumber: this.#sequenceNumber,
      marker: this.#marker,
    };
    this.#timestamp = (this.#timestamp + FRAME_SAMPLES) % 2 ** 32;
    this.#sequenceNumber = (this.#sequenceNumber + 1) & 0xffff;
    this.#marker = false;
    this.#slots++;
    this.#framesSent++;
    this.#onFrame(frame);
  }
}
