/**
 * @parley/rtc's SRTP (srtp.ts) against the published test vectors: RFC 3711 Appendix B.2 (the
 * AES-CM keystream) and B.3 (key derivation, whose PRF is that same keystream), and RFC 7714
 * section 16.1 (AEAD_AES_128_GCM encryption and decryption of an RTP packet). RFC 3711 gives no
 * vector for a whole HMAC-SHA1-80 packet, so that one, and GCM at other lengths and rollover
 * counters, are checked against node:crypto's own AES-CTR, AES-GCM and HMAC computing the same
 * RFC construction.
 */
import assert from "node:assert/strict";
import { createCipheriv, createHmac } from "node:crypto";
import { describe, it } from "node:test";
import {
  cmCounter,
  gcmIv,
  PROFILE_AEAD_AES_128_GCM,
  PROFILE_AES128_CM_SHA1_80,
  RocTracker,
  RTP_FIXED_HEADER_BYTES,
  type SrtpKeys,
  SrtpReceiver,
  SrtpSender,
  writeRtpHeader,
} from "@parley/rtc";

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex");

function header(ssrc: number, seq: number, timestamp = 0, payloadType = 0): Buffer {
  return writeRtpHeader(Buffer.alloc(RTP_FIXED_HEADER_BYTES), false, payloadType, seq, timestamp, ssrc);
}

function cmKeys(key: Buffer, salt: Buffer, authKey: Buffer = Buffer.alloc(20)): SrtpKeys {
  return { profile: PROFILE_AES128_CM_SHA1_80, key, salt, authKey };
}

/** The encrypted payload of an AES-CM packet: the keystream itself when the payload is zeros. */
function cmPayload(keys: SrtpKeys, ssrc: number, seq: number, roc: number, payload: Buffer): Buffer {
  return new SrtpSender(keys).protect(header(ssrc, seq), payload, roc)[1]!;
}

describe("RFC 3711 B.2: the AES-CM keystream", () => {
  const key = hex("2B7E151628AED2A6ABF7158809CF4F3C");
  const salt = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD");

  it("puts the salt, SSRC and packet index where the RFC's first counter block has them", () => {
    assert.equal(cmCounter(Buffer.alloc(16), salt, 0, 0, 0).toString("hex"), "f0f1f2f3f4f5f6f7f8f9fafbfcfd0000");
  });

  it("encrypts a packet of zeros into exactly the RFC's keystream blocks, the last ones included", () => {
    const blocks = 0xff02;
    const keystream = cmPayload(cmKeys(key, salt), 0, 0, 0, Buffer.alloc(16 * blocks));
    const block = (i: number) =>
      keystream
        .subarray(16 * i, 16 * (i + 1))
        .toString("hex")
        .toUpperCase();
    assert.equal(block(0x0000), "E03EAD0935C95E80E166B16DD92B4EB4");
    assert.equal(block(0x0001), "D23513162B02D0F72A43A2FE4A5F97AB");
    assert.equal(block(0x0002), "41E95B3BB0A2E8DD477901E4FCA894C0");
    assert.equal(block(0xfeff), "EC8CDF7398607CB0F2D21675EA9EA1E4");
    assert.equal(block(0xff00), "362B7C3C6773516318A077D7FC5073AE");
    assert.equal(block(0xff01), "6A2CC3787889374FBEB4C81B17BA6C44");
  });
});

describe("RFC 3711 B.3: key derivation", () => {
  // RFC 3711 4.3.1: the key with label L is the AES-CM keystream of the master key from
  // x = (L << 48) XOR master salt, shifted 16 bits: the counter block of a packet whose SSRC is L
  // and whose index is 0, under the master key and salt.
  const masterKey = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
  const masterSalt = hex("0EC675AD498AFEEBB6960B3AABE6");
  const derive = (label: number, length: number) =>
    cmPayload(cmKeys(masterKey, masterSalt), label, 0, 0, Buffer.alloc(length)).toString("hex").toUpperCase();

  it("derives the RFC's session encryption key (label 0)", () => {
    assert.equal(derive(0, 16), "C61E7A93744F39EE10734AFE3FF7A087");
  });

  it("derives the RFC's session salt (label 2)", () => {
    assert.equal(derive(2, 14), "30CBBC08863D8C85D49DB34A9AE1");
  });

  it("derives the RFC's 94 bytes of authentication key stream (label 1)", () => {
    assert.equal(
      derive(1, 94),
      "CEBE321F6FF7716B6FD4AB49AF256A15" +
        "6D38BAA48F0A0ACF3C34E2359E6CDBCE" +
        "E049646C43D9327AD175578EF7227098" +
        "6371C10C9A369AC2F94A8C5FBCDDDC25" +
        "6D6E919A48B610EF17C2041E47403576" +
        "6B68642C59BBFC2F34DB60DBDFB2",
    );
  });
});

describe("RFC 7714 16.1: AEAD_AES_128_GCM", () => {
  const keys: SrtpKeys = {
    profile: PROFILE_AEAD_AES_128_GCM,
    key: hex("000102030405060708090a0b0c0d0e0f"),
    salt: hex("517569642070726f2071756f"),
    authKey: Buffer.alloc(0),
  };
  const rtpHeader = hex("8040f17b 8041f8d3 5501a0b2");
  const plaintext = Buffer.from("Gallia est omnis divisa in partes tres", "ascii");
  const protectedPacket = hex(`8040f17b 8041f8d3 5501a0b2
    f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833
    899d7f27 beb16a91 52cf765e e4390cce`);

  it("makes the RFC's IV from the salt, SSRC, rollover counter and sequence number", () => {
    assert.equal(gcmIv(Buffer.alloc(12), keys.salt, 0x5501a0b2, 0, 0xf17b).toString("hex"), "51753c6580c2726f20718414");
  });

  it("encrypts the RFC's packet into its ciphertext and tag (16.1.1)", () => {
    const sent = Buffer.concat(new SrtpSender(keys).protect(rtpHeader, plaintext, 0));
    assert.equal(sent.toString("hex"), protectedPacket.toString("hex"));
  });

  it("decrypts the RFC's protected packet back to its plaintext (16.1.2)", () => {
    const receiver = new SrtpReceiver(keys);
    const opened = receiver.unprotect(protectedPacket, 12, new RocTracker());
    assert.equal(opened?.toString("ascii"), plaintext.toString("ascii"));
    assert.equal(receiver.authFailures, 0);
  });

  it("refuses the RFC's packet with any one bit of its header, ciphertext or tag flipped", () => {
    const receiver = new SrtpReceiver(keys);
    for (const at of [1, 4, 12, 30, protectedPacket.length - 16, protectedPacket.length - 1]) {
      const forged = Buffer.from(protectedPacket);
      forged[at]! ^= 0x01;
      assert.equal(receiver.unprotect(forged, 12, new RocTracker()), null, `bit flipped at byte ${at}`);
    }
    assert.equal(receiver.authFailures, 6);
  });
});

describe("the same constructions as node:crypto computes them", () => {
  const key = hex("8c307f105f79d5d2c26b1a933ae22cd5");
  const salt = hex("563b4c15458d97a1b2c3d4e5f607");
  const authKey = hex("0102030405060708090a0b0c0d0e0f1011121314");
  const ssrc = 0xcafebabe;
  const seq = 0xfff3;
  const roc = 7;
  const lengths = [0, 1, 15, 16, 17, 160, 333];

  it("AES_CM_128_HMAC_SHA1_80: AES-128-CTR from the RFC 3711 counter, HMAC-SHA1 over header, ciphertext and ROC", () => {
    const counter = Buffer.alloc(16);
    counter.writeUInt32BE(ssrc, 4);
    counter.writeUInt32BE(roc, 8);
    counter.writeUInt16BE(seq, 12);
    for (let i = 0; i < 14; i++) counter[i]! ^= salt[i]!;
    for (const length of lengths) {
      const payload = Buffer.alloc(length, 0x5a);
      const rtpHeader = header(ssrc, seq, 123456, 111);
      const [, encrypted, tag] = new SrtpSender(cmKeys(key, salt, authKey)).protect(rtpHeader, payload, roc);
      const ctr = createCipheriv("aes-128-ctr", key, counter);
      assert.equal(encrypted!.toString("hex"), Buffer.concat([ctr.update(payload), ctr.final()]).toString("hex"));
      const rocBytes = Buffer.alloc(4);
      rocBytes.writeUInt32BE(roc);
      const mac = createHmac("sha1", authKey).update(rtpHeader).update(encrypted!).update(rocBytes).digest();
      assert.equal(tag!.toString("hex"), mac.subarray(0, 10).toString("hex"), `payload of ${length} bytes`);
    }
  });

  it("AEAD_AES_128_GCM: AES-128-GCM with the RFC 7714 IV and the header as associated data", () => {
    const keys: SrtpKeys = { profile: PROFILE_AEAD_AES_128_GCM, key, salt, authKey: Buffer.alloc(0) };
    const iv = Buffer.alloc(12);
    iv.writeUInt32BE(ssrc, 2);
    iv.writeUInt32BE(roc, 6);
    iv.writeUInt16BE(seq, 10);
    for (let i = 0; i < 12; i++) iv[i]! ^= salt[i]!;
    const sender = new SrtpSender(keys);
    for (const length of lengths) {
      const payload = Buffer.alloc(length, 0xa5);
      const rtpHeader = header(ssrc, seq, 654321, 111);
      const [, encrypted, tag] = sender.protect(rtpHeader, payload, roc);
      const gcm = createCipheriv("aes-128-gcm", key, iv);
      gcm.setAAD(rtpHeader);
      const expected = Buffer.concat([gcm.update(payload), gcm.final()]);
      assert.equal(encrypted!.toString("hex"), expected.toString("hex"), `payload of ${length} bytes`);
      assert.equal(tag!.toString("hex"), gcm.getAuthTag().toString("hex"), `tag, payload of ${length} bytes`);
    }
  });
});
