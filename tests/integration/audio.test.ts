import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  type AudioFrame,
  AudioRecorder,
  AudioSource,
  dominantFrequency,
  FRAME_MS,
  FRAME_SAMPLES,
  OpusDecoder,
  OpusEncoder,
  readWav,
  rms,
  SAMPLE_RATE,
  tone,
  toneLevel,
  writeWav,
} from "@parley/audio";
import wavefile from "wavefile";

const SAMPLES_DIR = fileURLToPath(new URL("../../samples/", import.meta.url));
const TWO_32 = 2 ** 32;

let dir = "";
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-audio-"));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Encodes `samples` frame by frame (dropping a partial last frame). */
function encodeAll(samples: Int16Array): Buffer[] {
  const encoder = new OpusEncoder();
  const packets: Buffer[] = [];
  for (let at = 0; at + FRAME_SAMPLES <= samples.length; at += FRAME_SAMPLES) {
    packets.push(encoder.encode(samples.subarray(at, at + FRAME_SAMPLES)));
  }
  encoder.close();
  return packets;
}

function concat(parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

describe("audio toolkit", () => {
  describe("WAV", () => {
    it("writes 48 kHz mono 16-bit and reads it back unchanged", () => {
      const samples = tone(1000, 0.5, 0.9);
      samples[0] = -32768;
      samples[1] = 32767;
      samples[2] = -1;
      const file = path.join(dir, "round-trip.wav");
      writeWav(file, samples);
      assert.equal(fs.statSync(file).size, 44 + samples.length * 2, "plain 44-byte RIFF header");
      const header = fs.readFileSync(file).subarray(0, 44);
      assert.equal(header.readUInt16LE(22), 1, "mono");
      assert.equal(header.readUInt32LE(24), SAMPLE_RATE);
      assert.equal(header.readUInt16LE(34), 16, "16-bit");
      assert.deepEqual(readWav(file), samples);
    });

    it("converts a 44.1 kHz stereo file to 48 kHz mono, keeping the tone's frequency", () => {
      const rate = 44100;
      const left = new Int16Array(rate);
      const right = new Int16Array(rate);
      for (let i = 0; i < rate; i++) {
        left[i] = Math.round(16000 * Math.sin((2 * Math.PI * 1000 * i) / rate));
        right[i] = Math.round(8000 * Math.sin((2 * Math.PI * 1000 * i) / rate));
      }
      const wav = new wavefile.WaveFile();
      wav.fromScratch(2, rate, "16", [left, right]);
      const file = path.join(dir, "stereo-44k.wav");
      fs.writeFileSync(file, wav.toBuffer());

      const samples = readWav(file);
      assert.ok(Math.abs(samples.length - SAMPLE_RATE) <= 1, `1 s at 48 kHz, got ${samples.length} samples`);
      const hz = dominantFrequency(samples);
      assert.ok(Math.abs(hz - 1000) < 2, `dominant ${hz} Hz`);
      // Mean of the channels: amplitude (16000 + 8000) / 2 = 12000 of 32768 -> energy 0.134.
      const level = toneLevel(samples, 1000);
      assert.ok(Math.abs(level - (12000 / 32768) ** 2) < 0.01, `level ${level}`);
    });

    it("reads 22.05 kHz 24-bit mono too", () => {
      const rate = 22050;
      const samples24 = new Int32Array(rate / 2);
      for (let i = 0; i < samples24.length; i++) {
        samples24[i] = Math.round(4_000_000 * Math.sin((2 * Math.PI * 440 * i) / rate));
      }
      const wav = new wavefile.WaveFile();
      wav.fromScratch(1, rate, "24", samples24);
      const file = path.join(dir, "mono-22k-24bit.wav");
      fs.writeFileSync(file, wav.toBuffer());
      const samples = readWav(file);
      assert.ok(Math.abs(samples.length - SAMPLE_RATE / 2) <= 1, `${samples.length} samples`);
      assert.ok(Math.abs(dominantFrequency(samples) - 440) < 2);
    });
  });

  describe("Opus", () => {
    it("keeps a 1000 Hz tone through encode -> decode", () => {
      const input = tone(1000, 1);
      const packets = encodeAll(input);
      assert.equal(packets.length, 50);
      const decoder = new OpusDecoder();
      const decoded = concat(packets.map((p) => decoder.decode(p)));
      decoder.close();
      assert.equal(decoded.length, input.length);
      const steady = decoded.subarray(FRAME_SAMPLES); // skip the codec's first (warm-up) frame
      const hz = dominantFrequency(steady);
      assert.ok(Math.abs(hz - 1000) <= 10, `dominant ${hz} Hz`);
      const level = toneLevel(steady, 1000);
      const leak = toneLevel(steady, 440);
      assert.ok(level > 0.2, `level of 1000 Hz: ${level} (input 0.25)`);
      assert.ok(leak < 0.001, `level of 440 Hz: ${leak}`);
      const bytes = packets.reduce((n, p) => n + p.length, 0);
      assert.ok(bytes > 1000 && bytes < 20_000, `${bytes} bytes for 1 s`);
    });

    it("stays correct with many live codecs and frees them on close()", () => {
      const frames = tone(700, 0.1);
      const reference = encodeAll(frames);
      const encoders = Array.from({ length: 64 }, () => new OpusEncoder());
      const decoders = Array.from({ length: 64 }, () => new OpusDecoder());
      const referenceDecoder = new OpusDecoder();
      const expected = reference.map((p) => referenceDecoder.decode(p));
      referenceDecoder.close();
      for (let f = 0; f < reference.length; f++) {
        const frame = frames.subarray(f * FRAME_SAMPLES, (f + 1) * FRAME_SAMPLES);
        for (let i = 0; i < encoders.length; i++) {
          const packet = encoders[i]!.encode(frame);
          assert.deepEqual(packet, reference[f], `encoder ${i}, frame ${f}`);
          assert.deepEqual(decoders[i]!.decode(packet), expected[f], `decoder ${i}, frame ${f}`);
        }
      }
      for (const codec of [...encoders, ...decoders]) {
        codec.close();
        codec.close(); // idempotent
      }
      assert.throws(() => encoders[0]!.encode(frames.subarray(0, FRAME_SAMPLES)), /closed/);
      assert.throws(() => decoders[0]!.decode(reference[0]!), /closed/);
      assert.throws(() => new OpusEncoder().encode(new Int16Array(480)), RangeError);
    });
  });

  describe("AudioSource", () => {
    it("sends ~50 frames/s with consecutive sequence numbers and timestamps stepping by 960, across wrap-around", async () => {
      const frames: AudioFrame[] = [];
      const source = new AudioSource(tone(440, 0.3), (frame) => frames.push(frame), {
        initialSequenceNumber: 65_530,
        initialTimestamp: TWO_32 - 5 * FRAME_SAMPLES,
      });
      const started = performance.now();
      source.start();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      source.stop();
      const elapsed = performance.now() - started;
      const sent = source.framesSent;
      assert.equal(sent, frames.length);
      assert.ok(sent >= 45 && sent <= 55, `${sent} frames in ${elapsed.toFixed(0)} ms`);
      assert.equal(frames[0]!.sequenceNumber, 65_530);
      assert.equal(frames[0]!.timestamp, TWO_32 - 5 * FRAME_SAMPLES);
      assert.equal(frames[0]!.marker, true);
      for (let i = 1; i < frames.length; i++) {
        const [previous, frame] = [frames[i - 1]!, frames[i]!];
        assert.equal(frame.sequenceNumber, (previous.sequenceNumber + 1) % 65_536, `sequence at ${i}`);
        assert.equal(frame.timestamp, (previous.timestamp + FRAME_SAMPLES) % TWO_32, `timestamp at ${i}`);
        assert.equal(frame.marker, false);
      }
      // The payloads decode to the looped tone.
      const decoder = new OpusDecoder();
      const pcm = concat(frames.map((f) => decoder.decode(f.payload)));
      decoder.close();
      assert.ok(Math.abs(dominantFrequency(pcm.subarray(FRAME_SAMPLES)) - 440) <= 10);
      await new Promise((resolve) => setTimeout(resolve, 3 * FRAME_MS));
      assert.equal(source.framesSent, sent, "nothing is sent after stop()");
    });

    it("sends encoded silence while muted, and resumes after stop() with a marker and a timestamp jump", async () => {
      const frames: AudioFrame[] = [];
      const source = new AudioSource(tone(1000, 1, 1), (frame) => frames.push(frame));
      source.muted = true;
      source.start();
      await new Promise((resolve) => setTimeout(resolve, 200));
      source.stop();
      const mutedCount = frames.length;
      assert.ok(mutedCount >= 5, `${mutedCount} frames`);
      const decoder = new OpusDecoder();
      const silence = concat(frames.map((f) => decoder.decode(f.payload)));
      assert.ok(rms(silence) < 0.001, `rms ${rms(silence)}`);

      await new Promise((resolve) => setTimeout(resolve, 100));
      source.muted = false;
      source.start();
      await new Promise((resolve) => setTimeout(resolve, 100));
      source.stop();
      const [last, resumed] = [frames[mutedCount - 1]!, frames[mutedCount]!];
      assert.ok(resumed, "frames after restart");
      assert.equal(resumed.marker, true);
      assert.equal(resumed.sequenceNumber, (last.sequenceNumber + 1) % 65_536);
      const jump = (resumed.timestamp - last.timestamp + TWO_32) % TWO_32;
      assert.ok(
        jump >= 5 * FRAME_SAMPLES && jump % FRAME_SAMPLES === 0,
        `timestamp jump ${jump} across a ~100 ms stop`,
      );
      const talk = concat(frames.slice(mutedCount).map((f) => decoder.decode(f.payload)));
      decoder.close();
      assert.ok(rms(talk) > 0.3, `rms after unmute ${rms(talk)}`);
    });
  });

  describe("AudioRecorder", () => {
    it("places out-of-order packets by timestamp, fills a lost packet with 20 ms of silence, drops duplicates and late packets", () => {
      // Eight frames, each a different tone, so misplacement would show.
      const input = concat([200, 300, 400, 500, 600, 700, 800, 900].map((hz) => tone(hz, FRAME_MS / 1000)));
      const payloads = encodeAll(input);
      // Timestamps and sequence numbers wrap in the middle of the stream.
      const firstTimestamp = TWO_32 - 3 * FRAME_SAMPLES;
      const packet = (i: number) => ({
        payload: payloads[i]!,
        timestamp: (firstTimestamp + i * FRAME_SAMPLES) % TWO_32,
        sequenceNumber: (65_534 + i) % 65_536,
      });

      const recorder = new AudioRecorder();
      for (const i of [1, 0, 3, 2, 3, 5, 7, 6]) recorder.push(packet(i)); // 4 lost, 3 duplicated
      const samples = recorder.samples;
      recorder.push(packet(4)); // arrives after its slot was decoded: late

      // What an in-order decoder produces for the packets that arrived.
      const decoder = new OpusDecoder();
      const decoded = [0, 1, 2, 3, 5, 6, 7].map((i) => decoder.decode(payloads[i]!));
      decoder.close();
      const silence = new Int16Array(FRAME_SAMPLES);
      const expected = concat([...decoded.slice(0, 4), silence, ...decoded.slice(4)]);

      assert.equal(samples.length, 8 * FRAME_SAMPLES);
      assert.deepEqual(samples, expected);
      assert.ok(rms(samples.subarray(3 * FRAME_SAMPLES, 4 * FRAME_SAMPLES)) > 0.1, "frame 3 has audio");
      assert.equal(rms(samples.subarray(4 * FRAME_SAMPLES, 5 * FRAME_SAMPLES)), 0, "frame 4 is silence");
      assert.equal(recorder.packetsReceived, 7);
      assert.equal(recorder.packetsDiscarded, 2);
      assert.equal(recorder.packetsLost, 1);
      assert.deepEqual(recorder.samples, expected, "the late packet changed nothing");

      const file = path.join(dir, "recording.wav");
      recorder.save(file);
      recorder.close();
      recorder.push(packet(4)); // ignored after close
      assert.deepEqual(readWav(file), expected);
      assert.deepEqual(recorder.samples, expected);
    });

    it("records a continuous stream, decoding as the reorder window moves", () => {
      const recorder = new AudioRecorder();
      const payloads = encodeAll(tone(1000, 1));
      let timestamp = 123_456;
      let sequenceNumber = 42;
      for (const payload of payloads) {
        recorder.push({ payload, timestamp, sequenceNumber });
        timestamp += FRAME_SAMPLES;
        sequenceNumber++;
      }
      recorder.close();
      const samples = recorder.samples;
      assert.equal(samples.length, SAMPLE_RATE);
      assert.ok(Math.abs(dominantFrequency(samples.subarray(FRAME_SAMPLES)) - 1000) <= 10);
    });
  });

  describe("samples/", () => {
    for (const [name, hz] of [
      ["tone-1000.wav", 1000],
      ["tone-440.wav", 440],
    ] as const) {
      it(`${name} is a 3 s, -6 dBFS, ${hz} Hz tone`, () => {
        const samples = readWav(path.join(SAMPLES_DIR, name));
        assert.equal(samples.length, 3 * SAMPLE_RATE);
        const measured = dominantFrequency(samples);
        assert.ok(Math.abs(measured - hz) < 1, `${name}: dominant ${measured} Hz`);
        const level = toneLevel(samples, hz);
        assert.ok(Math.abs(level - 0.25) < 0.01, `${name}: level ${level}`);
      });
    }

    for (const name of ["hello-en.wav", "bonjour-fr.wav"]) {
      it(`${name} is speech at 48 kHz mono`, () => {
        const file = path.join(SAMPLES_DIR, name);
        assert.ok(fs.statSync(file).size < 400_000);
        const samples = readWav(file);
        const seconds = samples.length / SAMPLE_RATE;
        assert.ok(seconds > 1.5 && seconds < 4, `${name}: ${seconds} s`);
        assert.ok(rms(samples) > 0.02, `${name}: rms ${rms(samples)}`);
      });
    }
  });
});
