/*
 * The numbering of one of a leg's outgoing streams (a slot), as packages/server/src/media/
 * slot-continuity.ts numbers it on the JavaScript planes: a packet's outgoing SRTP index (ROC * 2^16
 * + SEQ) is its source index plus an offset, its timestamp moved by another; both offsets change
 * only when the slot's source (or the source's SSRC) changes, so the client hears one continuous
 * stream across speaker switches. The slot's first packet keeps its source's sequence number with
 * the rollover counter restarted at 0, where the client's SRTP context (and libsrtp's outbound one
 * here) starts counting.
 */
#ifndef PARLEY_CONTINUITY_H
#define PARLEY_CONTINUITY_H

#include <stdint.h>

typedef struct {
  int has_source;
  uint64_t last_source;
  uint32_t last_ssrc;
  double last_out_at;
  int64_t index_offset;
  uint32_t timestamp_offset;
  int64_t last_out_index; /* -1 before the first packet */
  uint32_t last_out_timestamp;
} continuity_t;

void continuity_init(continuity_t *c);

/*
 * Numbers a packet of `source` (any stable 64-bit name) that arrived at `arrived_at` (ms) into
 * `*index` and `*timestamp`. 0: a packet from before the slot's first one (reordered across a
 * source switch), too late to send.
 */
int continuity_next(continuity_t *c, uint64_t source, double arrived_at, uint32_t ssrc, uint32_t roc, uint16_t seq,
                    uint32_t timestamp, int64_t *index, uint32_t *out_timestamp);

/* The packet continuity_next numbered went out; it had arrived at `arrived_at` (ms). */
void continuity_sent(continuity_t *c, double arrived_at);

#endif
