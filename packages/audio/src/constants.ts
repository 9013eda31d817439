/** Internal sample rate of every Parley audio path (Opus always runs at 48 kHz). */
export const SAMPLE_RATE = 48000;
/** Samples in one 20 ms Opus frame at 48 kHz, mono. */
export const FRAME_SAMPLES = 960;
/** Duration of one Opus frame in milliseconds. */
export const FRAME_MS = 20;
