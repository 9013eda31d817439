import { type Cipher, createCipheriv, createDecipheriv, createHmac, timingSafeEqual } from "node:crypto";

/**
 * Minimal SRTP for the load generator's fast path: the two DTLS-SRTP profiles werift offers
 * (AEAD_AES_128_GCM, RFC 7714, which werift prefers; AES_CM_128_HMAC_SHA1_80, RFC 3711), keyed with
 * the session keys werift derived after its DTLS handshake. Only RTP (no SRTCP: RTCP still goes
 * through werift). One node:crypto cipher per packet, no RTP object model, no copies beyond the
 * cipher's output.
 */

/** DTLS-SRTP protection profile ids (RFC 5764, RFC 7714). */
export const PROFILE_AES128_CM_SHA1_80 = 0x0001;
export const PROFILE_AEAD_AES_128_GCM = 0x0007;

export interface SrtpKeys {
  profile: number;
  /** Session encryption key (16 bytes). */
  key: Buffer;
  /** Session salt (14 bytes for CM, the first 12 used for GCM). */
  salt: Buffer;
  /** Session authentication key (20 bytes; CM only). */
  authKey: Buffer;
}

/** RFC 3711 3.3.1: tracks the rollover counter of one received SSRC. */
export class RocTracker {
  #init = false;
  #highest = 0;
  #roc = 0;

  /** The rollover counter to try for this sequence number (call `accept` once it authenticated). */
  guess(seq: number): number {
    if (!this.#init) return 0;
    const s = this.#highest;
    if (s < 32768) return seq - s > 32768 ? this.#roc - 1 : this.#roc;
    return s - 32768 > seq ? this.#roc + 1 : this.#roc;
  }

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

/** Length of the RTP header (fixed part, CSRCs and header extension) at the start of `packet`. */
export function rtpHeaderLength(packet: Buffer): number {
  const csrcCount = packet[0]! & 0x0f;
  let length = 12 + 4 * csrcCount;
  if (packet[0]! & 0x10) {
    const words = packet.readUInt16BE(length + 2);
    length += 4 + 4 * words;
  }
  return length;
}

/** Encrypts RTP for one sender (one SSRC). */
export class SrtpSender {
  readonly #keys: SrtpKeys;
  readonly #iv = Buffer.alloc(16);

  constructor(keys: SrtpKeys) {
    this.#keys = keys;
  }

  /** Returns the buffers of the SRTP packet (header, encrypted payload, tag), ready for socket.send. */
  protect(header: Buffer, payload: Buffer, roc: number): Buffer[] {
    const keys = this.#keys;
    const ssrc = header.readUInt32BE(8);
    const seq = header.readUInt16BE(2);
    if (keys.profile === PROFILE_AEAD_AES_128_GCM) {
      const iv = gcmIv(this.#iv, keys.salt, ssrc, roc, seq);
      const cipher = createCipheriv("aes-128-gcm", keys.key, iv);
      cipher.setAAD(header);
      const encrypted = cipher.update(payload);
      cipher.final();
      return [header, encrypted, cipher.getAuthTag()];
    }
    const cipher = createCipheriv("aes-128-ctr", keys.key, cmCounter(this.#iv, keys.salt, ssrc, roc, seq));
    const encrypted = cipher.update(payload);
    const hmac = createHmac("sha1", keys.authKey);
    hmac.update(header);
    hmac.update(encrypted);
    hmac.update(rocBytes(roc));
    return [header, encrypted, hmac.digest().subarray(0, 10)];
  }
}

/** Decrypts RTP from one remote sender; returns the payload or null when it does not authenticate. */
export class SrtpReceiver {
  readonly #keys: SrtpKeys;
  readonly #iv = Buffer.alloc(16);
  readonly #roc = new RocTracker();
  /** AES-128-ECB with the session key, kept for the whole session: keystream blocks on demand. */
  readonly #ecb: Cipher;
  readonly #blocks = Buffer.alloc(32);
  authFailures = 0;
  /** The rollover counter of the last packet unprotect() accepted. */
  lastRoc = 0;

  constructor(keys: SrtpKeys) {
    this.#keys = keys;
    this.#ecb = createCipheriv("aes-128-ecb", keys.key, null);
    this.#ecb.setAutoPadding(false);
  }

  /**
   * Reads the last `length` (<= 16) plaintext bytes of a packet's payload without decrypting the
   * rest or checking its tag: both profiles are AES counter mode, so those bytes are the ciphertext
   * XOR one or two keystream blocks, made here with one long-lived ECB cipher (no per-packet
   * cipher object). Returns null for a packet too short to hold them.
   */
  tail(packet: Buffer, length: number): Buffer | null {
    const keys = this.#keys;
    const gcm = keys.profile === PROFILE_AEAD_AES_128_GCM;
    const headerLength = rtpHeaderLength(packet);
    const payloadEnd = packet.length - (gcm ? 16 : 10);
    const payloadLength = payloadEnd - headerLength;
    if (payloadLength < length) return null;
    const seq = packet.readUInt16BE(2);
    const roc = this.#roc.guess(seq);
    this.#roc.accept(seq, roc);
    const offset = payloadLength - length;
    const first = offset >> 4;
    const last = (offset + length - 1) >> 4;
    const blocks = this.#blocks.subarray(0, 16 * (last - first + 1));
    const ssrc = packet.readUInt32BE(8);
    for (let b = first; b <= last; b++) {
      const block = blocks.subarray(16 * (b - first), 16 * (b - first + 1));
      if (gcm) {
        // RFC 7714 / GCM: payload block i is encrypted with counter (IV || i + 2).
        gcmIv(this.#iv, keys.salt, ssrc, roc, seq).copy(block, 0, 0, 12);
        block.writeUInt32BE(b + 2, 12);
      } else {
        // RFC 3711: block i uses the counter with i added to its (zero) low 16 bits.
        cmCounter(this.#iv, keys.salt, ssrc, roc, seq).copy(block);
        block.writeUInt16BE(b, 14);
      }
    }
    const keystream = this.#ecb.update(blocks);
    const out = Buffer.allocUnsafe(length);
    const at = headerLength + offset;
    for (let i = 0; i < length; i++) out[i] = packet[at + i]! ^ keystream[(offset & 15) + i]!;
    return out;
  }

  unprotect(packet: Buffer): Buffer | null {
    const keys = this.#keys;
    const headerLength = rtpHeaderLength(packet);
    const seq = packet.readUInt16BE(2);
    const ssrc = packet.readUInt32BE(8);
    const roc = this.#roc.guess(seq);
    try {
      let payload: Buffer;
      if (keys.profile === PROFILE_AEAD_AES_128_GCM) {
        const tagAt = packet.length - 16;
        const decipher = createDecipheriv("aes-128-gcm", keys.key, gcmIv(this.#iv, keys.salt, ssrc, roc, seq));
        decipher.setAAD(packet.subarray(0, headerLength));
        decipher.setAuthTag(packet.subarray(tagAt));
        payload = decipher.update(packet.subarray(headerLength, tagAt));
        decipher.final();
      } else {
        const tagAt = packet.length - 10;
        const hmac = createHmac("sha1", keys.authKey);
        hmac.update(packet.subarray(0, tagAt));
        hmac.update(rocBytes(roc));
        const expected = hmac.digest().subarray(0, 10);
        if (!timingSafeEqual(expected, packet.subarray(tagAt))) throw new Error("auth");
        const decipher = createDecipheriv("aes-128-ctr", keys.key, cmCounter(this.#iv, keys.salt, ssrc, roc, seq));
        payload = decipher.update(packet.subarray(headerLength, tagAt));
      }
      this.#roc.accept(seq, roc);
      this.lastRoc = roc;
      return payload;
    } catch {
      this.authFailures++;
      return null;
    }
  }
}

/** RFC 7714 8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR salt, 12 bytes. */
function gcmIv(scratch: Buffer, salt: Buffer, ssrc: number, roc: number, seq: number): Buffer {
  const iv = scratch.subarray(0, 12);
  iv.writeUInt16BE(0, 0);
  iv.writeUInt32BE(ssrc >>> 0, 2);
  iv.writeUInt32BE(roc >>> 0, 6);
  iv.writeUInt16BE(seq, 10);
  for (let i = 0; i < 12; i++) iv[i]! ^= salt[i]!;
  return iv;
}

/** RFC 3711 4.1.1: counter = (salt << 16) XOR (SSRC << 64) XOR (index << 16), 16 bytes. */
function cmCounter(scratch: Buffer, salt: Buffer, ssrc: number, roc: number, seq: number): Buffer {
  scratch.fill(0);
  scratch.writeUInt32BE(ssrc >>> 0, 4);
  scratch.writeUInt32BE(roc >>> 0, 8);
  scratch.writeUInt16BE(seq, 12);
  for (let i = 0; i < 14; i++) scratch[i]! ^= salt[i]!;
  return scratch;
}

function rocBytes(roc: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(roc >>> 0);
  return out;
}
