/*
 * A leg's SRTP contexts from the keys JavaScript hands over: the DTLS-SRTP master keys (RFC 5764)
 * werift keeps after its handshake, checked for the profile and derived into session keys here; or,
 * for published test vectors, session keys given as they are. One context per leg and direction,
 * made once (srtp.h).
 */
#include <openssl/crypto.h>
#include <string.h>

#include "plane.h"

int srtp_keys_tag_length(int profile) { return profile == SRTP_PROFILE_AEAD_AES_128_GCM ? 16 : 10; }

const char *srtp_keys_create(srtp_context_t *context, int profile, const uint8_t *key, size_t key_length,
                             const uint8_t *salt, size_t salt_length, const uint8_t *auth_key, size_t auth_key_length,
                             int inbound) {
  size_t salt_bytes;
  if (key_length != SRTP_KEY_BYTES) return "the SRTP key must be 16 bytes";
  if (profile == SRTP_PROFILE_AEAD_AES_128_GCM) {
    /* werift pads the 12-byte GCM salt to 14 bytes with zeros: either is accepted. */
    if (salt_length != SRTP_GCM_SALT_BYTES && salt_length != SRTP_CM_SALT_BYTES) {
      return "the GCM salt must be 12 bytes";
    }
    salt_bytes = SRTP_GCM_SALT_BYTES;
  } else if (profile == SRTP_PROFILE_AES128_CM_HMAC_SHA1_80) {
    if (salt_length != SRTP_CM_SALT_BYTES) return "the AES-CM salt must be 14 bytes";
    salt_bytes = SRTP_CM_SALT_BYTES;
  } else {
    return "unsupported SRTP profile";
  }
  srtp_session_keys_t keys;
  const char *error = NULL;
  if (!auth_key) {
    error = srtp_derive_keys(profile, key, salt, salt_bytes, &keys);
  } else if (profile == SRTP_PROFILE_AES128_CM_HMAC_SHA1_80 && auth_key_length != SRTP_AUTH_KEY_BYTES) {
    error = "the AES-CM session authentication key must be 20 bytes";
  } else {
    memset(&keys, 0, sizeof(keys));
    memcpy(keys.key, key, SRTP_KEY_BYTES);
    memcpy(keys.salt, salt, salt_bytes);
    if (profile == SRTP_PROFILE_AES128_CM_HMAC_SHA1_80) memcpy(keys.auth_key, auth_key, SRTP_AUTH_KEY_BYTES);
  }
  if (!error) error = srtp_context_init(context, profile, &keys, inbound);
  OPENSSL_cleanse(&keys, sizeof(keys));
  return error;
}
