import { createHmac, timingSafeEqual } from "node:crypto";
import { isIPv4 } from "node:net";
import zlib from "node:zlib";
import type { CandidatePairLike, IceConnectionLike } from "./werift-internals.js";

/*
 * The answer to an ICE consent check (RFC 7675: a STUN Binding request on the selected pair,
 * every 4 to 6 s from each client), built without werift's STUN message objects: the same
 * success response werift's ICE agent sends (XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY with the local
 * password, FINGERPRINT; RFC 5389), for a request it would answer with nothing else to do. Any
 * request this does not fully recognise (another method or class, a nomination, a role conflict,
 * an unknown comprehension-required attribute, a wrong username or integrity, IPv6) gets null:
 * the caller hands it to werift as before.
 */

/** zlib's CRC-32 (Node 20.15 on); without it every check goes to werift. */
const crc32 = typeof zlib.crc32 === "function" ? zlib.crc32 : null;
const HEADER_BYTES = 20;
const MAGIC_COOKIE = 0x2112a442;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const FINGERPRINT_XOR = 0x5354554e;
const ATTR = {
  username: 0x0006,
  messageIntegrity: 0x0008,
  xorMappedAddress: 0x0020,
  priority: 0x0024,
  useCandidate: 0x0025,
  fingerprint: 0x8028,
  iceControlled: 0x8029,
  iceControlling: 0x802a,
} as const;
const INTEGRITY_BYTES = 20;
/** XOR-MAPPED-ADDRESS (IPv4), MESSAGE-INTEGRITY and FINGERPRINT, with their 4-byte headers. */
const RESPONSE_BYTES = HEADER_BYTES + 12 + 24 + 8;

/** The local ICE agent's side of a consent check: its username fragment, password and role. */
export interface ConsentCredentials {
  localUsername: string;
  localPassword: string;
  iceControlling: boolean;
}

/** The request's transaction id (12 bytes) is at 8..20; the caller may count it (hex). */
export interface ConsentAnswer {
  response: Buffer;
  transactionId: Buffer;
}

function hmac(password: string, lengthField: number, type: number, message: Buffer, end: number): Buffer {
  const head = Buffer.allocUnsafe(4);
  head.writeUInt16BE(type, 0);
  head.writeUInt16BE(lengthField, 2);
  return createHmac("sha1", password).update(head).update(message.subarray(4, end)).digest();
}

/**
 * The success response to `request` (a datagram from `address`:`port`) if it is a consent check
 * werift's agent `credentials` would answer with a plain Binding success and nothing else, else null.
 */
export function answerConsentCheck(
  request: Buffer,
  address: string,
  port: number,
  credentials: ConsentCredentials,
): ConsentAnswer | null {
  const length = request.length;
  if (!crc32 || length < HEADER_BYTES || request.readUInt16BE(0) !== BINDING_REQUEST) return null;
  if (request.readUInt32BE(4) !== MAGIC_COOKIE || request.readUInt16BE(2) !== length - HEADER_BYTES) return null;
  if (!isIPv4(address)) return null;
  let username: string | null = null;
  let integrityAt = -1;
  let fingerprintSeen = false;
  for (let at = HEADER_BYTES; at < length; ) {
    if (at + 4 > length || fingerprintSeen) return null;
    const type = request.readUInt16BE(at);
    const size = request.readUInt16BE(at + 2);
    const next = at + 4 + ((size + 3) & ~3);
    if (next > length) return null;
    if (integrityAt >= 0 && type !== ATTR.fingerprint) return null;
    switch (type) {
      case ATTR.username:
        username = request.toString("utf8", at + 4, at + 4 + size);
        break;
      case ATTR.messageIntegrity:
        if (size !== INTEGRITY_BYTES) return null;
        integrityAt = at;
        break;
      case ATTR.fingerprint:
        fingerprintSeen = true;
        break;
      case ATTR.iceControlling:
        if (credentials.iceControlling) return null; // a role conflict: werift resolves it
        break;
      case ATTR.iceControlled:
        if (!credentials.iceControlling) return null;
        break;
      case ATTR.priority:
        break;
      default:
        // USE-CANDIDATE (a nomination) and every other comprehension-required attribute go to werift.
        if (type < 0x8000) return null;
    }
    at = next;
  }
  if (integrityAt < 0 || username === null) return null;
  const colon = username.indexOf(":");
  if (colon < 0 || username.slice(0, colon) !== credentials.localUsername) return null;
  const expected = hmac(
    credentials.localPassword,
    integrityAt + 24 - HEADER_BYTES,
    BINDING_REQUEST,
    request,
    integrityAt,
  );
  if (!timingSafeEqual(expected, request.subarray(integrityAt + 4, integrityAt + 4 + INTEGRITY_BYTES))) return null;

  const response = Buffer.allocUnsafe(RESPONSE_BYTES);
  response.writeUInt16BE(BINDING_SUCCESS, 0);
  response.writeUInt16BE(RESPONSE_BYTES - HEADER_BYTES, 2);
  response.writeUInt32BE(MAGIC_COOKIE, 4);
  request.copy(response, 8, 8, HEADER_BYTES);
  let at = HEADER_BYTES;
  response.writeUInt16BE(ATTR.xorMappedAddress, at);
  response.writeUInt16BE(8, at + 2);
  response.writeUInt8(0, at + 4);
  response.writeUInt8(1, at + 5); // IPv4
  response.writeUInt16BE(port ^ (MAGIC_COOKIE >>> 16), at + 6);
  const [a, b, c, d] = address.split(".").map(Number) as [number, number, number, number];
  response.writeUInt32BE((((a << 24) | (b << 16) | (c << 8) | d) ^ MAGIC_COOKIE) >>> 0, at + 8);
  at += 12;
  const integrity = hmac(credentials.localPassword, at + 24 - HEADER_BYTES, BINDING_SUCCESS, response, at);
  response.writeUInt16BE(ATTR.messageIntegrity, at);
  response.writeUInt16BE(INTEGRITY_BYTES, at + 2);
  integrity.copy(response, at + 4);
  at += 24;
  response.writeUInt16BE(ATTR.fingerprint, at);
  response.writeUInt16BE(4, at + 2);
  response.writeUInt32BE((crc32(response.subarray(0, at)) ^ FINGERPRINT_XOR) >>> 0, at + 4);
  return { response, transactionId: response.subarray(8, HEADER_BYTES) };
}

/** werift's ICE agent's credentials and role, or null where they are not where werift keeps them. */
export function consentCredentials(connection: IceConnectionLike): ConsentCredentials | null {
  const { localUsername, localPassword, iceControlling } = connection;
  if (typeof localUsername !== "string" || typeof localPassword !== "string" || typeof iceControlling !== "boolean") {
    return null;
  }
  return { localUsername, localPassword, iceControlling };
}

/** Counts an answered check on `pair` as werift's agent does (its getStats and retransmission count). */
export function countAnsweredCheck(pair: CandidatePairLike, transactionId: Buffer): void {
  pair.noteIncomingRequest?.(transactionId.toString("hex"));
  if (typeof pair.requestsReceived === "number") pair.requestsReceived++;
  if (typeof pair.responsesSent === "number") pair.responsesSent++;
}
