/*
 * A leg's packets: what its thread reads from its socket (RTP authenticated, decrypted, measured
 * and forwarded; anything else handed to JavaScript), and what goes out on its slots (numbered by
 * the slot's continuity, re-encrypted with the leg's outbound context). Nothing here allocates or
 * calls JavaScript per RTP packet.
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "plane.h"
#include "rtp.h"

double epoch_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Whether `a` is `b` (address and port; an IPv6 zone is not compared, as the socket guard does). */
static int same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family) return 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
  }
  return 0;
}

/* When the datagram arrived (the kernel's stamp, ms since the epoch), or `fallback`. */
static double arrival_of(struct msghdr *message, double *fallback) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(message); c; c = CMSG_NXTHDR(message, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
      struct timespec ts;
      memcpy(&ts, CMSG_DATA(c), sizeof(ts));
      return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
    }
  }
  if (*fallback < 0) *fallback = epoch_ms();
  return *fallback;
}

/* One RTP datagram from the client's address (the leg is locked): checked, decrypted, measured and
 * added to the thread's inbound batch. */
static void receive_rtp(media_thread_t *t, leg_t *leg, uint8_t *data, int length, double arrived) {
  double *stats = leg->stats;
  uint32_t ssrc = rtp_be32(data + 8);
  rx_stream_t *stream = NULL;
  for (int i = 0; i < leg->stream_count; i++) {
    if (leg->streams[i].ssrc == ssrc) {
      stream = &leg->streams[i];
      break;
    }
  }
  if (!stream) {
    stats[STAT_DROP_UNKNOWN_SSRC]++;
    return;
  }
  int header = rtp_header_length(data, length);
  if (header < 0 || length < header + leg->tag_length) {
    stats[STAT_DROP_MALFORMED]++;
    return;
  }
  uint16_t seq = rtp_be16(data + 2);
  uint64_t index = 0;
  /* The replay window is checked before decrypting and moved only once the packet authenticated. */
  int unprotected = srtp_unprotect_rtp(&leg->rx, &stream->replay, data, header, length, &index);
  if (unprotected < 0) {
    if (unprotected == SRTP_REPLAYED) stats[STAT_DROP_REPLAY]++;
    else if (unprotected == SRTP_TOO_OLD) stats[STAT_DROP_TOO_OLD]++;
    else stats[STAT_DROP_AUTH_FAILED]++;
    return;
  }
  int payload = unprotected - header;
  if (data[0] & 0x20) {
    /* RTP padding: its last byte says how many bytes to drop. */
    int padding = payload > 0 ? data[unprotected - 1] : 0;
    if (padding == 0 || padding > payload) {
      stats[STAT_DROP_MALFORMED]++;
      return;
    }
    payload -= padding;
  }
  inbound_t *p = &t->inbound[t->inbound_count++];
  p->payload = data + header;
  p->length = payload;
  p->ssrc = ssrc;
  p->roc = (uint32_t)(index >> 16);
  p->seq = seq;
  p->timestamp = rtp_be32(data + 4);
  p->marker = (data[1] & 0x80) != 0;
  p->arrived_at = arrived;
  stats[STAT_PACKETS_IN]++;
  stats[STAT_BYTES_IN] += payload;
  stats[STAT_LAST_PACKET_AT] = arrived;
  reception_t *r = &leg->reception;
  int32_t advance = reception_count(r, ssrc, p->roc, seq, p->timestamp, arrived);
  stats[STAT_SSRC] = (double)r->ssrc;
  stats[STAT_BASE] = r->base;
  stats[STAT_MAX] = r->max;
  stats[STAT_RECEIVED] = r->received;
  stats[STAT_JITTER] = r->jitter;
  int level = rtp_audio_level(data, header, leg->audio_level_id);
  if (level >= 0) {
    voice_hear(&leg->voice, level, advance);
    stats[STAT_SPEAKING] = leg->voice.speaking;
    stats[STAT_LOUDNESS] = leg->voice.loudness;
  }
  if (leg->forward_to_js) js_rtp(leg, p, level);
}

/* Sorts one batch read from the leg's socket (RTP from the client, datagrams for JavaScript, junk)
 * and copies the leg's outputs for forwarding, all under the leg's lock. */
static void receive_batch(media_thread_t *t, leg_t *leg, int first, int count) {
  t->inbound_count = 0;
  t->output_count = 0;
  double now = -1;
  pthread_mutex_lock(&leg->lock);
  if (leg->closed) {
    pthread_mutex_unlock(&leg->lock);
    return;
  }
  double *stats = leg->stats;
  for (int i = first; i < first + count; i++) {
    struct msghdr *message = &t->messages[i].msg_hdr;
    uint8_t *data = t->buffers[i];
    int length = (int)t->messages[i].msg_len;
    if (length <= 0 || (message->msg_flags & MSG_TRUNC)) {
      stats[STAT_DROP_MALFORMED]++;
      continue;
    }
    uint8_t b0 = data[0];
    int rtp_or_rtcp = b0 >= 128 && b0 <= 191;
    /* Too short for any RTP or RTCP header, from anywhere: junk the socket guard would drop too. */
    if (rtp_or_rtcp && length < 8) {
      stats[STAT_DROP_MALFORMED]++;
      continue;
    }
    /* RFC 5761: RTCP packet types 192-223 (what RTP payload types 64-95 with the marker would be). */
    if (rtp_or_rtcp && !(data[1] >= 192 && data[1] <= 223) && leg->remote_length &&
        same_address(&t->names[i], &leg->remote)) {
      if (length < 12) {
        stats[STAT_DROP_MALFORMED]++;
        continue;
      }
      receive_rtp(t, leg, data, length, arrival_of(message, &now));
      continue;
    }
    /* RFC 7983: STUN (0-3), DTLS (20-63), RTCP and RTP from elsewhere: werift's and the socket
     * guard's business. Anything else is junk (the guard would drop it too). */
    if (b0 < 4 || (b0 >= 20 && b0 <= 63) || rtp_or_rtcp) {
      js_datagram(leg, data, length, &t->names[i]);
    } else {
      stats[STAT_DROP_MALFORMED]++;
    }
  }
  if (t->inbound_count > 0) {
    int outputs = leg->output_count < MAX_OUTPUTS ? leg->output_count : MAX_OUTPUTS;
    memcpy(t->outputs, leg->outputs, sizeof(output_t) * (size_t)outputs);
    t->output_count = outputs;
  }
  pthread_mutex_unlock(&leg->lock);
}

/*
 * Numbers a packet for slot `slot_index` of `target` (locked), writes its 12-byte header (the
 * slot's SSRC and payload type, no extensions) and payload into `out` and protects it with the
 * target's outbound context (the rollover counter is the slot index's). Returns its length, 0 when
 * nothing is to be sent.
 */
static int build(leg_t *target, int slot_index, uint64_t source, const inbound_t *p, uint8_t *out) {
  slot_t *slot = &target->slots[slot_index];
  int64_t index;
  uint32_t timestamp;
  if (!continuity_next(&slot->continuity, source, p->arrived_at, p->ssrc, p->roc, p->seq, p->timestamp, &index,
                       &timestamp)) {
    return 0;
  }
  continuity_sent(&slot->continuity, p->arrived_at);
  /* RFC 7675: nothing is sent without consent. The numbering still moves on (the client sees loss). */
  if (!target->can_send || !target->remote_length || p->length + 12 > RECV_BYTES) return 0;
  out[0] = 0x80;
  out[1] = (uint8_t)((p->marker ? 0x80 : 0) | (slot->payload_type & 0x7f));
  rtp_put16(out + 2, (uint16_t)(index & 0xffff));
  rtp_put32(out + 4, timestamp);
  rtp_put32(out + 8, slot->ssrc);
  memcpy(out + 12, p->payload, (size_t)p->length);
  double *stats = target->stats;
  int length = srtp_protect_rtp(&target->tx, out, 12, 12 + p->length, (uint32_t)(index >> 16));
  if (length < 0) {
    stats[STAT_DROP_SEND_FAILED]++;
    return 0;
  }
  stats[STAT_PACKETS_OUT]++;
  stats[STAT_BYTES_OUT] += p->length;
  double *slot_stats = stats + STAT_SLOT_BASE + slot_index * STAT_SLOT_STRIDE;
  slot_stats[SLOT_PACKETS_SENT]++;
  slot_stats[SLOT_OCTETS_SENT] += p->length;
  slot_stats[SLOT_LAST_TIMESTAMP] = timestamp;
  slot_stats[SLOT_LAST_SENT_AT] = p->arrived_at;
  return length;
}

/* Queues the batch for every output of the source: one lock of each target per batch. */
static void forward_batch(media_thread_t *t, leg_t *source) {
  for (int o = 0; o < t->output_count; o++) {
    leg_t *target = t->outputs[o].target;
    int slot = t->outputs[o].slot;
    pthread_mutex_lock(&target->lock);
    /* The route may have changed since the outputs were copied: the slot says what it carries. */
    if (!target->closed && target->slots[slot].source == source) {
      for (int i = 0; i < t->inbound_count; i++) {
        if (t->queued == SEND_QUEUE) plane_queue_flush(t);
        int length = build(target, slot, source->id, &t->inbound[i], t->queue[t->queued].data);
        if (length <= 0) continue;
        t->queue[t->queued].fd = target->fd;
        memcpy(&t->queue[t->queued].to, &target->remote, target->remote_length);
        t->queue[t->queued].to_length = target->remote_length;
        t->queue[t->queued].length = length;
        t->queued++;
      }
    }
    pthread_mutex_unlock(&target->lock);
  }
}

void leg_drain(media_thread_t *t, leg_t *leg) {
  for (int call = 0; call < RECV_CALLS_PER_ROUND; call++) {
    for (int i = 0; i < RECV_BATCH; i++) {
      struct msghdr *message = &t->messages[i].msg_hdr;
      message->msg_namelen = sizeof(t->names[i]);
      message->msg_controllen = sizeof(t->controls[i]);
      message->msg_flags = 0;
    }
    int count = recvmmsg(leg->fd, t->messages, RECV_BATCH, MSG_DONTWAIT, NULL);
    if (count <= 0) return;
    receive_batch(t, leg, 0, count);
    if (t->inbound_count > 0 && t->output_count > 0) forward_batch(t, leg);
    plane_queue_flush(t);
    if (count < RECV_BATCH) return;
  }
}

void leg_receive(media_thread_t *t, leg_t *leg, int index) {
  receive_batch(t, leg, index, 1);
  /* Queued, not sent: the round sends every leg's output in one submission. */
  if (t->inbound_count > 0 && t->output_count > 0) forward_batch(t, leg);
}

void leg_send_from(leg_t *leg, int slot, uint64_t source, const inbound_t *packet) {
  plane_t *plane = leg->plane;
  pthread_mutex_lock(&leg->lock);
  if (!leg->closed) {
    int length = build(leg, slot, source, packet, plane->scratch);
    if (length > 0 && sendto(leg->fd, plane->scratch, (size_t)length, MSG_DONTWAIT, (struct sockaddr *)&leg->remote,
                             leg->remote_length) < 0) {
      leg->stats[STAT_DROP_SEND_FAILED]++;
    }
  }
  pthread_mutex_unlock(&leg->lock);
}

/* Removes every (target, slot) output from `source` (locked by the caller). */
static void remove_output(leg_t *source, leg_t *target, int slot) {
  int kept = 0;
  for (int i = 0; i < source->output_count; i++) {
    output_t o = source->outputs[i];
    if (o.target == target && (slot < 0 || o.slot == slot)) continue;
    source->outputs[kept++] = o;
  }
  source->output_count = kept;
}

const char *leg_route(leg_t *target, int slot_index, leg_t *source) {
  if (source && source->closed) source = NULL;
  if (target->closed) return NULL;
  if (source) {
    const char *error = NULL;
    pthread_mutex_lock(&source->lock);
    int present = 0;
    for (int i = 0; i < source->output_count; i++) {
      if (source->outputs[i].target == target && source->outputs[i].slot == slot_index) present = 1;
    }
    if (!present) {
      if (source->output_count == MAX_OUTPUTS) {
        error = "the source already has the most outputs a leg can have";
      } else {
        if (source->output_count == source->output_capacity) {
          int capacity = source->output_capacity ? source->output_capacity * 2 : 4;
          output_t *grown = realloc(source->outputs, sizeof(output_t) * (size_t)capacity);
          if (grown) {
            source->outputs = grown;
            source->output_capacity = capacity;
          } else {
            error = "out of memory";
          }
        }
        if (!error) source->outputs[source->output_count++] = (output_t){target, slot_index};
      }
    }
    pthread_mutex_unlock(&source->lock);
    if (error) return error;
  }
  pthread_mutex_lock(&target->lock);
  leg_t *old = target->slots[slot_index].source;
  target->slots[slot_index].source = source;
  pthread_mutex_unlock(&target->lock);
  if (old && old != source) {
    pthread_mutex_lock(&old->lock);
    remove_output(old, target, slot_index);
    pthread_mutex_unlock(&old->lock);
  }
  return NULL;
}

void leg_detach(leg_t *leg) {
  output_t *outputs = NULL;
  int output_count;
  leg_t *sources[MAX_SLOTS];
  pthread_mutex_lock(&leg->lock);
  leg->closed = 1;
  output_count = leg->output_count;
  outputs = leg->outputs;
  leg->outputs = NULL;
  leg->output_count = leg->output_capacity = 0;
  for (int s = 0; s < leg->slot_count; s++) {
    sources[s] = leg->slots[s].source;
    leg->slots[s].source = NULL;
  }
  pthread_mutex_unlock(&leg->lock);
  /* The slots this leg's audio went to fall silent. */
  for (int i = 0; i < output_count; i++) {
    leg_t *target = outputs[i].target;
    if (target == leg) continue;
    pthread_mutex_lock(&target->lock);
    if (target->slots[outputs[i].slot].source == leg) target->slots[outputs[i].slot].source = NULL;
    pthread_mutex_unlock(&target->lock);
  }
  free(outputs);
  /* The legs this leg heard stop sending to it. */
  for (int s = 0; s < leg->slot_count; s++) {
    leg_t *source = sources[s];
    if (!source || source == leg) continue;
    pthread_mutex_lock(&source->lock);
    remove_output(source, leg, -1);
    pthread_mutex_unlock(&source->lock);
  }
}
