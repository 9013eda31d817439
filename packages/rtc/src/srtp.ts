import { type Cipher, createCipheriv, createHmac, timingSafeEqual } from "node:crypto";

/**
 * Minimal SRTP (RTP only; SRTCP stays with werift) for the relay's fast data plane and the
 * benchmark's load generator: the two DTLS-SRTP profiles werift negotiates, AEAD_AES_128_GCM
 * (RFC 7714, werift's preference) and AES_CM_128_HMAC_SHA1_80 (RFC 3711), keyed with the session
 * keys werift derived after its DTLS handshake. No RTP object model and no copies beyond the
 * cipher's output. The AES keystream of both profiles comes from one long-lived AES-ECB cipher per
 * direction, and GCM's tag from a GHASH in JavaScript (`AesGcm`), so no node:crypto cipher object
 * is made per packet: each wraps a native handle that the garbage collector has to finalise, which
 * made the young-generation pauses long enough to break the relay's p99 (docs/performance.md).
 * AES-CM's HMAC-SHA1 is still one node:crypto Hmac per packet.
 */

/** DTLS-SRTP protection profile ids (RFC 5764, RFC 7714). */
export const PROFILE_AES128_CM_SHA1_80 = 0x0001;
export const PROFILE_AEAD_AES_128_GCM = 0x0007;

/** Authentication tag length of each profile. */
const GCM_TAG_BYTES = 16;
const CM_TAG_BYTES = 10;

export function isSupportedProfile(profile: number): boolean {
  return profile === PROFILE_AEAD_AES_128_GCM || profile === PROFILE_AES128_CM_SHA1_80;
}

export interface SrtpKeys {
  profile: number;
  /** Session encryption key (16 bytes). */
  key: Buffer;
  /** Session salt (14 bytes; GCM uses the first 12). */
  salt: Buffer;
  /** Session authentication key (20 bytes; CM only). */
  authKey: Buffer;
}

/**
 * RFC 3711 3.3.1: the rollover counter (ROC) of one received SSRC, which counts how often its
 * 16-bit sequence number wrapped. It starts at 0 with the first packet; a packet far behind the
 * highest one seen belongs to the next or previous roll.
 */
export class RocTracker {
  #init = false;
  #highest = 0;
  #roc = 0;

  /** The rollover counter to try for this sequence number (call `accept` once it authenticated). */
  guess(seq: number): number {
    if (!this.#init) return 0;
    const s = this.#highest;
    if (s < 32768) return seq - s > 32768 && this.#roc > 0 ? this.#roc - 1 : this.#roc;
    return s - 32768 > seq ? this.#roc + 1 : this.#roc;
  }

  /** Records an authenticated packet's sequence number and the rollover counter it had. */
  accept(seq: number, roc: number): void {
    if (!this.#init) {
      this.#init = true;
      this.#highest = seq;
      this.#roc = roc;
      return;
    }
    if (roc === this.#roc && seq > this.#highest) this.#highest = seq;
    else if (roc === this.#roc + 1) {
      this.#roc = roc;
      this.#highest = seq;
    }
  }
}

/** The authentication tag length of a profile's packets. */
export function tagLength(profile: number): number {
  return profile === PROFILE_AEAD_AES_128_GCM ? GCM_TAG_BYTES : CM_TAG_BYTES;
}

/**
 * RFC 7714 8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR salt, 12 bytes, written into the start of
 * `scratch`; returns `scratch` when it is exactly 12 bytes (no view allocated per packet).
 */
export function gcmIv(scratch: Buffer, salt: Buffer, ssrc: number, roc: number, seq: number): Buffer {
  const iv = scratch.length === 12 ? scratch : scratch.subarray(0, 12);
  iv.writeUInt16BE(0, 0);
  iv.writeUInt32BE(ssrc >>> 0, 2);
  iv.writeUInt32BE(roc >>> 0, 6);
  iv.writeUInt16BE(seq, 10);
  for (let i = 0; i < 12; i++) iv[i]! ^= salt[i]!;
  return iv;
}

/** RFC 3711 4.1.1: counter = (salt << 16) XOR (SSRC << 64) XOR (index << 16), 16 bytes, into `scratch`. */
export function cmCounter(scratch: Buffer, salt: Buffer, ssrc: number, roc: number, seq: number): Buffer {
  scratch.fill(0, 0, 16);
  scratch.writeUInt32BE(ssrc >>> 0, 4);
  scratch.writeUInt32BE(roc >>> 0, 8);
  scratch.writeUInt16BE(seq, 12);
  for (let i = 0; i < 14; i++) scratch[i]! ^= salt[i]!;
  return scratch;
}

/** An AES-128-ECB cipher kept for a whole session: AES blocks on demand, no per-packet cipher. */
export function ecbCipher(key: Buffer): Cipher {
  const ecb = createCipheriv("aes-128-ecb", key, null);
  ecb.setAutoPadding(false);
  return ecb;
}

/**
 * XORs `data` with the AES-CM keystream of (ssrc, roc, seq) (RFC 3711 4.1.1) into a new buffer:
 * counter blocks are built in `blocks` and encrypted with the session's long-lived ECB cipher.
 */
function cmXor(ecb: Cipher, keys: SrtpKeys, iv: Buffer, ssrc: number, roc: number, seq: number, data: Buffer): Buffer {
  const count = (data.length + 15) >> 4;
  const blocks = Buffer.allocUnsafe(count << 4);
  const counter = cmCounter(iv, keys.salt, ssrc, roc, seq);
  const low = counter.readUInt16BE(14);
  for (let b = 0; b < count; b++) {
    counter.copy(blocks, b << 4, 0, 14);
    // The block index is added to the counter's low 16 bits (the salt's last two bytes are zero).
    blocks.writeUInt16BE((low + b) & 0xffff, (b << 4) + 14);
  }
  const keystream = ecb.update(blocks);
  const out = Buffer.allocUnsafe(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ keystream[i]!;
  return out;
}

/** GHASH reduction constants for the 4-bit table method (the high 16 bits of R times a nibble). */
const LAST4 = [
  0x0000, 0x1c20, 0x3840, 0x2460, 0x7080, 0x6ca0, 0x48c0, 0x54e0, 0xe100, 0xfd20, 0xd940, 0xc560, 0x9180, 0x8da0,
  0xa9c0, 0xb5e0,
];

/**
 * AES-128-GCM with a 96-bit IV and a 16-byte tag (NIST SP 800-38D), as SRTP uses it (RFC 7714),
 * without a cipher object per message: the counter-mode keystream, E(K, J0) included, comes from
 * one ECB call, and GHASH runs here with Shoup's 4-bit tables (16 multiples of H, 128 bits each
 * as four 32-bit words, most significant first). Checked against node:crypto in the tests.
 */
export class AesGcm {
  readonly #ecb: Cipher;
  readonly #table = new Uint32Array(64);
  /** GHASH state, as bytes (big-endian) and as the words the multiplication writes. */
  readonly #state = Buffer.alloc(16);
  #counters = Buffer.alloc(16 * 16);

  constructor(ecb: Cipher) {
    this.#ecb = ecb;
    const h = ecb.update(Buffer.alloc(16));
    const t = this.#table;
    let v0 = h.readUInt32BE(0);
    let v1 = h.readUInt32BE(4);
    let v2 = h.readUInt32BE(8);
    let v3 = h.readUInt32BE(12);
    t.set([v0, v1, v2, v3], 32);
    for (let i = 4; i > 0; i >>= 1) {
      const reduce = v3 & 1 ? 0xe1000000 : 0;
      v3 = ((v3 >>> 1) | (v2 << 31)) >>> 0;
      v2 = ((v2 >>> 1) | (v1 << 31)) >>> 0;
      v1 = ((v1 >>> 1) | (v0 << 31)) >>> 0;
      v0 = ((v0 >>> 1) ^ reduce) >>> 0;
      t.set([v0, v1, v2, v3], i * 4);
    }
    for (let i = 2; i <= 8; i *= 2) {
      for (let j = 1; j < i; j++) {
        for (let w = 0; w < 4; w++) t[(i + j) * 4 + w] = (t[i * 4 + w]! ^ t[j * 4 + w]!) >>> 0;
      }
    }
  }

  /** Encrypts `plaintext`: returns the ciphertext and the 16-byte tag over `aad` and it. */
  seal(iv: Buffer, aad: Buffer, plaintext: Buffer): [Buffer, Buffer] {
    const keystream = this.#keystream(iv, plaintext.length);
    const ciphertext = xorFrom(plaintext, keystream, 16);
    return [ciphertext, this.#tag(aad, ciphertext, keystream)];
  }

  /** Decrypts `ciphertext` if `tag` authenticates it and `aad`; null otherwise. */
  open(iv: Buffer, aad: Buffer, ciphertext: Buffer, tag: Buffer): Buffer | null {
    const keystream = this.#keystream(iv, ciphertext.length);
    if (!timingSafeEqual(this.#tag(aad, ciphertext, keystream), tag)) return null;
    return xorFrom(ciphertext, keystream, 16);
  }

  /** E(K, J0) then the keystream blocks E(K, J0 + 1), ... for `length` bytes, in one ECB call. */
  #keystream(iv: Buffer, length: number): Buffer {
    const blocks = ((length + 15) >> 4) + 1;
    if (this.#counters.length < blocks * 16) this.#counters = Buffer.alloc(blocks * 32);
    const counters = this.#counters;
    for (let b = 0; b < blocks; b++) {
      iv.copy(counters, b * 16, 0, 12);
      counters.writeUInt32BE(b + 1, b * 16 + 12);
    }
    return this.#ecb.update(counters.subarray(0, blocks * 16));
  }

  /** GHASH(aad, ciphertext) XOR E(K, J0) (the keystream's first block). */
  #tag(aad: Buffer, ciphertext: Buffer, keystream: Buffer): Buffer {
    const state = this.#state;
    state.fill(0);
    this.#absorb(aad);
    this.#absorb(ciphertext);
    // The lengths block: bit lengths of the AAD and the ciphertext, 64 bits each.
    state.writeUInt32BE((state.readUInt32BE(4) ^ (aad.length * 8)) >>> 0, 4);
    state.writeUInt32BE((state.readUInt32BE(12) ^ (ciphertext.length * 8)) >>> 0, 12);
    this.#multiply();
    const tag = Buffer.allocUnsafe(16);
    for (let i = 0; i < 16; i++) tag[i] = state[i]! ^ keystream[i]!;
    return tag;
  }

  /** XORs `data` into the state block by block (the last one zero-padded), multiplying by H after each. */
  #absorb(data: Buffer): void {
    const state = this.#state;
    for (let at = 0; at < data.length; at += 16) {
      const end = Math.min(16, data.length - at);
      for (let i = 0; i < end; i++) state[i]! ^= data[at + i]!;
      this.#multiply();
    }
  }

  /** state = state * H in GF(2^128), GCM's bit order. */
  #multiply(): void {
    const t = this.#table;
    const x = this.#state;
    let index = (x[15]! & 0xf) * 4;
    let z0 = t[index]!;
    let z1 = t[index + 1]!;
    let z2 = t[index + 2]!;
    let z3 = t[index + 3]!;
    for (let i = 15; i >= 0; i--) {
      const byte = x[i]!;
      let rem: number;
      if (i !== 15) {
        rem = z3 & 0xf;
        z3 = (z3 >>> 4) | (z2 << 28);
        z2 = (z2 >>> 4) | (z1 << 28);
        z1 = (z1 >>> 4) | (z0 << 28);
        z0 = (z0 >>> 4) ^ (LAST4[rem]! << 16);
        index = (byte & 0xf) * 4;
        z0 ^= t[index]!;
        z1 ^= t[index + 1]!;
        z2 ^= t[index + 2]!;
        z3 ^= t[index + 3]!;
      }
      rem = z3 & 0xf;
      z3 = (z3 >>> 4) | (z2 << 28);
      z2 = (z2 >>> 4) | (z1 << 28);
      z1 = (z1 >>> 4) | (z0 << 28);
      z0 = (z0 >>> 4) ^ (LAST4[rem]! << 16);
      index = (byte >>> 4) * 4;
      z0 ^= t[index]!;
      z1 ^= t[index + 1]!;
      z2 ^= t[index + 2]!;
      z3 ^= t[index + 3]!;
    }
    x.writeUInt32BE(z0 >>> 0, 0);
    x.writeUInt32BE(z1 >>> 0, 4);
    x.writeUInt32BE(z2 >>> 0, 8);
    x.writeUInt32BE(z3 >>> 0, 12);
  }
}

/** `data` XOR `keystream` from byte `offset` of the keystream, into a new buffer. */
function xorFrom(data: Buffer, keystream: Buffer, offset: number): Buffer {
  const out = Buffer.allocUnsafe(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ keystream[offset + i]!;
  return out;
}

function rocBytes(roc: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(roc >>> 0);
  return out;
}

/**
 * What sending and receiving under one set of session keys share: the keys, the long-lived AES-ECB
 * cipher every keystream comes from, AES-GCM's GHASH tables (GCM profile only) and the IV buffers
 * each packet reuses.
 */
abstract class SrtpSession {
  readonly keys: SrtpKeys;
  /** The session's long-lived AES-ECB cipher (keystream blocks on demand). */
  readonly ecb: Cipher;
  protected readonly gcm: AesGcm | null;
  /** Scratch for the AES-CM counter block and the AES-GCM IV. */
  protected readonly cmIvBuffer = Buffer.alloc(16);
  protected readonly gcmIvBuffer = Buffer.alloc(12);

  constructor(keys: SrtpKeys) {
    this.keys = keys;
    this.ecb = ecbCipher(keys.key);
    this.gcm = keys.profile === PROFILE_AEAD_AES_128_GCM ? new AesGcm(this.ecb) : null;
  }
}

/** Encrypts RTP sent under one set of session keys (any SSRC). */
export class SrtpSender extends SrtpSession {
  /**
   * Returns the buffers of the SRTP packet (header, encrypted payload, tag), ready for a gathering
   * socket.send. `header` is the complete RTP header (its SSRC and sequence number are read from
   * it), `roc` the rollover counter of the packet's sequence number.
   */
  protect(header: Buffer, payload: Buffer, roc: number): Buffer[] {
    const keys = this.keys;
    const ssrc = header.readUInt32BE(8);
    const seq = header.readUInt16BE(2);
    if (this.gcm) {
      const iv = gcmIv(this.gcmIvBuffer, keys.salt, ssrc, roc, seq);
      const [encrypted, tag] = this.gcm.seal(iv, header, payload);
      return [header, encrypted, tag];
    }
    const encrypted = cmXor(this.ecb, keys, this.cmIvBuffer, ssrc, roc, seq, payload);
    const hmac = createHmac("sha1", keys.authKey);
    hmac.update(header);
    hmac.update(encrypted);
    hmac.update(rocBytes(roc));
    return [header, encrypted, hmac.digest().subarray(0, CM_TAG_BYTES)];
  }
}

/** Authenticates and decrypts RTP received under one set of session keys. */
export class SrtpReceiver extends SrtpSession {
  readonly #tag: number;
  /** Packets that did not authenticate (forged, corrupted, or a wrong rollover counter). */
  authFailures = 0;

  constructor(keys: SrtpKeys) {
    super(keys);
    this.#tag = tagLength(keys.profile);
  }

  /**
   * The decrypted payload of `packet` (whose RTP header is `headerLength` bytes), tried with the
   * rollover counter `rocs` guesses and recorded there once it authenticates; null when it does not
   * authenticate or is too short. The payload still holds any RTP padding.
   */
  unprotect(packet: Buffer, headerLength: number, rocs: RocTracker): Buffer | null {
    const keys = this.keys;
    const tagAt = packet.length - this.#tag;
    if (tagAt < headerLength) {
      this.authFailures++;
      return null;
    }
    const seq = packet.readUInt16BE(2);
    const ssrc = packet.readUInt32BE(8);
    const roc = rocs.guess(seq);
    let payload: Buffer;
    if (this.gcm) {
      const opened = this.gcm.open(
        gcmIv(this.gcmIvBuffer, keys.salt, ssrc, roc, seq),
        packet.subarray(0, headerLength),
        packet.subarray(headerLength, tagAt),
        packet.subarray(tagAt),
      );
      if (!opened) {
        this.authFailures++;
        return null;
      }
      payload = opened;
    } else {
      const hmac = createHmac("sha1", keys.authKey);
      hmac.update(packet.subarray(0, tagAt));
      hmac.update(rocBytes(roc));
      const expected = hmac.digest().subarray(0, CM_TAG_BYTES);
      if (!timingSafeEqual(expected, packet.subarray(tagAt))) {
        this.authFailures++;
        return null;
      }
      payload = cmXor(this.ecb, keys, this.cmIvBuffer, ssrc, roc, seq, packet.subarray(headerLength, tagAt));
    }
    rocs.accept(seq, roc);
    this.lastRoc = roc;
    return payload;
  }

  /** The rollover counter of the last packet unprotect() accepted. */
  lastRoc = 0;
}
