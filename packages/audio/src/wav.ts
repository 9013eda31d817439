import fs from "node:fs";
import wavefile from "wavefile";
import { SAMPLE_RATE } from "./constants.js";

const { WaveFile } = wavefile;

/** The parts of wavefile's `fmt` chunk object that we read (its typings declare it as `object`). */
interface FmtChunk {
  audioFormat: number;
  numChannels: number;
  sampleRate: number;
}

/** Little-endian 16-bit PCM bytes -> samples, independent of the host's byte order. */
function int16FromLittleEndian(bytes: Uint8Array): Int16Array {
  const out = new Int16Array(bytes.length >> 1);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(i * 2, true);
  return out;
}

/**
 * Reads any WAV file wavefile understands (PCM 8/16/24/32-bit, float, A-law, mu-law, IMA ADPCM,
 * RIFF/RIFX/RF64, any rate, any channel count) and returns 48 kHz mono 16-bit samples.
 * Channels are averaged; the rate is converted with wavefile's resampler (cubic + low-pass filter).
 * Samples are brought to 16-bit before mixing and resampling, which keeps wavefile on its fast path.
 */
export function readWav(file: string): Int16Array {
  const wav = new WaveFile(fs.readFileSync(file));
  const fmt = wav.fmt as FmtChunk;
  const channels = fmt.numChannels;
  const rate = fmt.sampleRate;
  if (!Number.isInteger(channels) || channels < 1) throw new Error(`${file}: WAV has ${channels} channels`);
  if (!Number.isFinite(rate) || rate <= 0) throw new Error(`${file}: WAV has sample rate ${rate}`);

  // Fast path: already in the internal format.
  if (wav.container === "RIFF" && wav.bitDepth === "16" && channels === 1 && rate === SAMPLE_RATE) {
    return int16FromLittleEndian((wav.data as { samples: Uint8Array }).samples);
  }

  switch (wav.bitDepth) {
    case "8a":
      wav.fromALaw();
      break;
    case "8m":
      wav.fromMuLaw();
      break;
    case "4":
      wav.fromIMAADPCM();
      break;
  }
  if (wav.bitDepth !== "16") wav.toBitDepth("16");

  // wavefile returns one array for mono and an array of per-channel arrays otherwise.
  const raw = wav.getSamples(false, Int16Array) as unknown as Int16Array | Int16Array[];
  let mono: Int16Array;
  if (Array.isArray(raw)) {
    const first = raw[0];
    if (first === undefined) throw new Error(`${file}: WAV has no channels`);
    mono = new Int16Array(first.length);
    for (let i = 0; i < mono.length; i++) {
      let sum = 0;
      for (const channel of raw) sum += channel[i] ?? 0;
      mono[i] = Math.round(sum / raw.length);
    }
  } else {
    mono = raw;
  }

  if (rate === SAMPLE_RATE || mono.length === 0) return mono;
  const resampler = new WaveFile();
  resampler.fromScratch(1, rate, "16", mono);
  resampler.toSampleRate(SAMPLE_RATE);
  return resampler.getSamples(false, Int16Array) as unknown as Int16Array;
}

/** Writes 48 kHz mono 16-bit PCM (a plain RIFF/WAVE file with a 44-byte header). */
export function writeWav(file: string, samples: Int16Array): void {
  const wav = new WaveFile();
  wav.fromScratch(1, SAMPLE_RATE, "16", samples);
  fs.writeFileSync(file, wav.toBuffer());
}
