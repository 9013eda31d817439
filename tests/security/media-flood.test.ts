import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import fs from "node:fs";
import { after, before, describe, it } from "node:test";
import { launchServerProcess, type ServerProcess, serverProcessArgs, tempDir, waitFor } from "@parley/testkit";
import { callBetween, mediaDrops, otherSocket, Phone } from "./media-call.js";

const FLOOD_MS = 10_000;
/** Datagrams per 10 ms tick: 2,500 a second. */
const PER_TICK = 25;

/** Packets lost in `seqs` (16-bit sequence numbers in arrival order): the extended range minus the distinct ones received. */
function lossOf(seqs: readonly number[]): { expected: number; lost: number } {
  if (seqs.length === 0) return { expected: 0, lost: 0 };
  let extended = seqs[0]!;
  let lowest = extended;
  let highest = extended;
  const seen = new Set<number>([extended]);
  for (let i = 1; i < seqs.length; i++) {
    // Unwrap relative to the previous packet (the stream moves by one per packet).
    let delta = (seqs[i]! - (extended & 0xffff)) & 0xffff;
    if (delta >= 0x8000) delta -= 0x10000;
    extended += delta;
    lowest = Math.min(lowest, extended);
    highest = Math.max(highest, extended);
    seen.add(extended);
  }
  const expected = highest - lowest + 1;
  return { expected, lost: expected - seen.size };
}

/** The four kinds of junk: random bytes, and datagrams shaped like RTP/RTCP, STUN and DTLS. */
function junk(kind: number, ssrc: number): Buffer {
  switch (kind) {
    case 0:
      return randomBytes(randomInt(1, 300));
    case 1: {
      // RTP (half of them with the leg's real SSRC) or RTCP, random flags, counts and body.
      const packet = randomBytes(randomInt(8, 200));
      packet[0] = 0x80 | (packet[0]! & 0x3f);
      if (packet.length >= 12 && packet[1]! % 2 === 0) packet.writeUInt32BE(ssrc, 8);
      return packet;
    }
    case 2: {
      // A STUN binding request or response: header with the magic cookie, attributes of random bytes.
      const body = randomBytes(4 * randomInt(0, 30));
      const header = Buffer.alloc(20);
      header.writeUInt16BE([0x0001, 0x0101, 0x0111][randomInt(3)]!, 0);
      header.writeUInt16BE(body.length, 2);
      header.writeUInt32BE(0x2112a442, 4);
      randomBytes(12).copy(header, 8);
      if (body.length >= 4) {
        // USERNAME, MESSAGE-INTEGRITY, ICE-CONTROLLING or USE-CANDIDATE, with a plausible length.
        body.writeUInt16BE([0x0006, 0x0008, 0x802a, 0x0025][randomInt(4)]!, 0);
        body.writeUInt16BE(Math.min(body.length - 4, randomInt(0, 64)), 2);
      }
      return Buffer.concat([header, body]);
    }
    default: {
      // A DTLS 1.2 record: handshake (a ClientHello or anything), alert, change cipher spec or
      // application data, in epoch 0 or 1.
      const body = randomBytes(randomInt(1, 200));
      const header = Buffer.alloc(13);
      header[0] = [20, 21, 22, 23][randomInt(4)]!;
      header.writeUInt16BE(0xfefd, 1);
      header.writeUInt16BE(randomInt(2), 3);
      header.writeUIntBE(randomInt(0, 2 ** 40), 5, 6);
      header.writeUInt16BE(body.length, 11);
      if (header[0] === 22) body[0] = 1; // ClientHello
      return Buffer.concat([header, body]);
    }
  }
}

describe("a junk UDP flood at a live media leg", () => {
  let dir: string;
  let server: ServerProcess;
  const phones: Phone[] = [];
  before(async () => {
    dir = tempDir("parley-flood-");
    server = await launchServerProcess(process.execPath, serverProcessArgs(dir));
  });
  after(async () => {
    for (const phone of phones) phone.close();
    server.child.kill();
    await server.exited;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("keeps the call under 0.1 % loss both ways while random, RTP-, STUN- and DTLS-shaped datagrams hit the leg's port from another address for 10 s, and counts the drops", async (t) => {
    const alice = new Phone(server.url, "alice-flood");
    const bob = new Phone(server.url, "bob-flood");
    phones.push(alice, bob);
    await alice.register();
    await bob.register();
    await callBetween(alice, bob);
    alice.talk(1000);
    bob.talk(440);
    await waitFor(() => bob.received.length >= 25 && alice.received.length >= 25, "audio both ways");

    const ssrc = Number(/^a=ssrc:(\d+) /m.exec(alice.pc.localDescription?.sdp ?? "")?.[1]);
    const target = alice.relayAddress();
    const start = await mediaDrops(server.httpUrl);
    const [bobFrom, aliceFrom] = [bob.received.length, alice.received.length];
    const flooder = await otherSocket();
    const sent = [0, 0, 0, 0];
    const began = performance.now();
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (performance.now() - began >= FLOOD_MS) {
          clearInterval(timer);
          resolve();
          return;
        }
        for (let i = 0; i < PER_TICK; i++) {
          const kind = i % 4;
          sent[kind]!++;
          flooder.send(junk(kind, ssrc), target.port, target.address);
        }
      }, 10);
    });
    // The audio of the flood's last moments still on its way.
    const [bobTo, aliceTo] = [bob.received.length + 10, alice.received.length + 10];
    await waitFor(() => bob.received.length >= bobTo && alice.received.length >= aliceTo, "audio after the flood");
    flooder.close();

    const toBob = lossOf(bob.received.slice(bobFrom));
    const toAlice = lossOf(alice.received.slice(aliceFrom));
    const expected = toBob.expected + toAlice.expected;
    const lost = toBob.lost + toAlice.lost;
    assert.ok(
      toBob.expected >= 400 && toAlice.expected >= 400,
      `10 s of audio each way (${toBob.expected}, ${toAlice.expected})`,
    );
    assert.ok(
      lost / expected < 0.001,
      `lost ${lost} of ${expected} packets (to Bob ${toBob.lost}, to Alice ${toAlice.lost})`,
    );

    const drops = await mediaDrops(server.httpUrl);
    const delta = (reason: string) => (drops[reason] ?? 0) - (start[reason] ?? 0);
    const total = sent.reduce((a, b) => a + b, 0);
    t.diagnostic(
      `junk sent by kind (random, RTP/RTCP, STUN, DTLS): ${sent.join(", ")}; drops: ${JSON.stringify(drops)}`,
    );
    t.diagnostic(`lost to Bob ${toBob.lost} of ${toBob.expected}, to Alice ${toAlice.lost} of ${toAlice.expected}`);
    assert.ok(total >= 10_000, `${total} junk datagrams sent`);
    assert.ok(
      delta("wrong_source") >= sent[1]! * 0.9,
      `RTP and RTCP from the other address dropped: ${delta("wrong_source")} of ${sent[1]}`,
    );
    assert.ok(delta("malformed") > 0, "random bytes that are no protocol dropped as malformed");
    assert.equal(delta("auth_failed") + delta("replay") + delta("unknown_ssrc"), 0, "no junk got as far as SRTP");

    // The server is up and the leg still carries the call.
    const health = await fetch(`${server.httpUrl}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(server.child.exitCode, null);
    assert.equal(alice.pc.connectionState, "connected");
    bob.record();
    await waitFor(() => bob.recorded >= 75, "Bob hearing Alice after the flood");
    const heard = bob.heard(1000);
    assert.ok(Math.abs(heard.dominant - 1000) < 15, `Bob hears ${heard.dominant} Hz`);
    alice.close();
    bob.close();
  });
});
