import { OPUS_FRAME_TICKS } from "./rtp-clock.js";

/**
 * Voice activity from RFC 6464 audio levels (0 = 0 dBov, loudest; 127 = silence). A packet at
 * -50 dBov or louder counts as voiced; `activity` follows the share of voiced packets over the
 * last ~300 ms, and speaking turns on above 0.5 and off below 0.15 (hysteresis, so a word's pauses
 * do not flicker the indicator).
 */
const VOICED_LEVEL = 50;
const ACTIVITY_DECAY = 0.94;
const SPEAKING_ON = 0.5;
const SPEAKING_OFF = 0.15;
/** Loudness follows the level with a ~200 ms time constant; it ranks speakers for receive slots. */
const LOUDNESS_DECAY = 0.9;

/** One client's voice activity: smoothed loudness and the speaking state, from its audio levels. */
export class VoiceActivity {
  #activity = 0;
  #loudness = 0;
  #speaking = false;

  /** True while the audio level says the client is talking. */
  get speaking(): boolean {
    return this.#speaking;
  }

  /** Smoothed loudness, 0 (silence) to 127 (0 dBov): ranks speakers. */
  get loudness(): number {
    return this.#loudness;
  }

  /**
   * Hot path: one packet's level; `timestampAdvance` is how many RTP ticks its timestamp is past
   * the previous packet's (a signed 32-bit number). With DTX a silent client sends a packet every
   * ~400 ms instead of every 20 ms: the 20 ms frames it skipped count as silence, so speaking ends
   * and loudness falls as fast as without DTX. True when the speaking state changed.
   */
  hear(level: number, timestampAdvance: number): boolean {
    const frames = timestampAdvance / OPUS_FRAME_TICKS;
    const skipped = Math.min(Math.round(frames) - 1, 1000);
    if (skipped > 0) {
      this.#loudness *= LOUDNESS_DECAY ** skipped;
      this.#activity *= ACTIVITY_DECAY ** skipped;
    }
    this.#loudness = this.#loudness * LOUDNESS_DECAY + (127 - level) * (1 - LOUDNESS_DECAY);
    this.#activity = this.#activity * ACTIVITY_DECAY + (level <= VOICED_LEVEL ? 1 - ACTIVITY_DECAY : 0);
    const speaking = this.#speaking ? this.#activity > SPEAKING_OFF : this.#activity > SPEAKING_ON;
    if (speaking === this.#speaking) return false;
    this.#speaking = speaking;
    return true;
  }
}
