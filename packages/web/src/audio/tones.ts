import { audioContext, resumeAudio } from "./audio-context.js";

/**
 * Call progress tones made with WebAudio, no sound files:
 *
 * - ringback (the caller hears it while the callee's phone rings): 425 Hz, 1 s on, 4 s off, the
 *   European standard cadence (ETSI TR 101 041).
 * - ringtone (an incoming call): a two-note trill, two 0.4 s bursts 0.2 s apart every 3 s.
 * - call waiting (a second call while in a call): two soft 440 Hz beeps every 5 s, quiet enough
 *   to talk over.
 *
 * Only one tone plays at a time; `stop()` silences it at once.
 */

interface Burst {
  /** Seconds from the start of the cycle. */
  at: number;
  length: number;
  frequencies: number[];
}

interface Pattern {
  /** Cycle length in seconds. */
  period: number;
  bursts: Burst[];
  gain: number;
}

const RINGBACK: Pattern = { period: 5, gain: 0.12, bursts: [{ at: 0, length: 1, frequencies: [425] }] };

const RINGTONE: Pattern = {
  period: 3,
  gain: 0.09,
  bursts: [
    { at: 0, length: 0.4, frequencies: [784, 988] },
    { at: 0.6, length: 0.4, frequencies: [784, 988] },
  ],
};

const WAITING: Pattern = {
  period: 5,
  gain: 0.06,
  bursts: [
    { at: 0, length: 0.2, frequencies: [440] },
    { at: 0.4, length: 0.2, frequencies: [440] },
  ],
};

const RAMP = 0.015;

export type ToneName = "ringback" | "ringtone" | "waiting";

export class TonePlayer {
  #playing: ToneName | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #output: GainNode | undefined;

  get playing(): ToneName | undefined {
    return this.#playing;
  }

  ringback(): void {
    this.#play("ringback", RINGBACK);
  }

  ringtone(): void {
    this.#play("ringtone", RINGTONE);
  }

  waiting(): void {
    this.#play("waiting", WAITING);
  }

  stop(): void {
    this.#playing = undefined;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const output = this.#output;
    this.#output = undefined;
    if (output) {
      try {
        output.gain.cancelScheduledValues(0);
        output.gain.value = 0;
        output.disconnect();
      } catch {
        // already disconnected
      }
    }
  }

  #play(name: ToneName, pattern: Pattern): void {
    if (this.#playing === name) return;
    this.stop();
    const ctx = audioContext();
    if (!ctx) return;
    resumeAudio();
    this.#playing = name;
    const output = ctx.createGain();
    output.gain.value = 1;
    output.connect(ctx.destination);
    this.#output = output;
    const cycle = () => {
      if (this.#playing !== name || this.#output !== output) return;
      const start = ctx.currentTime + 0.05;
      for (const burst of pattern.bursts) this.#burst(ctx, output, pattern.gain, start + burst.at, burst);
      this.#timer = setTimeout(cycle, pattern.period * 1000);
    };
    cycle();
  }

  #burst(ctx: AudioContext, output: GainNode, level: number, start: number, burst: Burst): void {
    const envelope = ctx.createGain();
    envelope.gain.setValueAtTime(0, start);
    envelope.gain.linearRampToValueAtTime(level / burst.frequencies.length, start + RAMP);
    envelope.gain.setValueAtTime(level / burst.frequencies.length, start + burst.length - RAMP);
    envelope.gain.linearRampToValueAtTime(0, start + burst.length);
    envelope.connect(output);
    for (const frequency of burst.frequencies) {
      const oscillator = ctx.createOscillator();
      oscillator.type = "sine";
      oscillator.frequency.value = frequency;
      oscillator.connect(envelope);
      oscillator.start(start);
      oscillator.stop(start + burst.length + 0.01);
      oscillator.onended = () => {
        oscillator.disconnect();
        if (frequency === burst.frequencies[0]) envelope.disconnect();
      };
    }
  }
}
