import { SAMPLE_RATE } from "./constants.js";

const FULL_SCALE = 32768;
/** Longest FFT segment; longer signals are analysed as overlapping segments (Welch) to bound cost. */
const MAX_SEGMENT = 65536;
/** Minimum FFT size, zero-padding short inputs so the peak can be located to a fraction of a Hz. */
const MIN_FFT = 8192;

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** In-place iterative radix-2 FFT; `re.length` must be a power of two. */
function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      const tr = re[i] as number;
      re[i] = re[j] as number;
      re[j] = tr;
      const ti = im[i] as number;
      im[i] = im[j] as number;
      im[j] = ti;
    }
  }
  for (let size = 2; size <= n; size *= 2) {
    const half = size / 2;
    const step = (-2 * Math.PI) / size;
    const wr = Math.cos(step);
    const wi = Math.sin(step);
    for (let start = 0; start < n; start += size) {
      let cr = 1;
      let ci = 0;
      for (let k = 0; k < half; k++) {
        const a = start + k;
        const b = a + half;
        const br = re[b] as number;
        const bi = im[b] as number;
        const xr = br * cr - bi * ci;
        const xi = br * ci + bi * cr;
        re[b] = (re[a] as number) - xr;
        im[b] = (im[a] as number) - xi;
        re[a] = (re[a] as number) + xr;
        im[a] = (im[a] as number) + xi;
        const nr = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = nr;
      }
    }
  }
}

function hann(length: number): Float64Array {
  if (length === 1) return Float64Array.of(1);
  const w = new Float64Array(length);
  for (let i = 0; i < length; i++) w[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (length - 1));
  return w;
}

/**
 * Frequency (Hz) of the strongest spectral peak: Hann-windowed FFT (mean removed, DC bin ignored),
 * Welch-averaged over 50%-overlapping segments of up to 65536 samples, zero-padded to at least 8192
 * points, refined between bins by parabolic interpolation of the log power. Returns 0 for silence.
 */
export function dominantFrequency(samples: Int16Array, sampleRate: number = SAMPLE_RATE): number {
  if (samples.length < 2) return 0;
  const segment = Math.min(samples.length, MAX_SEGMENT);
  const size = Math.max(nextPowerOfTwo(segment), MIN_FFT);
  const hop = Math.max(1, segment >> 1);
  const window = hann(segment);
  const power = new Float64Array(size / 2);
  const re = new Float64Array(size);
  const im = new Float64Array(size);
  for (let start = 0; start + segment <= samples.length; start += hop) {
    let mean = 0;
    for (let i = 0; i < segment; i++) mean += samples[start + i] as number;
    mean /= segment;
    re.fill(0);
    im.fill(0);
    for (let i = 0; i < segment; i++) re[i] = ((samples[start + i] as number) - mean) * (window[i] as number);
    fft(re, im);
    for (let k = 0; k < size / 2; k++)
      power[k] = (power[k] as number) + (re[k] as number) ** 2 + (im[k] as number) ** 2;
  }
  let peak = 0;
  let best = 0;
  for (let k = 1; k < size / 2; k++) {
    const p = power[k] as number;
    if (p > best) {
      best = p;
      peak = k;
    }
  }
  if (best === 0) return 0;
  let offset = 0;
  const before = power[peak - 1] ?? 0;
  const after = power[peak + 1] ?? 0;
  if (peak > 1 && before > 0 && after > 0) {
    const a = Math.log(before);
    const b = Math.log(best);
    const c = Math.log(after);
    const denominator = a - 2 * b + c;
    if (denominator < 0) offset = (0.5 * (a - c)) / denominator;
  }
  return ((peak + offset) * sampleRate) / size;
}

/**
 * Energy of the `frequencyHz` component (Goertzel over the whole Hann-windowed signal), as the squared
 * amplitude relative to full scale: a full-scale pure tone gives ~1, a -6 dBFS tone ~0.25, silence 0.
 * Components further than ~2 x sampleRate / length Hz away contribute (almost) nothing.
 */
export function toneLevel(samples: Int16Array, frequencyHz: number, sampleRate: number = SAMPLE_RATE): number {
  const n = samples.length;
  if (n < 2) return 0;
  const coefficient = 2 * Math.cos((2 * Math.PI * frequencyHz) / sampleRate);
  let s1 = 0;
  let s2 = 0;
  let windowSum = 0;
  for (let i = 0; i < n; i++) {
    const w = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1));
    windowSum += w;
    const s0 = ((samples[i] as number) / FULL_SCALE) * w + coefficient * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = Math.max(0, s1 * s1 + s2 * s2 - coefficient * s1 * s2);
  const amplitude = (2 * Math.sqrt(power)) / windowSum;
  return amplitude * amplitude;
}

/** Root-mean-square level relative to full scale, 0..1 (a full-scale sine is ~0.707). */
export function rms(samples: Int16Array): number {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (const s of samples) sum += s * s;
  return Math.sqrt(sum / samples.length) / FULL_SCALE;
}

/** A sine tone at 48 kHz; `amplitude` is relative to full scale (0.5 = -6 dBFS). */
export function tone(frequencyHz: number, seconds: number, amplitude = 0.5): Int16Array {
  const out = new Int16Array(Math.max(0, Math.round(seconds * SAMPLE_RATE)));
  const peak = Math.max(0, Math.min(1, amplitude)) * 32767;
  const step = (2 * Math.PI * frequencyHz) / SAMPLE_RATE;
  for (let i = 0; i < out.length; i++) out[i] = Math.round(peak * Math.sin(step * i));
  return out;
}
