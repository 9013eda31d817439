import { type Cipher, createCipheriv, createDecipheriv, createHmac, timingSafeEqual } from "node:crypto";

/**
 * Minimal SRTP (RTP only; SRTCP stays with werift) for the relay's fast data plane and the
 * benchmark's load generator: the two DTLS-SRTP profiles werift negotiates, AEAD_AES_128_GCM
 * (RFC 7714, werift's preference) and AES_CM_128_HMAC_SHA1_80 (RFC 3711), keyed with the session
 * keys werift derived after its DTLS handshake. No RTP object model and no copies beyond the
 * cipher's output. AES-CM keystream comes from one long-lived AES-ECB cipher per direction (no
 * cipher object per packet); GCM still needs one node:crypto cipher per packet (its tag cannot be
 * computed otherwise without a JavaScript GHASH, which would cost more).
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

/**
 * Length of the RTP header (fixed part, CSRCs and header extension) at the start of `packet`, or
 * -1 when the packet is too short to hold it.
 */
export function rtpHeaderLength(packet: Buffer): number {
  if (packet.length < 12) return -1;
  let length = 12 + 4 * (packet[0]! & 0x0f);
  if (packet[0]! & 0x10) {
    if (packet.length < length + 4) return -1;
    length += 4 + 4 * packet.readUInt16BE(length + 2);
  }
  return length <= packet.length ? length : -1;
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

function rocBytes(roc: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(roc >>> 0);
  return out;
}

/** Encrypts RTP sent under one set of session keys (any SSRC). */
export class SrtpSender {
  readonly #keys: SrtpKeys;
  readonly #iv = Buffer.alloc(16);
  readonly #gcmIv = Buffer.alloc(12);
  readonly #ecb: Cipher | null;

  constructor(keys: SrtpKeys) {
    this.#keys = keys;
    this.#ecb = keys.profile === PROFILE_AES128_CM_SHA1_80 ? ecbCipher(keys.key) : null;
  }

  /**
   * Returns the buffers of the SRTP packet (header, encrypted payload, tag), ready for a gathering
   * socket.send. `header` is the complete RTP header (its SSRC and sequence number are read from
   * it), `roc` the rollover counter of the packet's sequence number.
   */
  protect(header: Buffer, payload: Buffer, roc: number): Buffer[] {
    const keys = this.#keys;
    const ssrc = header.readUInt32BE(8);
    const seq = header.readUInt16BE(2);
    if (this.#ecb === null) {
      const cipher = createCipheriv("aes-128-gcm", keys.key, gcmIv(this.#gcmIv, keys.salt, ssrc, roc, seq));
      cipher.setAAD(header);
      const encrypted = cipher.update(payload);
      cipher.final();
      return [header, encrypted, cipher.getAuthTag()];
    }
    const encrypted = cmXor(this.#ecb, keys, this.#iv, ssrc, roc, seq, payload);
    const hmac = createHmac("sha1", keys.authKey);
    hmac.update(header);
    hmac.update(encrypted);
    hmac.update(rocBytes(roc));
    return [header, encrypted, hmac.digest().subarray(0, CM_TAG_BYTES)];
  }
}

/** Authenticates and decrypts RTP received under one set of session keys. */
export class SrtpReceiver {
  readonly #keys: SrtpKeys;
  readonly #iv = Buffer.alloc(16);
  readonly #gcmIv = Buffer.alloc(12);
  readonly #ecb: Cipher;
  readonly #tag: number;
  /** Packets that did not authenticate (forged, corrupted, or a wrong rollover counter). */
  authFailures = 0;

  constructor(keys: SrtpKeys) {
    this.#keys = keys;
    this.#ecb = ecbCipher(keys.key);
    this.#tag = tagLength(keys.profile);
  }

  get keys(): SrtpKeys {
    return this.#keys;
  }

  /** The session's long-lived AES-ECB cipher (keystream blocks on demand). */
  get ecb(): Cipher {
    return this.#ecb;
  }

  /**
   * The decrypted payload of `packet` (whose RTP header is `headerLength` bytes), tried with the
   * rollover counter `rocs` guesses and recorded there once it authenticates; null when it does not
   * authenticate or is too short. The payload still holds any RTP padding.
   */
  unprotect(packet: Buffer, headerLength: number, rocs: RocTracker): Buffer | null {
    const keys = this.#keys;
    const tagAt = packet.length - this.#tag;
    if (tagAt < headerLength) {
      this.authFailures++;
      return null;
    }
    const seq = packet.readUInt16BE(2);
    const ssrc = packet.readUInt32BE(8);
    const roc = rocs.guess(seq);
    let payload: Buffer;
    if (keys.profile === PROFILE_AEAD_AES_128_GCM) {
      try {
        const decipher = createDecipheriv("aes-128-gcm", keys.key, gcmIv(this.#gcmIv, keys.salt, ssrc, roc, seq));
        decipher.setAAD(packet.subarray(0, headerLength));
        decipher.setAuthTag(packet.subarray(tagAt));
        payload = decipher.update(packet.subarray(headerLength, tagAt));
        decipher.final();
      } catch {
        this.authFailures++;
        return null;
      }
    } else {
      const hmac = createHmac("sha1", keys.authKey);
      hmac.update(packet.subarray(0, tagAt));
      hmac.update(rocBytes(roc));
      const expected = hmac.digest().subarray(0, CM_TAG_BYTES);
      if (!timingSafeEqual(expected, packet.subarray(tagAt))) {
        this.authFailures++;
        return null;
      }
      payload = cmXor(this.#ecb, keys, this.#iv, ssrc, roc, seq, packet.subarray(headerLength, tagAt));
    }
    rocs.accept(seq, roc);
    this.lastRoc = roc;
    return payload;
  }

  /** The rollover counter of the last packet unprotect() accepted. */
  lastRoc = 0;
}
