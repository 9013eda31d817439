import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
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

const PROFILES = [
  ["AEAD_AES_128_GCM", AEAD_AES_128_GCM],
  ["AES_CM_128_HMAC_SHA1_80", AES_CM_128_HMAC_SHA1_80],
] as const;
/** Packets captured and replayed per attack: more than the window, so some are in it and some behind it. */
const CAPTURED = 150;

/** What the server logs when a leg moves to each data plane (werift's own path: nothing). */
const PLANE_LOG = { native: /media leg on the native data plane/, js: /media leg on the fast data plane/ } as const;

for (const plane of ["native", "js", "werift"] as const) {
  describe(`replayed SRTP on a live call through a real server (${plane} data plane)`, () => {
    let dir: string;
    let server: ServerProcess;
    const phones: Phone[] = [];
    before(async () => {
      dir = tempDir("parley-replay-");
      server = await launchServerProcess(process.execPath, serverProcessArgs(dir), {
        env: { ...process.env, PARLEY_MEDIA_DATA_PLANE: plane },
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
        for (const [name, pattern] of Object.entries(PLANE_LOG)) {
          assert.equal(pattern.test(log), name === plane, `the legs ran on the ${plane} data plane (${name}?)`);
        }
        alice.close();
        bob.close();
      });
    }
  });
}
