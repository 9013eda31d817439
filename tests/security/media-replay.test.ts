import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { packetIndex, REPLAY_WINDOW_SIZE, ReplayVerdict, ReplayWindow, RocTracker } from "@parley/rtc";
import { launchServerProcess, type ServerProcess, serverProcessArgs, tempDir, waitFor } from "@parley/testkit";
import {
  AEAD_AES_128_GCM,
  AES_CM_128_HMAC_SHA1_80,
  callBetween,
  duplicates,
  mediaDrops,
  otherSocket,
  Phone,
  sendAll,
} from "./media-call.js";

const { FRESH, REPLAY, TOO_OLD } = ReplayVerdict;

/** Checks `index` and, when fresh, accepts it (as the relay does once the packet authenticated). */
function receive(window: ReplayWindow, index: number): number {
  const verdict = window.check(index);
  if (verdict === FRESH) window.accept(index);
  return verdict;
}

describe("the SRTP replay window (RFC 3711 3.3.2)", () => {
  it("accepts each packet index once and calls the second copy a replay", () => {
    const window = new ReplayWindow();
    assert.equal(receive(window, 1000), FRESH);
    assert.equal(receive(window, 1001), FRESH);
    assert.equal(receive(window, 1000), REPLAY);
    assert.equal(receive(window, 1001), REPLAY);
    assert.equal(window.highest, 1001);
  });

  it("accepts reordered packets within the window once, and leaves the window alone until a packet is accepted", () => {
    const window = new ReplayWindow();
    receive(window, 5000);
    assert.equal(window.check(4990), FRESH, "an earlier packet not seen yet");
    assert.equal(window.check(4990), FRESH, "check alone records nothing (a forged packet must not move the window)");
    assert.equal(window.check(6000), FRESH);
    assert.equal(window.highest, 5000, "nor does a check of a later index");
    assert.equal(receive(window, 4990), FRESH);
    assert.equal(receive(window, 4990), REPLAY);
    assert.equal(receive(window, 5002), FRESH, "5001 skipped (lost)");
    assert.equal(receive(window, 5001), FRESH, "and arriving late");
    assert.equal(receive(window, 5001), REPLAY);
  });

  it(`remembers ${REPLAY_WINDOW_SIZE} indexes: 127 behind the highest is still judged, 128 behind is too old`, () => {
    assert.ok(REPLAY_WINDOW_SIZE >= 128);
    const window = new ReplayWindow();
    for (let index = 10_000; index <= 10_300; index++) receive(window, index);
    assert.equal(window.check(10_300 - 127), REPLAY, "the window's oldest slot still holds its packet");
    assert.equal(window.check(10_300 - 128), TOO_OLD);
    assert.equal(window.check(0), TOO_OLD);

    const gaps = new ReplayWindow();
    receive(gaps, 20_000);
    receive(gaps, 20_000 + 127);
    assert.equal(receive(gaps, 20_000), REPLAY, "the first packet, now at the window's edge");
    assert.equal(receive(gaps, 20_001), FRESH, "a lost packet at the edge still gets in once");
    assert.equal(receive(gaps, 20_001), REPLAY);
    receive(gaps, 20_000 + 128);
    assert.equal(gaps.check(20_000), TOO_OLD, "one step on, the first packet falls out");
    assert.equal(gaps.check(20_001), REPLAY);
  });

  it("forgets nothing and mixes nothing up when the window moves a little at a time, past slots reused by older indexes", () => {
    const window = new ReplayWindow();
    // Every other index arrives; the ring's slots are reused many times over.
    for (let index = 0; index < 2000; index += 2) assert.equal(receive(window, index), FRESH);
    for (let index = 1998 - 126; index <= 1998; index++) {
      assert.equal(window.check(index), index % 2 === 0 ? REPLAY : FRESH, `index ${index}`);
    }
  });

  it("keeps working across a sequence number wrap (the index is ROC * 65536 + SEQ)", () => {
    const rocs = new RocTracker();
    const window = new ReplayWindow();
    const indexOf = (seq: number) => packetIndex(rocs.guess(seq), seq);
    const arrive = (seq: number) => {
      const roc = rocs.guess(seq);
      const verdict = receive(window, packetIndex(roc, seq));
      if (verdict === FRESH) rocs.accept(seq, roc);
      return verdict;
    };
    for (let seq = 65_500; seq <= 65_535; seq++) assert.equal(arrive(seq), FRESH);
    for (let seq = 0; seq < 20; seq++) assert.equal(arrive(seq), FRESH);
    assert.equal(window.highest, 65_536 + 19);
    assert.equal(indexOf(65_535), 65_535, "a packet from before the wrap keeps its rollover counter");
    assert.equal(arrive(65_535), REPLAY, "a replay from before the wrap");
    assert.equal(arrive(3), REPLAY, "a replay from after it");
    assert.equal(arrive(20), FRESH);
  });

  it("starts over after a far jump ahead: all it knew is now too old, the indexes skipped are not", () => {
    const window = new ReplayWindow();
    for (let index = 100; index < 200; index++) receive(window, index);
    assert.equal(receive(window, 30_000), FRESH);
    assert.equal(window.check(199), TOO_OLD);
    assert.equal(window.check(30_000 - 1), FRESH, "a never-seen index just behind the jump");
    assert.equal(receive(window, 30_000), REPLAY);
    // 48-bit indexes: past 2^32 the slot arithmetic still holds.
    const big = 2 ** 47 + 12_345;
    assert.equal(receive(window, big), FRESH);
    assert.equal(receive(window, big - 5), FRESH);
    assert.equal(receive(window, big - 5), REPLAY);
    assert.equal(receive(window, big), REPLAY);
    assert.equal(window.check(big - 128), TOO_OLD);
  });
});

const PROFILES = [
  ["AEAD_AES_128_GCM", AEAD_AES_128_GCM],
  ["AES_CM_128_HMAC_SHA1_80", AES_CM_128_HMAC_SHA1_80],
] as const;
/** Packets captured and replayed per attack: more than the window, so some are in it and some behind it. */
const CAPTURED = 150;

for (const plane of ["fast", "werift"] as const) {
  describe(`replayed SRTP on a live call through a real server (${plane} data plane)`, () => {
    let dir: string;
    let server: ServerProcess;
    const phones: Phone[] = [];
    before(async () => {
      dir = tempDir("parley-replay-");
      server = await launchServerProcess(process.execPath, serverProcessArgs(dir), {
        env: { ...process.env, PARLEY_MEDIA_DATA_PLANE: plane === "werift" ? "werift" : "fast" },
      });
    });
    after(async () => {
      for (const phone of phones) phone.close();
      server.child.kill();
      await server.exited;
      fs.rmSync(dir, { recursive: true, force: true });
    });

    for (const [profileName, profile] of PROFILES) {
      it(`drops Alice's captured packets re-sent from her own socket (replay, too old) and from another socket (wrong source), and the call's audio goes on (${profileName})`, async () => {
        const tag = `${plane}-${profile}`;
        const alice = new Phone(server.url, `alice-${tag}`, profile);
        const bob = new Phone(server.url, `bob-${tag}`, profile);
        phones.push(alice, bob);
        await alice.register();
        await bob.register();
        await callBetween(alice, bob);
        assert.equal(alice.srtpProfile(), profile);
        alice.talk(1000);
        bob.talk(440);
        await waitFor(() => bob.received.length >= 25, "Bob hearing Alice");

        // An eavesdropper's capture: Alice's SRTP as it leaves her socket.
        const captured = alice.capture();
        await waitFor(() => captured.length >= CAPTURED, `${CAPTURED} of Alice's packets captured`, {
          timeoutMs: 15_000,
        });
        alice.stopCapture();
        const packets = captured.slice(0, CAPTURED);
        const relay = alice.relayAddress();
        const start = await mediaDrops(server.httpUrl);
        const grown = async (reasons: string[]) => {
          const now = await mediaDrops(server.httpUrl);
          return reasons.reduce((n, reason) => n + (now[reason] ?? 0) - (start[reason] ?? 0), 0);
        };

        // (a) From Alice's own address and port: what the relay took from her already.
        await sendAll(alice.socket(), packets, relay);
        await waitFor(
          async () => (await grown(["replay", "too_old"])) >= CAPTURED || duplicates(bob.received).length > 0,
          "the replays dropped, or reaching Bob",
        );
        assert.deepEqual(duplicates(bob.received), [], "no replayed packet reached Bob");
        // (b) From anywhere else on the network.
        const stranger = await otherSocket();
        await sendAll(stranger, packets, relay);
        stranger.close();
        await waitFor(
          async () => (await grown(["wrong_source"])) >= CAPTURED || duplicates(bob.received).length > 0,
          "the foreign packets dropped, or reaching Bob",
        );
        assert.deepEqual(duplicates(bob.received), [], "no packet from the other socket reached Bob");

        const drops = await mediaDrops(server.httpUrl);
        const delta = (reason: string) => (drops[reason] ?? 0) - (start[reason] ?? 0);
        assert.equal(delta("replay") + delta("too_old"), CAPTURED, "each replay from Alice's socket dropped once");
        assert.ok(delta("replay") > 0, "the newest ones as replays (within the window)");
        assert.ok(delta("too_old") > 0, "the oldest ones as too old (behind the window)");
        assert.equal(delta("wrong_source"), CAPTURED, "each packet from the other socket dropped");
        assert.equal(delta("auth_failed"), 0, "none of them was even decrypted");

        // Bob's call goes on, and nothing replayed reached him: the relay would forward a replay
        // with the sequence number it gave the original.
        bob.record();
        await waitFor(() => bob.recorded >= 100, "Bob hearing two more seconds of Alice", { timeoutMs: 15_000 });
        assert.deepEqual(duplicates(bob.received), [], "no packet reached Bob twice");
        const heard = bob.heard(1000);
        assert.ok(Math.abs(heard.dominant - 1000) < 15, `Bob hears ${heard.dominant} Hz after the attack`);
        assert.ok(heard.level > 0.05, `level of Alice's tone ${heard.level}`);

        const log = fs.readFileSync(path.join(dir, "parley.log"), "utf8");
        assert.equal(/fast data plane/.test(log), plane === "fast", `the legs ran on the ${plane} data plane`);
        alice.close();
        bob.close();
      });
    }
  });
}
