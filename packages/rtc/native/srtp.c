/*
 * SRTP on libcrypto (see srtp.h): key derivation, the two profiles' protect and unprotect, the
 * rollover counter estimate and the replay window.
 */
#include "srtp.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <stddef.h>
#include <string.h>

#include "rtp.h"

/* RFC 3711 4.3.1 labels. */
#define LABEL_ENCRYPTION 0x00
#define LABEL_AUTHENTICATION 0x01
#define LABEL_SALT 0x02

/* SHA1_Init/Update/Final are deprecated in OpenSSL 3 but kept on purpose: their state is a plain
 * struct copied by value per packet, where EVP_MD_CTX_copy_ex allocates (a provider context dup). */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define SHA1_BLOCK_BYTES 64
#define SHA1_DIGEST_BYTES 20
#define CM_TAG_BYTES 10
#define GCM_TAG_BYTES 16

/* ------------------------------------------------------------------ keys and contexts */

const char *srtp_derive_keys(int profile, const uint8_t *master_key, const uint8_t *master_salt, size_t salt_bytes,
                             srtp_session_keys_t *out) {
  /* The PRF is the AES-CM keystream of the master key from IV = ((label << 48) XOR salt) << 16. */
  static const struct {
    int label;
    size_t offset;
    size_t length;
  } outputs[] = {
      {LABEL_ENCRYPTION, offsetof(srtp_session_keys_t, key), SRTP_KEY_BYTES},
      {LABEL_AUTHENTICATION, offsetof(srtp_session_keys_t, auth_key), SRTP_AUTH_KEY_BYTES},
      {LABEL_SALT, offsetof(srtp_session_keys_t, salt), SRTP_CM_SALT_BYTES},
  };
  static const uint8_t zeros[SRTP_AUTH_KEY_BYTES];
  if (salt_bytes > SRTP_CM_SALT_BYTES) return "the SRTP master salt is too long";
  EVP_CIPHER_CTX *prf = EVP_CIPHER_CTX_new();
  if (!prf) return "libcrypto could not make a cipher context";
  const char *error = NULL;
  memset(out, 0, sizeof(*out));
  for (size_t i = 0; i < sizeof(outputs) / sizeof(outputs[0]) && !error; i++) {
    uint8_t iv[16] = {0};
    int written = 0;
    memcpy(iv, master_salt, salt_bytes);
    iv[7] ^= (uint8_t)outputs[i].label;
    if (!EVP_EncryptInit_ex(prf, EVP_aes_128_ctr(), NULL, master_key, iv) ||
        !EVP_EncryptUpdate(prf, (uint8_t *)out + outputs[i].offset, &written, zeros, (int)outputs[i].length)) {
      error = "libcrypto could not derive the SRTP session keys";
    }
  }
  /* GCM's session salt is the PRF's first 12 bytes (RFC 7714 11); the rest is never used. */
  if (profile == SRTP_PROFILE_AEAD_AES_128_GCM) memset(out->salt + SRTP_GCM_SALT_BYTES, 0, 2);
  EVP_CIPHER_CTX_free(prf);
  if (error) OPENSSL_cleanse(out, sizeof(*out));
  return error;
}

/* A SHA-1 state that has absorbed the HMAC key XORed with `pad` (RFC 2104). */
static void hmac_pad(SHA_CTX *state, const uint8_t *key, uint8_t pad) {
  uint8_t block[SHA1_BLOCK_BYTES];
  memset(block, pad, sizeof(block));
  for (int i = 0; i < SRTP_AUTH_KEY_BYTES; i++) block[i] ^= key[i];
  SHA1_Init(state);
  SHA1_Update(state, block, sizeof(block));
  OPENSSL_cleanse(block, sizeof(block));
}

static int gcm_params_work(void);

const char *srtp_context_init(srtp_context_t *context, int profile, const srtp_session_keys_t *keys, int inbound) {
  memset(context, 0, sizeof(*context));
  const EVP_CIPHER *cipher;
  if (profile == SRTP_PROFILE_AEAD_AES_128_GCM) cipher = EVP_aes_128_gcm();
  else if (profile == SRTP_PROFILE_AES128_CM_HMAC_SHA1_80) cipher = EVP_aes_128_ctr();
  else return "unsupported SRTP profile";
  context->cipher = EVP_CIPHER_CTX_new();
  if (!context->cipher) return "libcrypto could not make a cipher context";
  /* GCM decrypts with a decrypting context; AES-CM's counter mode is the same both ways. */
  int ok = profile == SRTP_PROFILE_AEAD_AES_128_GCM && inbound
               ? EVP_DecryptInit_ex(context->cipher, cipher, NULL, keys->key, NULL)
               : EVP_EncryptInit_ex(context->cipher, cipher, NULL, keys->key, NULL);
  if (!ok) {
    srtp_context_free(context);
    return "libcrypto refused the SRTP key";
  }
  context->profile = profile;
  context->inbound = inbound;
  if (profile == SRTP_PROFILE_AEAD_AES_128_GCM) {
    static int params_work = -1; /* contexts are made on the JS thread only */
    if (params_work < 0) params_work = gcm_params_work();
    context->gcm_params = params_work;
  }
  context->tag_bytes = profile == SRTP_PROFILE_AEAD_AES_128_GCM ? GCM_TAG_BYTES : CM_TAG_BYTES;
  memcpy(context->salt, keys->salt, sizeof(context->salt));
  if (profile == SRTP_PROFILE_AES128_CM_HMAC_SHA1_80) {
    hmac_pad(&context->inner, keys->auth_key, 0x36);
    hmac_pad(&context->outer, keys->auth_key, 0x5c);
  }
  return NULL;
}

void srtp_context_free(srtp_context_t *context) {
  if (context->cipher) EVP_CIPHER_CTX_free(context->cipher);
  OPENSSL_cleanse(context, sizeof(*context));
}

/* ------------------------------------------------------------------ AES_CM_128_HMAC_SHA1_80 */

/* XORs `length` bytes at `data` with the AES-CM keystream of the packet (RFC 3711 4.1.1): counter
 * = (salt << 16) XOR (SSRC << 64) XOR (index << 16). */
static int cm_xor(srtp_context_t *context, uint32_t ssrc, uint32_t roc, uint16_t seq, uint8_t *data, int length) {
  uint8_t iv[16] = {0};
  int written = 0;
  rtp_put32(iv + 4, ssrc);
  rtp_put32(iv + 8, roc);
  rtp_put16(iv + 12, seq);
  for (int i = 0; i < SRTP_CM_SALT_BYTES; i++) iv[i] ^= context->salt[i];
  if (!EVP_EncryptInit_ex(context->cipher, NULL, NULL, NULL, iv)) return 0;
  return length == 0 || EVP_EncryptUpdate(context->cipher, data, &written, data, length);
}

/* HMAC-SHA1 over the authenticated portion (header and encrypted payload) and the ROC (RFC 3711
 * 4.2), into `digest` (20 bytes). */
static void cm_mac(const srtp_context_t *context, const uint8_t *packet, int length, uint32_t roc, uint8_t *digest) {
  uint8_t roc_bytes[4];
  SHA_CTX state = context->inner;
  rtp_put32(roc_bytes, roc);
  SHA1_Update(&state, packet, (size_t)length);
  SHA1_Update(&state, roc_bytes, sizeof(roc_bytes));
  SHA1_Final(digest, &state);
  state = context->outer;
  SHA1_Update(&state, digest, SHA1_DIGEST_BYTES);
  SHA1_Final(digest, &state);
}

/* ------------------------------------------------------------------ AEAD_AES_128_GCM */

/* RFC 7714 8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR salt. */
static void gcm_iv(const srtp_context_t *context, uint32_t ssrc, uint32_t roc, uint16_t seq, uint8_t *iv) {
  iv[0] = iv[1] = 0;
  rtp_put32(iv + 2, ssrc);
  rtp_put32(iv + 6, roc);
  rtp_put16(iv + 10, seq);
  for (int i = 0; i < SRTP_GCM_SALT_BYTES; i++) iv[i] ^= context->salt[i];
}

/*
 * Starts one GCM packet: its IV and, decrypting, the tag to check at the end (NULL: encrypting).
 *
 * OpenSSL 3.0's EVP_EncryptInit_ex / EVP_DecryptInit_ex with an IV ask the provider for the IV
 * length through a parameter lookup on every call (string comparisons over its parameter list),
 * which cost a tenth of the media thread's time in the relay benchmark. The GCM provider also
 * takes a whole IV as its "tlsivfixed" parameter with length -1 (how libssl restores an IV; the IV
 * is then used by the next update, as after an init), and the expected tag as "tag": one
 * EVP_CIPHER_CTX_set_params call. `gcm_params_work` checks once per process that this gives what
 * the init does; where it does not (another OpenSSL), every packet takes the init.
 */
static int gcm_start(const srtp_context_t *context, const uint8_t *iv, const uint8_t *tag) {
  if (!context->gcm_params) return EVP_CipherInit_ex(context->cipher, NULL, NULL, NULL, iv, -1) == 1;
  OSSL_PARAM params[3];
  int n = 0;
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED, (void *)iv, (size_t)-1);
  if (tag) params[n++] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, (void *)tag, GCM_TAG_BYTES);
  params[n] = OSSL_PARAM_construct_end();
  return EVP_CIPHER_CTX_set_params(context->cipher, params) == 1;
}

/* Decrypting without gcm_start's parameter call: the tag to check, set once the data is in. */
static int gcm_expect(const srtp_context_t *context, const uint8_t *tag) {
  return context->gcm_params || EVP_CIPHER_CTX_ctrl(context->cipher, EVP_CTRL_AEAD_SET_TAG, GCM_TAG_BYTES, (void *)tag) == 1;
}

/* Encrypts `length` bytes after 16 bytes of associated data with `iv` on `cipher` (keyed for GCM
 * encryption): ciphertext and tag into `out` (length + 16 bytes). */
static int gcm_seal(EVP_CIPHER_CTX *cipher, int params, const uint8_t *iv, const uint8_t *in, int length,
                    uint8_t *out) {
  srtp_context_t context = {.cipher = cipher, .gcm_params = params};
  int written = 0;
  return gcm_start(&context, iv, NULL) && EVP_EncryptUpdate(cipher, NULL, &written, in, 16) &&
         EVP_EncryptUpdate(cipher, out, &written, in + 16, length) &&
         EVP_EncryptFinal_ex(cipher, out + length, &written) &&
         EVP_CIPHER_CTX_ctrl(cipher, EVP_CTRL_AEAD_GET_TAG, GCM_TAG_BYTES, out + length) == 1;
}

/* Decrypts what gcm_seal made (ciphertext and tag, `length` + 16 bytes after the same associated
 * data) on `cipher` (keyed for GCM decryption) into `out`: 1 if the tag checks. */
static int gcm_open(EVP_CIPHER_CTX *cipher, int params, const uint8_t *iv, const uint8_t *aad, const uint8_t *in,
                    int length, uint8_t *out) {
  srtp_context_t context = {.cipher = cipher, .gcm_params = params};
  int written = 0;
  return gcm_start(&context, iv, in + length) && EVP_DecryptUpdate(cipher, NULL, &written, aad, 16) &&
         EVP_DecryptUpdate(cipher, out, &written, in, length) && gcm_expect(&context, in + length) &&
         EVP_DecryptFinal_ex(cipher, out + length, &written) > 0;
}

/* Whether gcm_start's parameter call sets a packet up exactly as the init does, in this process's
 * libcrypto: two packets with different IVs sealed both ways match, each opens with the parameter
 * call, a packet with a changed tag does not, and the next packet opens after it. */
static int gcm_params_work(void) {
  static const uint8_t key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  uint8_t in[16 + 48], iv[2][SRTP_GCM_SALT_BYTES], slow[2][48 + GCM_TAG_BYTES], fast[2][48 + GCM_TAG_BYTES];
  uint8_t opened[48 + GCM_TAG_BYTES];
  for (size_t i = 0; i < sizeof(in); i++) in[i] = (uint8_t)(i * 7 + 3);
  for (int i = 0; i < SRTP_GCM_SALT_BYTES; i++) iv[0][i] = (uint8_t)(i + 100), iv[1][i] = (uint8_t)(200 - i);
  EVP_CIPHER_CTX *a = EVP_CIPHER_CTX_new(), *b = EVP_CIPHER_CTX_new(), *d = EVP_CIPHER_CTX_new();
  int ok = a && b && d && EVP_EncryptInit_ex(a, EVP_aes_128_gcm(), NULL, key, NULL) &&
           EVP_EncryptInit_ex(b, EVP_aes_128_gcm(), NULL, key, NULL) &&
           EVP_DecryptInit_ex(d, EVP_aes_128_gcm(), NULL, key, NULL);
  for (int p = 0; ok && p < 2; p++) {
    ok = gcm_seal(a, 0, iv[p], in, 48, slow[p]) && gcm_seal(b, 1, iv[p], in, 48, fast[p]) &&
         memcmp(slow[p], fast[p], sizeof(slow[p])) == 0 && gcm_open(d, 1, iv[p], in, fast[p], 48, opened) &&
         memcmp(opened, in + 16, 48) == 0;
  }
  ok = ok && memcmp(fast[0], fast[1], sizeof(fast[0])) != 0;
  if (ok) {
    fast[1][48] ^= 1;
    ok = !gcm_open(d, 1, iv[1], in, fast[1], 48, opened);
    /* A refused packet leaves the context fit for the next one. */
    ok = ok && gcm_open(d, 1, iv[0], in, fast[0], 48, opened) && memcmp(opened, in + 16, 48) == 0;
  }
  EVP_CIPHER_CTX_free(a);
  EVP_CIPHER_CTX_free(b);
  EVP_CIPHER_CTX_free(d);
  return ok;
}

/* ------------------------------------------------------------------ packets */

int srtp_protect_rtp(srtp_context_t *context, uint8_t *packet, int header_bytes, int length, uint32_t roc) {
  uint32_t ssrc = rtp_be32(packet + 8);
  uint16_t seq = rtp_be16(packet + 2);
  uint8_t *payload = packet + header_bytes;
  int payload_bytes = length - header_bytes;
  if (context->profile == SRTP_PROFILE_AEAD_AES_128_GCM) {
    uint8_t iv[SRTP_GCM_SALT_BYTES];
    int written = 0;
    gcm_iv(context, ssrc, roc, seq, iv);
    /* RFC 7714 7.1: the header is the associated data, the payload the plaintext. */
    if (!gcm_start(context, iv, NULL) ||
        !EVP_EncryptUpdate(context->cipher, NULL, &written, packet, header_bytes) ||
        (payload_bytes > 0 && !EVP_EncryptUpdate(context->cipher, payload, &written, payload, payload_bytes)) ||
        !EVP_EncryptFinal_ex(context->cipher, packet + length, &written) ||
        !EVP_CIPHER_CTX_ctrl(context->cipher, EVP_CTRL_AEAD_GET_TAG, GCM_TAG_BYTES, packet + length)) {
      return -1;
    }
    return length + GCM_TAG_BYTES;
  }
  uint8_t digest[SHA1_DIGEST_BYTES];
  if (!cm_xor(context, ssrc, roc, seq, payload, payload_bytes)) return -1;
  cm_mac(context, packet, length, roc, digest);
  memcpy(packet + length, digest, CM_TAG_BYTES);
  return length + CM_TAG_BYTES;
}

/* RFC 3711 3.3.1 (its Appendix A): the index of `seq`, whose rollover counter is the one of the
 * highest index so far, or the next or previous one when that puts `seq` nearer to it. */
static uint64_t estimate_index(const srtp_replay_t *replay, uint16_t seq) {
  if (!replay->started) return seq;
  uint32_t roc = (uint32_t)(replay->highest >> 16);
  uint16_t highest_seq = (uint16_t)replay->highest;
  if (highest_seq < 32768) {
    if ((int)seq - (int)highest_seq > 32768 && roc > 0) roc--;
  } else if ((int)highest_seq - 32768 > (int)seq) {
    roc++;
  }
  return ((uint64_t)roc << 16) | seq;
}

/* RFC 3711 3.3.2: 0 when `index` may be new, or why it cannot be. */
static int replay_check(const srtp_replay_t *replay, uint64_t index) {
  if (!replay->started || index > replay->highest) return 0;
  if (replay->highest - index >= SRTP_REPLAY_WINDOW) return SRTP_TOO_OLD;
  unsigned bit = (unsigned)(index & (SRTP_REPLAY_WINDOW - 1));
  return replay->seen[bit >> 5] & (1u << (bit & 31)) ? SRTP_REPLAYED : 0;
}

/* Records an authenticated packet's index (replay_check said it may be new). */
static void replay_accept(srtp_replay_t *replay, uint64_t index) {
  if (!replay->started) {
    replay->started = 1;
    replay->highest = index;
  } else if (index > replay->highest) {
    /* The bits of the indexes the window skips over are cleared for their next round. */
    if (index - replay->highest >= SRTP_REPLAY_WINDOW) {
      memset(replay->seen, 0, sizeof(replay->seen));
    } else {
      for (uint64_t i = replay->highest + 1; i < index; i++) {
        unsigned skipped = (unsigned)(i & (SRTP_REPLAY_WINDOW - 1));
        replay->seen[skipped >> 5] &= ~(1u << (skipped & 31));
      }
    }
    replay->highest = index;
  }
  unsigned bit = (unsigned)(index & (SRTP_REPLAY_WINDOW - 1));
  replay->seen[bit >> 5] |= 1u << (bit & 31);
}

int srtp_unprotect_rtp(srtp_context_t *context, srtp_replay_t *replay, uint8_t *packet, int header_bytes, int length,
                       uint64_t *index) {
  uint32_t ssrc = rtp_be32(packet + 8);
  uint16_t seq = rtp_be16(packet + 2);
  uint64_t estimated = estimate_index(replay, seq);
  int verdict = replay_check(replay, estimated);
  if (verdict) return verdict;
  uint32_t roc = (uint32_t)(estimated >> 16);
  int tag_at = length - context->tag_bytes;
  uint8_t *payload = packet + header_bytes;
  int payload_bytes = tag_at - header_bytes;
  if (context->profile == SRTP_PROFILE_AEAD_AES_128_GCM) {
    uint8_t iv[SRTP_GCM_SALT_BYTES];
    int written = 0;
    gcm_iv(context, ssrc, roc, seq, iv);
    if (!gcm_start(context, iv, packet + tag_at) ||
        !EVP_DecryptUpdate(context->cipher, NULL, &written, packet, header_bytes) ||
        (payload_bytes > 0 && !EVP_DecryptUpdate(context->cipher, payload, &written, payload, payload_bytes)) ||
        !gcm_expect(context, packet + tag_at) || EVP_DecryptFinal_ex(context->cipher, packet + tag_at, &written) <= 0) {
      return SRTP_AUTH_FAILED;
    }
  } else {
    uint8_t digest[SHA1_DIGEST_BYTES];
    cm_mac(context, packet, tag_at, roc, digest);
    if (CRYPTO_memcmp(digest, packet + tag_at, CM_TAG_BYTES) != 0) return SRTP_AUTH_FAILED;
    if (!cm_xor(context, ssrc, roc, seq, payload, payload_bytes)) return SRTP_AUTH_FAILED;
  }
  replay_accept(replay, estimated);
  *index = estimated;
  return tag_at;
}
