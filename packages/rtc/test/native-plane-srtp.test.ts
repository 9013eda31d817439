/**
 * The native data plane's SRTP (libsrtp) against werift's, both ways, for both DTLS-SRTP profiles:
 * clients that encrypt and decrypt with werift's own SrtpSession (keyed with the master keys and
 * salts exactly as werift keeps them after its DTLS handshake: the GCM salt zero-padded to 14
 * bytes) talk through the plane across a sequence number wrap. The JavaScript SRTP round trips
 * (@parley/rtc's SrtpSender in, SrtpReceiver out) are in native-plane.test.ts.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Socket } from "node:dgram";
import { after, describe, it } from "node:test";
import { PROFILE_AEAD_AES_128_GCM, PROFILE_AES128_CM_SHA1_80, RtpHeader, RtpPacket, udpHandleOf } from "@parley/rtc";
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
