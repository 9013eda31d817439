#include "reception.h"

#include <math.h>

#define TICKS_PER_MS 48
#define FRAME_TICKS 960

/* The thresholds and decays of voice-activity.ts. */
#define VOICED_LEVEL 50
#define ACTIVITY_DECAY 0.94
#define SPEAKING_ON 0.5
#define SPEAKING_OFF 0.15
#define LOUDNESS_DECAY 0.9

void reception_init(reception_t *r) {
  r->ssrc = -1;
  r->base = r->max = r->received = 0;
  r->last_arrival = 0;
  r->last_timestamp = 0;
  r->jitter = 0;
}

int32_t reception_count(reception_t *r, uint32_t ssrc, uint32_t roc, uint16_t seq, uint32_t timestamp,
                        double arrival) {
  double extended = (double)roc * 65536 + seq;
  int32_t advance = 0;
  if ((int64_t)ssrc != r->ssrc) {
    /* A new source (the client restarted its stream): its statistics start over. */
    r->ssrc = ssrc;
    r->base = extended;
    r->max = extended;
    r->received = 1;
    r->jitter = 0;
  } else {
    r->received++;
    if (extended > r->max) r->max = extended;
    advance = (int32_t)(timestamp - r->last_timestamp);
    double d = (arrival - r->last_arrival) * TICKS_PER_MS - advance;
    r->jitter += (fabs(d) - r->jitter) / 16;
  }
  r->last_arrival = arrival;
  r->last_timestamp = timestamp;
  return advance;
}

void voice_init(voice_t *v) {
  v->activity = 0;
  v->loudness = 0;
  v->speaking = 0;
}

int voice_hear(voice_t *v, int level, int32_t timestamp_advance) {
  double frames = (double)timestamp_advance / FRAME_TICKS;
  /* With DTX the 20 ms frames a silent client skipped count as silence. */
  double skipped = floor(frames + 0.5) - 1;
  if (skipped > 1000) skipped = 1000;
  if (skipped > 0) {
    v->loudness *= pow(LOUDNESS_DECAY, skipped);
    v->activity *= pow(ACTIVITY_DECAY, skipped);
  }
  v->loudness = v->loudness * LOUDNESS_DECAY + (127 - level) * (1 - LOUDNESS_DECAY);
  v->activity = v->activity * ACTIVITY_DECAY + (level <= VOICED_LEVEL ? 1 - ACTIVITY_DECAY : 0);
  int speaking = v->speaking ? v->activity > SPEAKING_OFF : v->activity > SPEAKING_ON;
  if (speaking == v->speaking) return 0;
  v->speaking = speaking;
  return 1;
}
