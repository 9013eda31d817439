/** Opus at 48 kHz: 960 timestamp ticks per 20 ms frame, 48 ticks per ms. */
export const OPUS_TICKS_PER_MS = 48;
export const OPUS_FRAME_TICKS = 960;
/** Sequence numbers per rollover-counter step (RFC 3711 packet index = ROC * 2^16 + SEQ). */
export const SEQ_MODULO = 0x10000;
