/**
 * The native data plane forwarding real SRTP between real UDP sockets on loopback: clients encrypt
 * with @parley/rtc's JavaScript SRTP, the plane authenticates, decrypts, routes and re-encrypts,
 * and the receiving client decrypts what it got. What the JavaScript fast plane does per packet
 * (packages/server/src/media: fast-rtp, media-leg, slot-continuity, reception-stats,
 * voice-activity) is checked here on the native one.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  NativeLegStat,
  type NativePlane,
  PROFILE_AEAD_AES_128_GCM,
  PROFILE_AES128_CM_SHA1_80,
  slotStat,
} from "@parley/rtc";
import { waitFor } from "@parley/testkit";
import {
  addRelayLeg,
  bound,
  Client,
  closeRelaySockets,
  IP,
  nativePlane,
  OPUS,
  payloadOf,
  type RelayLeg,
  sleep,
  talk,
} from "./native-plane-kit.js";

const PROFILES = [
  ["AES_CM_128_HMAC_SHA1_80", PROFILE_AES128_CM_SHA1_80],
  ["AEAD_AES_128_GCM", PROFILE_AEAD_AES_128_GCM],
] as const;

let plane: NativePlane;
let nextSsrc = 0x1000;
const clients: Client[] = [];

async function relayLeg(profile: number, options: Parameters<typeof addRelayLeg>[2] = {}): Promise<RelayLeg> {
  const client = await Client.create(profile, nextSsrc++);
  clients.push(client);
  return addRelayLeg(plane, client, options);
}

/** Stat `name` of a leg. */
function stat(relay: RelayLeg, name: keyof typeof NativeLegStat): number {
  return relay.leg.stats[NativeLegStat[name]]!;
}

after(() => {
  for (const client of clients) client.close();
  closeRelaySockets();
});

// Every case twice: the media threads batching through io_uring (the default, where the kernel
// allows it, as it does here), and making one system call per socket (the fallback).
for (const ioUring of [true, false])
  describe(`the native data plane forwarding SRTP (${ioUring ? "io_uring" : "plain system calls"})`, () => {
    before(() => {
      plane = nativePlane().createPlane(2, { ioUring });
      assert.equal(plane.batching, ioUring ? "io_uring" : "io_uring turned off");
    });

    after(() => plane.close());

    for (const [name, profile] of PROFILES) {
      it(`forwards ${name} RTP to the slot of another leg: same payload, the slot's SSRC and payload type, numbering continuous across a wrap`, async () => {
        const a = await relayLeg(profile);
        const b = await relayLeg(profile);
        b.leg.route(0, a.leg);
        await talk(a.client, a.socket, "a", 65530, 7000, 12, { marker: true });
        await waitFor(() => b.client.received.length >= 12, "12 packets at b");
        const got = b.client.received;
        assert.equal(b.client.authFailures, 0);
        got.forEach((packet, i) => {
          assert.equal(packet.payload.toString(), payloadOf("a", i).toString());
          assert.equal(packet.ssrc, b.slotSsrcs[0]);
          assert.equal(packet.payloadType, OPUS);
          assert.equal(packet.seq, (65530 + i) & 0xffff);
          assert.equal(packet.roc, 65530 + i > 0xffff ? 1 : 0);
          assert.equal(packet.timestamp, 7000 + i * 960);
          assert.equal(packet.marker, true);
        });
        // Nothing goes back to the sender, and werift never saw the RTP.
        await sleep(50);
        assert.equal(a.client.received.length, 0);
        assert.equal(a.datagrams.length, 0);
      });
    }

    it("drops a replayed packet (dropReplay), one behind the replay window (dropTooOld), a tampered one (dropAuthFailed) and an undeclared SSRC (dropUnknownSsrc)", async () => {
      const a = await relayLeg(PROFILE_AEAD_AES_128_GCM);
      const b = await relayLeg(PROFILE_AEAD_AES_128_GCM);
      b.leg.route(0, a.leg);
      const first = a.client.send(a.socket, 1000, 0, payloadOf("a", 0));
      await waitFor(() => b.client.received.length === 1, "the first packet");
      a.client.sendRaw(a.socket, first);
      await waitFor(() => stat(a, "dropReplay") === 1, "a replay counted");
      a.client.send(a.socket, 1000 - 200, 0, payloadOf("a", 1));
      await waitFor(() => stat(a, "dropTooOld") === 1, "a packet behind the window counted");
      const tampered = a.client.packet(1001, 960, payloadOf("a", 2));
      tampered[20]! ^= 1;
      a.client.sendRaw(a.socket, tampered);
      await waitFor(() => stat(a, "dropAuthFailed") === 1, "a tampered packet counted");
      a.client.send(a.socket, 1002, 1920, payloadOf("a", 3), { ssrc: 0xdeadbeef });
      await waitFor(() => stat(a, "dropUnknownSsrc") === 1, "an undeclared SSRC counted");
      // The tampered packet's sequence number is still fresh: the forged copy did not move the window.
      a.client.send(a.socket, 1001, 960, payloadOf("a", 4));
      await waitFor(() => b.client.received.length === 2, "the genuine packet");
      await sleep(50);
      assert.deepEqual(
        b.client.received.map((p) => p.payload.toString()),
        [payloadOf("a", 0).toString(), payloadOf("a", 4).toString()],
      );
      assert.equal(stat(a, "packetsIn"), 2);
      assert.equal(a.datagrams.length, 0);
    });

    it("hands RTP from another address, STUN, DTLS and RTCP to JavaScript unchanged, forwards none of them, and drops junk from anywhere", async () => {
      const a = await relayLeg(PROFILE_AES128_CM_SHA1_80);
      const b = await relayLeg(PROFILE_AES128_CM_SHA1_80);
      b.leg.route(0, a.leg);
      const stranger = await bound();
      try {
        const spoofed = a.client.packet(1, 0, payloadOf("spoof", 0));
        a.client.sendRaw(a.socket, spoofed, stranger);
        const stun = Buffer.concat([
          Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]),
          Buffer.alloc(12, 7),
        ]);
        const dtls = Buffer.from([22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0]);
        const rtcp = Buffer.from([0x80, 200, 0, 6, ...Buffer.alloc(24, 1)]);
        for (const datagram of [stun, dtls, rtcp]) a.client.sendRaw(a.socket, datagram);
        // Junk (no STUN, DTLS, RTP or RTCP first byte; RTP shorter than any header) is dropped, from anywhere.
        a.client.sendRaw(a.socket, Buffer.from([0x50, 1, 2, 3]));
        a.client.sendRaw(a.socket, Buffer.from([0x80, 0, 0, 1]), stranger);
        await waitFor(
          () => a.datagrams.length === 4 && stat(a, "dropMalformed") === 2,
          "four datagrams for JS, two junk",
        );
        const fromStranger = a.datagrams.find((d) => d.port === stranger.address().port);
        assert.deepEqual(fromStranger?.data, spoofed);
        assert.equal(fromStranger?.address, IP);
        const fromClient = a.datagrams.filter((d) => d.port === a.client.port).map((d) => d.data);
        assert.deepEqual(fromClient, [stun, dtls, rtcp]);
        assert.equal(stat(a, "datagramsToJs"), 4);
        await sleep(50);
        assert.equal(b.client.received.length, 0);
        assert.equal(stat(a, "packetsIn"), 0);
      } finally {
        stranger.close();
      }
    });

    it("keeps a slot's numbering continuous across a source switch, its timestamp advanced by the real gap", async () => {
      const a = await relayLeg(PROFILE_AEAD_AES_128_GCM);
      const c = await relayLeg(PROFILE_AEAD_AES_128_GCM);
      const b = await relayLeg(PROFILE_AEAD_AES_128_GCM);
      b.leg.route(0, a.leg);
      await talk(a.client, a.socket, "a", 100, 5000, 10);
      await waitFor(() => b.client.received.length === 10, "a's packets at b");
      b.leg.route(0, c.leg);
      const switchedAt = Date.now();
      await sleep(200);
      // a is no longer heard on the slot; c's own numbers mean nothing to b's client.
      await talk(a.client, a.socket, "a-late", 110, 5000 + 10 * 960, 3);
      await talk(c.client, c.socket, "c", 40000, 123456789, 10);
      await waitFor(() => b.client.received.length === 20, "c's packets at b");
      const got = b.client.received;
      assert.ok(got.slice(10).every((p, i) => p.payload.toString() === payloadOf("c", i).toString()));
      for (let i = 1; i < got.length; i++) assert.equal(got[i]!.seq, (got[0]!.seq + i) & 0xffff);
      assert.ok(got.every((p) => p.ssrc === b.slotSsrcs[0] && p.roc === 0));
      const gapTicks = (got[10]!.timestamp - got[9]!.timestamp) >>> 0;
      const gapMs = got[10]!.at - switchedAt;
      assert.ok(gapTicks >= 200 * 48 - 960 && gapTicks <= (gapMs + 100) * 48, `a gap of ${gapTicks} ticks`);
      for (let i = 11; i < got.length; i++) assert.equal((got[i]!.timestamp - got[i - 1]!.timestamp) >>> 0, 960);
    });

    it("starts a slot's first packet at rollover counter 0, whatever the source's", async () => {
      const a = await relayLeg(PROFILE_AES128_CM_SHA1_80);
      const b = await relayLeg(PROFILE_AES128_CM_SHA1_80);
      // a's stream wraps (its rollover counter becomes 1) before b hears it.
      await talk(a.client, a.socket, "a-early", 65534, 0, 4);
      await waitFor(() => stat(a, "packetsIn") === 4, "a's early packets");
      b.leg.route(0, a.leg);
      await talk(a.client, a.socket, "a", 2, 4 * 960, 5, { roc: 1 });
      await waitFor(() => b.client.received.length === 5, "a's packets at b");
      const got = b.client.received;
      assert.deepEqual(
        got.map((p) => [p.roc, p.seq]),
        [2, 3, 4, 5, 6].map((seq) => [0, seq]),
      );
      assert.equal(b.client.authFailures, 0);
    });

    it("fans one source out to three legs, and a leg hears two sources on two slots", async () => {
      const a = await relayLeg(PROFILE_AEAD_AES_128_GCM);
      const c = await relayLeg(PROFILE_AEAD_AES_128_GCM);
      const listeners = [
        await relayLeg(PROFILE_AEAD_AES_128_GCM, { slotCount: 2 }),
        await relayLeg(PROFILE_AEAD_AES_128_GCM),
        await relayLeg(PROFILE_AEAD_AES_128_GCM),
      ];
      for (const listener of listeners) listener.leg.route(0, a.leg);
      listeners[0]!.leg.route(1, c.leg);
      await Promise.all([talk(a.client, a.socket, "a", 10, 0, 10), talk(c.client, c.socket, "c", 20, 0, 10)]);
      await waitFor(() => listeners.every((l, i) => l.client.received.length === (i === 0 ? 20 : 10)), "every stream");
      for (const listener of listeners) {
        const fromA = listener.client.received.filter((p) => p.ssrc === listener.slotSsrcs[0]);
        assert.deepEqual(
          fromA.map((p) => p.payload.toString()),
          Array.from({ length: 10 }, (_, i) => payloadOf("a", i).toString()),
        );
      }
      const fromC = listeners[0]!.client.received.filter((p) => p.ssrc === listeners[0]!.slotSsrcs[1]);
      assert.equal(fromC.length, 10);
      assert.equal(stat(a, "packetsIn"), 10);
      assert.equal(stat(listeners[0]!, "packetsOut"), 20);
    });

    it("sends nothing while the leg has no ICE consent, and resumes with it", async () => {
      const a = await relayLeg(PROFILE_AES128_CM_SHA1_80);
      const b = await relayLeg(PROFILE_AES128_CM_SHA1_80);
      b.leg.route(0, a.leg);
      b.leg.setCanSend(false);
      await talk(a.client, a.socket, "a", 1, 0, 5);
      await waitFor(() => stat(a, "packetsIn") === 5, "a's packets at the relay");
      await sleep(100);
      assert.equal(b.client.received.length, 0);
      assert.equal(stat(b, "packetsOut"), 0);
      b.leg.setCanSend(true);
      await talk(a.client, a.socket, "a", 6, 5 * 960, 5);
      await waitFor(() => b.client.received.length === 5, "packets after consent");
      const got = b.client.received;
      // The numbering went on while nothing was sent: the client sees the gap as loss.
      assert.deepEqual(
        got.map((p) => p.seq),
        [6, 7, 8, 9, 10],
      );
    });

    it("routes between legs on two threads, both ways at once", async () => {
      const a = await relayLeg(PROFILE_AEAD_AES_128_GCM, { thread: 0 });
      const b = await relayLeg(PROFILE_AEAD_AES_128_GCM, { thread: 1 });
      b.leg.route(0, a.leg);
      a.leg.route(0, b.leg);
      await Promise.all([
        talk(a.client, a.socket, "a", 1, 0, 200, { gapMs: 0 }),
        talk(b.client, b.socket, "b", 1, 0, 200, { gapMs: 0 }),
      ]);
      await waitFor(() => a.client.received.length === 200 && b.client.received.length === 200, "both ways");
      assert.equal(a.client.authFailures + b.client.authFailures, 0);
      assert.deepEqual(
        a.client.received.map((p) => p.seq).sort((x, y) => x - y),
        Array.from({ length: 200 }, (_, i) => i + 1),
      );
      assert.deepEqual(plane.legCounts().length, 2);
    });

    it("reads the RFC 6464 audio level into speaking and loudness, as the JavaScript voice activity does", async () => {
      const a = await relayLeg(PROFILE_AES128_CM_SHA1_80);
      await talk(a.client, a.socket, "loud", 1, 0, 20, { level: 10 });
      await waitFor(() => stat(a, "packetsIn") === 20, "loud packets");
      assert.equal(stat(a, "speaking"), 1);
      let loudness = 0;
      let activity = 0;
      for (let i = 0; i < 20; i++) {
        loudness = loudness * 0.9 + (127 - 10) * 0.1;
        activity = activity * 0.94 + 0.06;
      }
      assert.ok(Math.abs(stat(a, "loudness") - loudness) < 1e-9, `loudness ${stat(a, "loudness")} vs ${loudness}`);
      // Silence after a DTX pause of 800 ms (40 frames skipped): speaking ends at once.
      await talk(a.client, a.socket, "quiet", 21, 19 * 960 + 41 * 960, 1, { level: 127 });
      await waitFor(() => stat(a, "packetsIn") === 21, "a quiet packet");
      assert.equal(stat(a, "speaking"), 0);
      loudness = loudness * 0.9 ** 40 * 0.9;
      assert.ok(Math.abs(stat(a, "loudness") - loudness) < 1e-9);
    });

    it("keeps the counters, reception statistics and slot statistics the operator console and RTCP reports read", async () => {
      const a = await relayLeg(PROFILE_AEAD_AES_128_GCM);
      const b = await relayLeg(PROFILE_AEAD_AES_128_GCM);
      assert.equal(stat(a, "ssrc"), -1);
      b.leg.route(0, a.leg);
      const before = Date.now();
      // 10 packets with 3 lost in the middle (sequence numbers 50..62 without 55, 56, 57).
      for (const seq of [50, 51, 52, 53, 54, 58, 59, 60, 61, 62]) {
        a.client.send(a.socket, seq, seq * 960, payloadOf("a", seq));
        await sleep(2);
      }
      await waitFor(() => b.client.received.length === 10, "a's packets at b");
      const bytes = [50, 51, 52, 53, 54, 58, 59, 60, 61, 62].reduce((sum, seq) => sum + payloadOf("a", seq).length, 0);
      assert.equal(stat(a, "packetsIn"), 10);
      assert.equal(stat(a, "bytesIn"), bytes);
      assert.ok(stat(a, "lastPacketAt") >= before - 5 && stat(a, "lastPacketAt") <= Date.now() + 5);
      assert.equal(stat(a, "ssrc"), a.client.ssrc);
      assert.equal(stat(a, "base"), 50);
      assert.equal(stat(a, "max"), 62);
      assert.equal(stat(a, "received"), 10);
      assert.ok(stat(a, "jitter") > 0);
      assert.equal(stat(b, "packetsOut"), 10);
      assert.equal(stat(b, "bytesOut"), bytes);
      assert.equal(b.leg.stats[slotStat(0, NativeLegStat.SLOT_PACKETS_SENT)], 10);
      assert.equal(b.leg.stats[slotStat(0, NativeLegStat.SLOT_OCTETS_SENT)], bytes);
      assert.equal(b.leg.stats[slotStat(0, NativeLegStat.SLOT_LAST_TIMESTAMP)], 62 * 960);
      assert.equal(b.leg.stats[slotStat(0, NativeLegStat.SLOT_LAST_SENT_AT)], stat(a, "lastPacketAt"));
      for (const name of ["dropReplay", "dropTooOld", "dropAuthFailed", "dropUnknownSsrc", "dropMalformed"] as const) {
        assert.equal(stat(a, name), 0, name);
      }
    });

    it("hands RTP to JavaScript only while asked to, and sends JavaScript's packets on a slot with the same numbering rules", async () => {
      const heard: [number, number, number, number, boolean, string, number][] = [];
      const a = await relayLeg(PROFILE_AES128_CM_SHA1_80, {
        onRtp: (ssrc, roc, seq, timestamp, marker, payload, level) =>
          heard.push([ssrc, roc, seq, timestamp, marker, payload.toString(), level]),
      });
      await talk(a.client, a.socket, "a", 7, 960, 1, { level: 30 });
      await waitFor(() => stat(a, "packetsIn") === 1, "a packet");
      a.leg.setForwardToJs(true);
      await talk(a.client, a.socket, "a", 8, 2 * 960, 1, { level: 30, marker: true });
      await waitFor(() => heard.length === 1, "RTP in JavaScript");
      assert.deepEqual(heard[0], [a.client.ssrc, 0, 8, 2 * 960, true, payloadOf("a", 0).toString(), 30]);
      a.leg.setForwardToJs(false);
      await talk(a.client, a.socket, "a", 9, 3 * 960, 1);
      await waitFor(() => stat(a, "packetsIn") === 3, "a packet");
      await sleep(50);
      assert.equal(heard.length, 1);

      const b = await relayLeg(PROFILE_AES128_CM_SHA1_80);
      b.leg.sendFrom(0, 42, 0x5555, 0, 500, 1000, true, Buffer.from("from js 1"), Date.now());
      b.leg.sendFrom(0, 42, 0x5555, 0, 501, 1960, false, Buffer.from("from js 2"), Date.now());
      await sleep(60);
      b.leg.sendFrom(0, 43, 0x6666, 0, 9000, 777, false, Buffer.from("another source"), Date.now());
      await waitFor(() => b.client.received.length === 3, "JavaScript's packets");
      const got = b.client.received;
      assert.deepEqual(
        got.map((p) => [p.seq, p.payload.toString(), p.marker, p.ssrc === b.slotSsrcs[0]]),
        [
          [500, "from js 1", true, true],
          [501, "from js 2", false, true],
          [502, "another source", false, true],
        ],
      );
      assert.ok((got[2]!.timestamp - got[1]!.timestamp) >>> 0 >= 50 * 48);
    });

    it("follows the remote address to a new pair: RTP from the old one goes to JavaScript", async () => {
      const a = await relayLeg(PROFILE_AEAD_AES_128_GCM);
      const b = await relayLeg(PROFILE_AEAD_AES_128_GCM);
      b.leg.route(0, a.leg);
      a.leg.route(0, b.leg);
      const moved = await bound();
      try {
        const movedPackets: Buffer[] = [];
        moved.on("message", (packet) => movedPackets.push(packet));
        b.leg.setRemote(IP, moved.address().port);
        a.leg.setRemote(IP, moved.address().port);
        await talk(a.client, a.socket, "a", 1, 0, 3);
        await waitFor(() => a.datagrams.length === 3, "RTP from the old address handed to JavaScript");
        a.client.send(a.socket, 4, 0, payloadOf("a", 4), { to: moved });
        await waitFor(() => movedPackets.length === 1, "b's packet at its new address");
        assert.equal(b.client.received.length, 0);
        assert.equal(stat(a, "packetsIn"), 1);
      } finally {
        moved.close();
      }
    });
  });
