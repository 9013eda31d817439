/*
 * What a leg measures of the audio its client sends, exactly as the JavaScript planes do:
 * RFC 3550 reception statistics of the client's latest SSRC (A.3 extended sequence numbers, A.8
 * interarrival jitter; packages/rtc/src/reception-stats.ts) and voice activity from RFC 6464
 * audio levels (packages/server/src/media/voice-activity.ts).
 */
#ifndef PARLEY_RECEPTION_H
#define PARLEY_RECEPTION_H

#include <stdint.h>

typedef struct {
  int64_t ssrc; /* -1 before the first packet */
  double base;
  double max;
  double received;
  double last_arrival;
  uint32_t last_timestamp;
  double jitter; /* RTP ticks */
} reception_t;

typedef struct {
  double activity;
  double loudness;
  int speaking;
} voice_t;

void reception_init(reception_t *r);

/* Counts a packet that arrived at `arrival` (ms); returns how many RTP ticks its timestamp is past
 * the previous packet's of the same SSRC (signed; 0 for a new SSRC). */
int32_t reception_count(reception_t *r, uint32_t ssrc, uint32_t roc, uint16_t seq, uint32_t timestamp, double arrival);

void voice_init(voice_t *v);

/* One packet's level (0 loudest .. 127 silence); returns 1 when the speaking state changed. */
int voice_hear(voice_t *v, int level, int32_t timestamp_advance);

#endif
