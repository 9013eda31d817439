#include "continuity.h"

#include <math.h>

/* Opus at 48 kHz (packages/server/src/media/rtp-clock.ts). */
#define TICKS_PER_MS 48
#define FRAME_TICKS 960

void continuity_init(continuity_t *c) {
  c->has_source = 0;
  c->last_source = 0;
  c->last_ssrc = 0;
  c->last_out_at = 0;
  c->index_offset = 0;
  c->timestamp_offset = 0;
  c->last_out_index = -1;
  c->last_out_timestamp = 0;
}

/* A new source (or SSRC): offsets so the stream goes on from its highest packet, the timestamp
 * advanced by the real gap (at least one frame), as SlotContinuity#continueFrom does. */
static void continue_from(continuity_t *c, uint64_t source, double arrived_at, uint32_t ssrc, uint32_t roc,
                          uint16_t seq, uint32_t timestamp) {
  int64_t source_index = (int64_t)roc * 65536 + seq;
  if (c->last_out_index < 0) {
    c->index_offset = -(int64_t)roc * 65536;
    c->timestamp_offset = 0;
  } else {
    /* Math.round: halves round up. */
    double ticks = floor((arrived_at - c->last_out_at) * TICKS_PER_MS + 0.5);
    if (!(ticks >= FRAME_TICKS)) ticks = FRAME_TICKS;
    uint32_t advance = (uint32_t)(uint64_t)fmod(ticks, 4294967296.0);
    c->index_offset = c->last_out_index + 1 - source_index;
    c->timestamp_offset = c->last_out_timestamp + advance - timestamp;
  }
  c->has_source = 1;
  c->last_source = source;
  c->last_ssrc = ssrc;
}

int continuity_next(continuity_t *c, uint64_t source, double arrived_at, uint32_t ssrc, uint32_t roc, uint16_t seq,
                    uint32_t timestamp, int64_t *index, uint32_t *out_timestamp) {
  if (!c->has_source || c->last_source != source || c->last_ssrc != ssrc) {
    continue_from(c, source, arrived_at, ssrc, roc, seq, timestamp);
  }
  int64_t next = (int64_t)roc * 65536 + seq + c->index_offset;
  if (next < 0) return 0;
  uint32_t moved = timestamp + c->timestamp_offset;
  if (next > c->last_out_index) {
    c->last_out_index = next;
    c->last_out_timestamp = moved;
  }
  *index = next;
  *out_timestamp = moved;
  return 1;
}

void continuity_sent(continuity_t *c, double arrived_at) { c->last_out_at = arrived_at; }
