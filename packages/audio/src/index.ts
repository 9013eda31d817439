export { dominantFrequency, rms, tone, toneLevel } from "./analysis.js";
export { FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE } from "./constants.js";
export { MixingRecorder } from "./mixing-recorder.js";
export { OpusDecoder, OpusEncoder } from "./opus.js";
export { AudioRecorder, type RtpAudioPacket } from "./recorder.js";
export { type AudioFrame, AudioSource, type AudioSourceOptions, audioLevel } from "./source.js";
export { readWav, writeWav } from "./wav.js";
