/*
 * SRTP for RTP packets (RFC 3711, RFC 7714) on OpenSSL 3's libcrypto, for the two DTLS-SRTP
 * profiles werift negotiates: AEAD_AES_128_GCM and AES_CM_128_HMAC_SHA1_80. SRTCP stays with werift.
 *
 * Every cipher context and HMAC state is made once, when a leg's context for one direction is set
 * up, and reused for every packet: per packet only the IV is set again on the same EVP context, and
 * HMAC-SHA1 starts from copies of the SHA-1 states that already absorbed the key's ipad and opad
 * blocks. Creating contexts per packet is what makes SRTP slow on OpenSSL 3 (a provider lookup and
 * allocations each time), and what Debian's libsrtp2 (built on NSS) does. Nothing here allocates per
 * packet or takes a lock; a context belongs to its leg (whose lock its callers hold).
 *
 * The constructions mirror packages/rtc/src/srtp.ts (checked against the RFC vectors there) and the
 * replay window packages/rtc/src/replay-window.ts.
 */
#ifndef PARLEY_SRTP_H
#define PARLEY_SRTP_H

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stddef.h>
#include <stdint.h>

/* DTLS-SRTP protection profiles (RFC 5764, RFC 7714). */
#define SRTP_PROFILE_AES128_CM_HMAC_SHA1_80 0x0001
#define SRTP_PROFILE_AEAD_AES_128_GCM 0x0007

#define SRTP_KEY_BYTES 16
#define SRTP_CM_SALT_BYTES 14
#define SRTP_GCM_SALT_BYTES 12
#define SRTP_AUTH_KEY_BYTES 20
/* The longest tag a packet carries (GCM's; AES-CM's HMAC-SHA1-80 is 10 bytes). */
#define SRTP_MAX_TAG_BYTES 16
/* Packet indexes behind the highest one the replay window remembers (RFC 3711 3.3.2: at least 64). */
#define SRTP_REPLAY_WINDOW 128

/* What unprotecting a packet can say besides its length. */
enum { SRTP_REPLAYED = -1, SRTP_TOO_OLD = -2, SRTP_AUTH_FAILED = -3 };

/* The session keys of one direction (RFC 3711 4.3): AES key, salt (GCM uses the first 12 bytes)
 * and, for AES-CM, the HMAC-SHA1 key. */
typedef struct {
  uint8_t key[SRTP_KEY_BYTES];
  uint8_t salt[SRTP_CM_SALT_BYTES];
  uint8_t auth_key[SRTP_AUTH_KEY_BYTES];
} srtp_session_keys_t;

/* One direction of a leg: a keyed EVP context (AES-128-CTR, or AES-128-GCM set up to encrypt or
 * to decrypt) and, for AES-CM, HMAC-SHA1's inner and outer states after the key's pad blocks. */
typedef struct {
  int profile;
  int tag_bytes;
  int inbound;
  /* GCM: set each packet's IV (and expected tag) with one parameter call instead of an EVP init
   * (see gcm_start in srtp.c); decided once per process by a self-check. */
  int gcm_params;
  EVP_CIPHER_CTX *cipher;
  uint8_t salt[SRTP_CM_SALT_BYTES];
  SHA_CTX inner;
  SHA_CTX outer;
} srtp_context_t;

/* One received SSRC: its highest authenticated packet index (ROC * 2^16 + SEQ, RFC 3711 3.3.1),
 * which also gives the next packets' rollover counter, and which of the 128 indexes up to it were
 * received (a ring over the index's low bits). Zeroed: nothing received yet. */
typedef struct {
  int started;
  uint64_t highest;
  uint32_t seen[SRTP_REPLAY_WINDOW / 32];
} srtp_replay_t;

/* RFC 3711 4.3.1 (key derivation rate 0): the session keys from a master key and salt (AES-CM: 14
 * bytes; GCM: 12, zero-padded to 14 as libsrtp and werift do). NULL, or why not. */
const char *srtp_derive_keys(int profile, const uint8_t *master_key, const uint8_t *master_salt, size_t salt_bytes,
                             srtp_session_keys_t *out);

/* Sets up one direction (`inbound`: what the client sends). NULL, or why not (nothing to free then). */
const char *srtp_context_init(srtp_context_t *context, int profile, const srtp_session_keys_t *keys, int inbound);

/* Frees the context's EVP context and wipes its keys; idempotent (a zeroed context too). */
void srtp_context_free(srtp_context_t *context);

/* Encrypts in place the RTP packet of `length` bytes whose header is `header_bytes`, with rollover
 * counter `roc`, and appends its tag (the buffer has room for SRTP_MAX_TAG_BYTES more). Returns
 * the SRTP packet's length, or -1 when libcrypto fails. */
int srtp_protect_rtp(srtp_context_t *context, uint8_t *packet, int header_bytes, int length, uint32_t roc);

/*
 * Authenticates and decrypts in place the SRTP packet of `length` bytes (at least `header_bytes`
 * plus the tag) received on `replay`'s SSRC: the replay window is checked before any crypto and
 * moved only once the packet authenticated. Returns the RTP packet's length (the tag dropped; any
 * RTP padding still there) with its packet index in `*index`, or SRTP_REPLAYED, SRTP_TOO_OLD or
 * SRTP_AUTH_FAILED. The payload bytes are not meaningful after a failure.
 */
int srtp_unprotect_rtp(srtp_context_t *context, srtp_replay_t *replay, uint8_t *packet, int header_bytes, int length,
                       uint64_t *index);

#endif
