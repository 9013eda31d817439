/**
 * The native data plane's SRTP (OpenSSL) against the RFC 7714 and RFC 3711 test vectors, and against
 * werift's, both ways, for both DTLS-SRTP profiles:
 * clients that encrypt and decrypt with werift's own SrtpSession (keyed with the master keys and
 * salts exactly as werift keeps them after its DTLS handshake: the GCM salt zero-padded to 14
 * bytes) talk through the plane across a sequence number wrap. The JavaScript SRTP round trips
 * (@parley/rtc's SrtpSender in, SrtpReceiver out) are in native-plane.test.ts.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Socket } from "node:dgram";
import { after, describe, it } from "node:test";
import {
  type NativeSrtpKeys,
  PROFILE_AEAD_AES_128_GCM,
  PROFILE_AES128_CM_SHA1_80,
  RocTracker,
  RTP_FIXED_HEADER_BYTES,
  RtpHeader,
  RtpPacket,
  SrtpReceiver,
  SrtpSender,
  udpHandleOf,
  writeRtpHeader,
} from "@parley/rtc";
import { waitFor } from "@parley/testkit";
import { SrtpSession } from "werift";
import { bound, IP, masterKeys, nativePlane, OPUS } from "./native-plane-kit.js";

const plane = nativePlane().createPlane(1);
const sockets: Socket[] = [];

after(() => {
  plane.close();
  for (const socket of sockets) socket.close();
});

/** A client whose SRTP is werift's: it sends with its keys and decrypts with the relay's. */
async function weriftClient(profile: number, ssrc: number) {
  const socket = await bound();
  const relaySocket = await bound();
  sockets.push(socket, relaySocket);
  const own = masterKeys(profile);
  const relay = masterKeys(profile);
  const session = new SrtpSession({
    profile,
    keys: {
      localMasterKey: own.masterKey,
      localMasterSalt: own.masterSalt,
      remoteMasterKey: relay.masterKey,
      remoteMasterSalt: relay.masterSalt,
    },
  });
  const received: RtpPacket[] = [];
  let failures = 0;
  socket.on("message", (data) => {
    try {
      received.push(RtpPacket.deSerialize(session.decrypt(data)));
    } catch {
      failures++;
    }
  });
  const handle = udpHandleOf(relaySocket);
  if (typeof handle === "string") throw new Error(handle);
  handle.recvStop();
  const slotSsrc = randomBytes(4).readUInt32BE(0);
  const leg = plane.addLeg({
    thread: 0,
    fd: handle.fd,
    remoteAddress: IP,
    remotePort: socket.address().port,
    profile,
    // werift's contexts hold the salts it was given, a GCM salt zero-padded to 14 bytes.
    local: { masterKey: relay.masterKey, masterSalt: session.remoteContext.masterSalt },
    remote: { masterKey: own.masterKey, masterSalt: session.localContext.masterSalt },
    ssrcs: [ssrc],
    audioLevelId: -1,
    slots: [{ ssrc: slotSsrc, payloadType: OPUS }],
    onDatagram: () => undefined,
  });
  const send = (seq: number, timestamp: number, payload: Buffer) => {
    const header = new RtpHeader({ sequenceNumber: seq, timestamp, payloadType: OPUS, ssrc, marker: false });
    socket.send(session.encrypt(payload, header), relaySocket.address().port, IP);
  };
  return {
    leg,
    send,
    received,
    failures: () => failures,
    slotSsrc,
    saltLength: session.localContext.masterSalt.length,
  };
}

describe("the native data plane's SRTP against werift's", () => {
  for (const [name, profile] of [
    ["AES_CM_128_HMAC_SHA1_80", PROFILE_AES128_CM_SHA1_80],
    ["AEAD_AES_128_GCM", PROFILE_AEAD_AES_128_GCM],
  ] as const) {
    it(`accepts werift's ${name} and werift decrypts what it sends, across a sequence number wrap`, async () => {
      const a = await weriftClient(profile, 0xa0a0a0a0);
      const b = await weriftClient(profile, 0xb0b0b0b0);
      assert.equal(a.saltLength, 14);
      b.leg.route(0, a.leg);
      a.leg.route(0, b.leg);
      const payloads = Array.from({ length: 16 }, (_, i) => randomBytes(20 + i * 7));
      for (let i = 0; i < payloads.length; i++) {
        a.send((65528 + i) & 0xffff, 1000 + i * 960, payloads[i]!);
        b.send((100 + i) & 0xffff, 5000 + i * 960, payloads[i]!);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      await waitFor(() => a.received.length === 16 && b.received.length === 16, "both clients hear 16 packets");
      assert.equal(a.failures() + b.failures(), 0);
      assert.deepEqual(
        b.received.map((p) => p.payload),
        payloads,
      );
      assert.deepEqual(
        b.received.map((p) => p.header.sequenceNumber),
        payloads.map((_, i) => (65528 + i) & 0xffff),
      );
      assert.ok(b.received.every((p) => p.header.ssrc === b.slotSsrc));
      assert.deepEqual(
        a.received.map((p) => p.payload),
        payloads,
      );
    });
  }
});

/** Two raw UDP ends: a relay socket the plane reads, and the client socket it sends to. */
async function rawEnds() {
  const client = await bound();
  const relay = await bound();
  sockets.push(client, relay);
  const handle = udpHandleOf(relay);
  if (typeof handle === "string") throw new Error(handle);
  handle.recvStop();
  const received: Buffer[] = [];
  client.on("message", (data) => received.push(data));
  return { client, relay, fd: handle.fd, received };
}

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex");

/** A leg on `ends`' relay socket that takes RTP of `ssrc` and sends one slot. */
function rawLeg(
  ends: Awaited<ReturnType<typeof rawEnds>>,
  profile: number,
  keys: { local: NativeSrtpKeys; remote: NativeSrtpKeys },
  ssrc: number,
  slot: { ssrc: number; payloadType: number },
) {
  return plane.addLeg({
    thread: 0,
    fd: ends.fd,
    remoteAddress: IP,
    remotePort: ends.client.address().port,
    profile,
    ...keys,
    ssrcs: [ssrc],
    audioLevelId: -1,
    slots: [slot],
    onDatagram: () => undefined,
  });
}

describe("the native data plane's SRTP against the RFC test vectors", () => {
  it("turns RFC 7714 16.1's protected packet, received with its keys, into exactly that packet sent with them", async () => {
    // RFC 7714 16.1: session key, salt, the RTP header and its protected packet.
    const rfc = { sessionKey: hex("000102030405060708090a0b0c0d0e0f"), sessionSalt: hex("517569642070726f2071756f") };
    const protectedPacket = hex(`8040f17b 8041f8d3 5501a0b2
      f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833
      899d7f27 beb16a91 52cf765e e4390cce`);
    const other = { sessionKey: randomBytes(16), sessionSalt: randomBytes(12), authKey: Buffer.alloc(0) };
    const a = await rawEnds();
    const b = await rawEnds();
    const rfcKeys = { ...rfc, authKey: Buffer.alloc(0) };
    const leg = (ends: typeof a, keys: { local: NativeSrtpKeys; remote: NativeSrtpKeys }, slotSsrc: number) =>
      rawLeg(ends, PROFILE_AEAD_AES_128_GCM, keys, 0x5501a0b2, { ssrc: slotSsrc, payloadType: 0x40 });
    // Leg a receives with the RFC's keys; leg b's slot carries the RFC's SSRC and payload type and
    // sends with the RFC's keys. A slot's first packet keeps its source's sequence number and
    // timestamp, so what b sends is the RFC's packet again, byte for byte.
    const legA = leg(a, { local: other, remote: rfcKeys }, 0x11111111);
    const legB = leg(b, { local: rfcKeys, remote: other }, 0x5501a0b2);
    legB.route(0, legA);
    a.client.send(protectedPacket, a.relay.address().port, IP);
    await waitFor(() => b.received.length === 1, "the packet through the plane");
    assert.equal(b.received[0]!.toString("hex"), protectedPacket.toString("hex"));
    legA.close();
    legB.close();
  });

  it("derives RFC 3711 B.3's session keys from its master key and salt (AES_CM_128_HMAC_SHA1_80)", async () => {
    // RFC 3711 B.3: the master key and salt, and the session encryption key, salt and the first 20
    // bytes of the authentication key stream it derives from them (HMAC-SHA1's key).
    const master = {
      masterKey: hex("E1F97A0D3E018BE0D64FA32C06DE4139"),
      masterSalt: hex("0EC675AD498AFEEBB6960B3AABE6"),
    };
    const derived = {
      profile: PROFILE_AES128_CM_SHA1_80,
      key: hex("C61E7A93744F39EE10734AFE3FF7A087"),
      salt: hex("30CBBC08863D8C85D49DB34A9AE1"),
      authKey: hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"),
    };
    const a = await rawEnds();
    const b = await rawEnds();
    const cm = PROFILE_AES128_CM_SHA1_80;
    const legA = rawLeg(a, cm, { local: masterKeys(cm), remote: master }, 0xa1b2c3d4, {
      ssrc: 0x2222,
      payloadType: OPUS,
    });
    const legB = rawLeg(b, cm, { local: master, remote: masterKeys(cm) }, 0x99999999, {
      ssrc: 0x3333,
      payloadType: OPUS,
    });
    legB.route(0, legA);
    // In: a packet protected with the RFC's session keys is accepted by the leg keyed with the
    // master key. Out: what the plane sends with the master key opens with the RFC's session keys.
    const payload = Buffer.from("derived by the plane, checked against RFC 3711 B.3");
    const header = writeRtpHeader(Buffer.alloc(RTP_FIXED_HEADER_BYTES), false, OPUS, 4242, 96000, 0xa1b2c3d4);
    a.client.send(Buffer.concat(new SrtpSender(derived).protect(header, payload, 0)), a.relay.address().port, IP);
    await waitFor(() => b.received.length === 1, "the packet through the plane");
    const opened = new SrtpReceiver(derived).unprotect(b.received[0]!, RTP_FIXED_HEADER_BYTES, new RocTracker());
    assert.equal(opened?.toString(), payload.toString());
    legA.close();
    legB.close();
  });
});
