/*
 * libsrtp sessions from DTLS-SRTP master keys (RFC 5764): one per leg and direction, created once
 * and used for every packet. The relay's inbound session accepts any SSRC (the leg checks the
 * client's declared SSRCs before it), with libsrtp's replay window of 128 packets; the outbound one
 * numbers every slot's SSRC (libsrtp follows each stream's rollover counter from the sequence
 * numbers it protects, starting at 0, as the client's context does).
 */
#include <string.h>

#include "plane.h"

/* DTLS-SRTP protection profiles (RFC 5764, RFC 7714). */
#define PROFILE_AES128_CM_HMAC_SHA1_80 0x0001
#define PROFILE_AEAD_AES_128_GCM 0x0007

#define MASTER_KEY_BYTES 16
#define CM_SALT_BYTES 14
#define GCM_SALT_BYTES 12
#define REPLAY_WINDOW 128

int srtp_keys_tag_length(int profile) { return profile == PROFILE_AEAD_AES_128_GCM ? 16 : 10; }

const char *srtp_keys_create(srtp_t *session, int profile, const uint8_t *key, size_t key_length,
                             const uint8_t *salt, size_t salt_length, int outbound) {
  srtp_policy_t policy;
  uint8_t material[MASTER_KEY_BYTES + CM_SALT_BYTES];
  size_t salt_bytes;
  memset(&policy, 0, sizeof(policy));
  if (key_length != MASTER_KEY_BYTES) return "the SRTP master key must be 16 bytes";
  if (profile == PROFILE_AEAD_AES_128_GCM) {
    /* werift pads the 12-byte GCM master salt to 14 bytes with zeros: either is accepted. */
    if (salt_length != GCM_SALT_BYTES && salt_length != CM_SALT_BYTES) return "the GCM master salt must be 12 bytes";
    salt_bytes = GCM_SALT_BYTES;
    srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtp);
    srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtcp);
  } else if (profile == PROFILE_AES128_CM_HMAC_SHA1_80) {
    if (salt_length != CM_SALT_BYTES) return "the AES-CM master salt must be 14 bytes";
    salt_bytes = CM_SALT_BYTES;
    srtp_crypto_policy_set_rtp_default(&policy.rtp);
    srtp_crypto_policy_set_rtcp_default(&policy.rtcp);
  } else {
    return "unsupported SRTP profile";
  }
  memcpy(material, key, MASTER_KEY_BYTES);
  memcpy(material + MASTER_KEY_BYTES, salt, salt_bytes);
  policy.ssrc.type = outbound ? ssrc_any_outbound : ssrc_any_inbound;
  policy.key = material;
  policy.window_size = REPLAY_WINDOW;
  policy.allow_repeat_tx = 0;
  policy.next = NULL;
  srtp_err_status_t status = srtp_create(session, &policy);
  memset(material, 0, sizeof(material));
  return status == srtp_err_status_ok ? NULL : "libsrtp refused the SRTP policy";
}
