/**
 * @parley/rtc's RTP header reading and writing (rtp-header.ts, RFC 3550 5.1, RFC 8285 header
 * extensions, RFC 6464 audio level), checked against the packets werift's own RTP model writes:
 * what the relay's fast data plane reads must be what werift and browsers put on the wire.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as rtc from "@parley/rtc";

const ONE_BYTE = 0xbede;
const TWO_BYTE = 0x1000;
const PAYLOAD = Buffer.from("opus frame");

/** A packet as werift serialises it. */
function weriftPacket(header: Partial<rtc.RtpHeader>): Buffer {
  return new rtc.RtpPacket(new rtc.RtpHeader(header), PAYLOAD).serialize();
}

/** An RFC 6464 element's payload: the voice activity flag and the level (0 loudest .. 127 silence). */
const level = (dbov: number) => Buffer.from([0x80 | dbov]);

describe("RTP header fields (RFC 3550 5.1)", () => {
  it("reads back every field werift writes, the top bit of 32-bit values included", () => {
    const packet = weriftPacket({
      marker: true,
      payloadType: 111,
      sequenceNumber: 65_535,
      timestamp: 0xfedc_ba98,
      ssrc: 0x8000_0001,
    });
    assert.equal(rtc.rtpHeaderLength(packet), rtc.RTP_FIXED_HEADER_BYTES);
    assert.equal(rtc.rtpSequenceNumber(packet), 65_535);
    assert.equal(rtc.rtpTimestamp(packet), 0xfedc_ba98);
    assert.equal(rtc.rtpSsrc(packet), 0x8000_0001);
    assert.equal(rtc.rtpMarker(packet), true);
    assert.equal(rtc.rtpHasPadding(packet), false);
    assert.deepEqual(packet.subarray(rtc.rtpHeaderLength(packet)), PAYLOAD);
  });

  it("writes the same fixed header werift writes, and werift reads it back", () => {
    for (const marker of [false, true]) {
      const fields = { marker, payloadType: 0, sequenceNumber: 4242, timestamp: 0xffff_ffff, ssrc: 0xdead_beef };
      const written = rtc.writeRtpHeader(
        Buffer.alloc(rtc.RTP_FIXED_HEADER_BYTES),
        marker,
        fields.payloadType,
        fields.sequenceNumber,
        fields.timestamp,
        fields.ssrc,
      );
      assert.deepEqual(written, weriftPacket(fields).subarray(0, rtc.RTP_FIXED_HEADER_BYTES));
      const read = rtc.RtpHeader.deSerialize(written);
      assert.equal(read.version, 2);
      assert.equal(read.marker, marker);
      assert.equal(read.extension, false);
      assert.equal(read.csrc.length, 0);
    }
  });

  it("writes timestamps and SSRCs past 32 bits modulo 2^32, as a timestamp that wrapped", () => {
    const header = rtc.writeRtpHeader(Buffer.alloc(rtc.RTP_FIXED_HEADER_BYTES), false, 111, 1, 2 ** 32 + 960, -1);
    assert.equal(rtc.rtpTimestamp(header), 960);
    assert.equal(rtc.rtpSsrc(header), 0xffff_ffff);
  });

  it("counts CSRCs and the header extension into the header length", () => {
    const packet = weriftPacket({
      ssrc: 1,
      csrc: [2, 3],
      extensionProfile: ONE_BYTE,
      extensions: [{ id: 1, payload: level(30) }],
    });
    // 12 fixed + 2 CSRCs + 4 extension header + one word of elements (2 bytes, padded).
    assert.equal(rtc.rtpHeaderLength(packet), 12 + 8 + 4 + 4);
    assert.deepEqual(packet.subarray(rtc.rtpHeaderLength(packet)), PAYLOAD);
  });

  it("reads the padding bit", () => {
    const packet = weriftPacket({ ssrc: 1 });
    packet[0] = packet[0]! | 0x20;
    assert.equal(rtc.rtpHasPadding(packet), true);
  });

  it("gives -1 for a packet too short for its header, its CSRCs or its extension", () => {
    assert.equal(rtc.rtpHeaderLength(Buffer.alloc(11)), -1);
    const withCsrcs = weriftPacket({ ssrc: 1, csrc: [2, 3] });
    assert.equal(rtc.rtpHeaderLength(withCsrcs.subarray(0, 12 + 7)), -1);
    const withExtension = weriftPacket({
      ssrc: 1,
      extensionProfile: ONE_BYTE,
      extensions: [{ id: 1, payload: level(30) }],
    });
    assert.equal(rtc.rtpHeaderLength(withExtension.subarray(0, 12 + 3)), -1, "the extension header cut");
    assert.equal(rtc.rtpHeaderLength(withExtension.subarray(0, 12 + 4 + 3)), -1, "its elements cut");
  });
});

describe("the RFC 6464 audio level in RFC 8285 header extensions", () => {
  it("finds the level among one-byte elements (as Chrome sends them), past other elements", () => {
    const packet = weriftPacket({
      ssrc: 1,
      extensionProfile: ONE_BYTE,
      extensions: [
        { id: 3, payload: Buffer.from([1, 2, 3]) },
        { id: 1, payload: level(42) },
      ],
    });
    const length = rtc.rtpHeaderLength(packet);
    assert.equal(rtc.audioLevelOf(packet, length, 1), 42);
    assert.equal(rtc.audioLevelOf(packet, length, 3), 1, "any element's first byte, voice activity bit masked");
    assert.equal(rtc.audioLevelOf(packet, length, 5), -1, "an id the packet does not carry");
  });

  it("finds the level among two-byte elements", () => {
    const packet = weriftPacket({
      ssrc: 1,
      extensionProfile: TWO_BYTE,
      extensions: [
        { id: 9, payload: Buffer.alloc(20) },
        { id: 4, payload: level(127) },
      ],
    });
    assert.equal(rtc.audioLevelOf(packet, rtc.rtpHeaderLength(packet), 4), 127);
  });

  it("gives -1 for a packet with no extension", () => {
    const packet = weriftPacket({ ssrc: 1 });
    assert.equal(rtc.audioLevelOf(packet, rtc.rtpHeaderLength(packet), 1), -1);
  });

  it("writes an extension werift reads as the one-byte audio level element, which reads back", () => {
    const header = rtc.writeRtpHeader(
      Buffer.alloc(rtc.RTP_FIXED_HEADER_BYTES + rtc.AUDIO_LEVEL_EXTENSION_BYTES),
      true,
      111,
      7,
      8,
      9,
    );
    rtc.writeAudioLevelExtension(header, 5, 33);
    const packet = Buffer.concat([header, PAYLOAD]);
    assert.equal(rtc.rtpHeaderLength(packet), rtc.RTP_FIXED_HEADER_BYTES + rtc.AUDIO_LEVEL_EXTENSION_BYTES);
    assert.equal(rtc.audioLevelOf(packet, rtc.rtpHeaderLength(packet), 5), 33);
    const read = rtc.RtpPacket.deSerialize(packet);
    assert.equal(read.header.extensionProfile, ONE_BYTE);
    assert.deepEqual(read.header.extensions, [{ id: 5, payload: level(33) }]);
    assert.equal(read.header.sequenceNumber, 7);
    assert.deepEqual(read.payload, PAYLOAD);
  });
});
