/*
 * RTP header fields read and written in place (RFC 3550 5.1), as packages/rtc/src/rtp-header.ts
 * does for the JavaScript planes.
 */
#ifndef PARLEY_RTP_H
#define PARLEY_RTP_H

#include <stdint.h>

static inline uint16_t rtp_be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rtp_be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void rtp_put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void rtp_put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* Length of the header (fixed part, CSRCs, extension) of a packet of `length` bytes, or -1. */
static inline int rtp_header_length(const uint8_t *packet, int length) {
  if (length < 12) return -1;
  int header = 12 + 4 * (packet[0] & 0x0f);
  if (packet[0] & 0x10) {
    if (length < header + 4) return -1;
    header += 4 + 4 * rtp_be16(packet + header + 2);
  }
  return header <= length ? header : -1;
}

/* The RFC 6464 level (0..127) in header extension `id` (RFC 8285 one- or two-byte elements) of a
 * packet whose header is `header` bytes, or -1. */
static inline int rtp_audio_level(const uint8_t *packet, int header, int id) {
  if (id < 0 || !(packet[0] & 0x10)) return -1;
  int at = 12 + 4 * (packet[0] & 0x0f);
  uint16_t profile = rtp_be16(packet + at);
  int i = at + 4;
  if (profile == 0xbede) {
    while (i < header) {
      uint8_t byte = packet[i];
      if (byte == 0) {
        i++;
        continue;
      }
      int element = byte >> 4;
      if (element == 15) return -1;
      if (element == id) return i + 1 < header ? packet[i + 1] & 0x7f : -1;
      i += 2 + (byte & 0x0f);
    }
  } else if ((profile & 0xfff0) == 0x1000) {
    while (i + 1 < header) {
      int element = packet[i];
      if (element == 0) {
        i++;
        continue;
      }
      int length = packet[i + 1];
      if (element == id) return length >= 1 && i + 2 < header ? packet[i + 2] & 0x7f : -1;
      i += 2 + length;
    }
  }
  return -1;
}

#endif
