/**
 * RTP headers (RFC 3550 5.1) read and written in place: the relay's fast data plane and the
 * benchmark's client legs parse incoming headers and build outgoing ones here, on the packet path,
 * with no RTP object model and no allocation beyond the caller's own header buffer.
 */

/** Bytes of the fixed RTP header (no CSRCs, no extension). */
export const RTP_FIXED_HEADER_BYTES = 12;

/** Bytes of an RFC 8285 one-byte header extension holding one RFC 6464 audio level element. */
export const AUDIO_LEVEL_EXTENSION_BYTES = 8;

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

/** The SSRC of an RTP packet (12 bytes or more). */
export function rtpSsrc(packet: Buffer): number {
  return packet.readUInt32BE(8);
}

/** The sequence number of an RTP packet (12 bytes or more). */
export function rtpSequenceNumber(packet: Buffer): number {
  return packet.readUInt16BE(2);
}

/** The timestamp of an RTP packet (12 bytes or more). */
export function rtpTimestamp(packet: Buffer): number {
  return packet.readUInt32BE(4);
}

/** The marker bit of an RTP packet. */
export function rtpMarker(packet: Buffer): boolean {
  return (packet[1]! & 0x80) !== 0;
}

/** Whether an RTP packet's padding bit is set (its payload's last byte counts the padding). */
export function rtpHasPadding(packet: Buffer): boolean {
  return (packet[0]! & 0x20) !== 0;
}

/**
 * The RFC 6464 level in the header extension `id` of an RTP packet whose header is `headerLength`
 * bytes (one-byte RFC 8285 elements, as Chrome and werift send; two-byte ones are read too), or -1.
 */
export function audioLevelOf(packet: Buffer, headerLength: number, id: number): number {
  if (!(packet[0]! & 0x10)) return -1;
  const at = 12 + 4 * (packet[0]! & 0x0f);
  const profile = packet.readUInt16BE(at);
  const end = headerLength;
  let i = at + 4;
  if (profile === 0xbede) {
    while (i < end) {
      const byte = packet[i]!;
      if (byte === 0) {
        i++; // padding
        continue;
      }
      const elementId = byte >> 4;
      const length = (byte & 0x0f) + 1;
      if (elementId === 15) return -1;
      if (elementId === id) return i + 1 < end ? packet[i + 1]! & 0x7f : -1;
      i += 1 + length;
    }
  } else if ((profile & 0xfff0) === 0x1000) {
    while (i + 1 < end) {
      const elementId = packet[i]!;
      if (elementId === 0) {
        i++;
        continue;
      }
      const length = packet[i + 1]!;
      if (elementId === id) return length >= 1 && i + 2 < end ? packet[i + 2]! & 0x7f : -1;
      i += 2 + length;
    }
  }
  return -1;
}

/**
 * Writes the fixed 12-byte RTP header (version 2, no padding, extension or CSRCs) at the start of
 * `header` and returns it.
 */
export function writeRtpHeader(
  header: Buffer,
  marker: boolean,
  payloadType: number,
  sequenceNumber: number,
  timestamp: number,
  ssrc: number,
): Buffer {
  header[0] = 0x80;
  header[1] = (marker ? 0x80 : 0) | payloadType;
  header.writeUInt16BE(sequenceNumber, 2);
  header.writeUInt32BE(timestamp >>> 0, 4);
  header.writeUInt32BE(ssrc >>> 0, 8);
  return header;
}

/**
 * Adds an RFC 6464 audio level to a header `writeRtpHeader` wrote into a buffer of 12 +
 * AUDIO_LEVEL_EXTENSION_BYTES bytes: sets its extension bit and writes an RFC 8285 one-byte header
 * extension with one element (`id`, `level` 0 loudest .. 127 silence, voice activity flag set),
 * padded to a word.
 */
export function writeAudioLevelExtension(header: Buffer, id: number, level: number): void {
  header[0] = header[0]! | 0x10;
  header.writeUInt32BE(0xbede0001, 12);
  header.writeUInt32BE((((id << 4) << 24) | ((0x80 | level) << 16)) >>> 0, 16);
}
