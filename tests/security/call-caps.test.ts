import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { createPeer, MediaStreamTrack, type RTCPeerConnection, useOPUS } from "@parley/rtc";
import { RawClient, registered, type TestServer, waitFor, withTestServer } from "@parley/testkit";

type Reply = Awaited<ReturnType<RawClient["request"]>>;

const code = (reply: Reply) => (reply.ok ? "ok" : reply.error.code);
const IP = "127.0.0.1";

const peers: RTCPeerConnection[] = [];
after(async () => {
  await Promise.all(peers.map((pc) => pc.close()));
});

/** A real softphone offer: a werift peer on loopback with one sendrecv Opus track, ICE gathered. */
async function offer(): Promise<string> {
  const pc = createPeer({
    address: IP,
    bundlePolicy: "max-bundle",
    audioCodecs: [useOPUS()],
    audioLevel: false,
  });
  peers.push(pc);
  pc.addTransceiver(new MediaStreamTrack({ kind: "audio" }), { direction: "sendrecv" });
  await pc.setLocalDescription(await pc.createOffer());
  await waitFor(() => pc.iceGatheringState === "complete", "ICE gathering");
  return pc.localDescription?.sdp ?? "";
}

/** The relay's live legs, as /metrics reports them. */
async function relayLegs(s: TestServer): Promise<number> {
  const body = await (await fetch(`${s.server.httpUrl}/metrics`)).text();
  const line = body.split("\n").find((l) => l.startsWith("parley_media_legs "));
  return Number(line?.split(" ")[1]);
}

type CallInfo = { callId: string };

/** `caller` calls `callee`, who answers; the caller then holds it (so they may place another). */
async function heldCall(caller: RawClient, callee: RawClient, calleeName: string): Promise<string> {
  const { call } = await caller.call<{ call: CallInfo }>("call.invite", { to: calleeName });
  await callee.event("call.incoming", (d) => (d.call as CallInfo).callId === call.callId);
  await callee.call("call.answer", { callId: call.callId });
  await caller.call("call.hold", { callId: call.callId });
  return call.callId;
}

describe("calls per user", () => {
  it("refuses a sixth concurrent call with TOO_MANY_CALLS when two accounts stack held calls (cap 5)", async () => {
    await withTestServer({ maxCallsPerUser: 5 }, async (s) => {
      const alice = await registered(s.url, "alice");
      const bob = await registered(s.url, "bob");
      const calls: string[] = [];
      for (let i = 0; i < 5; i++) calls.push(await heldCall(alice.client, bob.client, "bob"));
      const incoming = bob.client.events("call.incoming").length;

      const sixth = await alice.client.request("call.invite", { to: "bob" });
      assert.equal(code(sixth), "TOO_MANY_CALLS");
      // The other way round: bob, at the cap too, holds the call he talks in and may not call alice either.
      await bob.client.call("call.hold", { callId: calls[4] });
      assert.equal(code(await bob.client.request("call.invite", { to: "alice" })), "TOO_MANY_CALLS");
      const live = await s.server.operator.calls();
      assert.equal(live.length, 5, "the refused calls were never created");
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(bob.client.events("call.incoming").length, incoming, "nothing rang");

      // Hanging one up makes room for exactly one more.
      await alice.client.call("call.hangup", { callId: calls[0] });
      assert.equal(code(await alice.client.request("call.invite", { to: "bob" })), "ok");
      alice.client.close();
      bob.client.close();
    });
  });

  it("caps calls at 4 per user by default, ringing calls included, and an invitee at the cap is busy", async () => {
    await withTestServer({}, async (s) => {
      assert.equal(s.server.config.maxCallsPerUser, 4);
      const users = await Promise.all(["ann", "ben", "cat", "dan"].map((name) => registered(s.url, name)));
      const [ann, ben, cat, dan] = users.map((u) => u.client) as [RawClient, RawClient, RawClient, RawClient];
      const calls: string[] = [];
      for (let i = 0; i < 4; i++) calls.push(await heldCall(ann, ben, "ben"));
      assert.equal(code(await ann.request("call.invite", { to: "ben" })), "TOO_MANY_CALLS");

      // Ben is at the cap: a third party's call is refused as busy (Cat did nothing wrong).
      const refused = await cat.request("call.invite", { to: "ben" });
      assert.equal(code(refused), "USER_BUSY");

      // A call still ringing counts: with 3 held calls and one ringing, Ben is at the cap again.
      await ann.call("call.hangup", { callId: calls[0] });
      const { call } = await cat.call<{ call: CallInfo }>("call.invite", { to: "ben" });
      await ben.event("call.incoming", (d) => (d.call as CallInfo).callId === call.callId);
      assert.equal(code(await dan.request("call.invite", { to: "ben" })), "USER_BUSY");
      // In a group call the busy invitee is left out; the others still ring.
      const group = await dan.call<{ call: { participants: { username: string; state: string }[] } }>("call.invite", {
        to: ["ben", "ann"],
      });
      const states = Object.fromEntries(group.call.participants.map((p) => [p.username, p.state]));
      assert.equal(states.ben, "left");
      assert.equal(states.ann, "ringing");
      for (const client of [ann, ben, cat, dan]) client.close();
    });
  });
});

describe("media legs", () => {
  it("keeps one leg per device and call: a flood of offers from one device replaces its leg and never holds two", async () => {
    // With room for exactly two legs, a replacement that briefly held two would be refused.
    await withTestServer({ maxMediaLegs: 2 }, async (s) => {
      const alice = await registered(s.url, "alice");
      const bob = await registered(s.url, "bob");
      const { call } = await alice.client.call<{ call: CallInfo }>("call.invite", { to: "bob" });
      await bob.client.event("call.incoming");
      await bob.client.call("call.answer", { callId: call.callId });
      await alice.client.call("call.media", { callId: call.callId, sdp: await offer() });
      await bob.client.call("call.media", { callId: call.callId, sdp: await offer() });
      assert.equal(await relayLegs(s), 2);

      const offers = await Promise.all(Array.from({ length: 6 }, () => offer()));
      const replies = await Promise.all(
        offers.map((sdp) => bob.client.request("call.media", { callId: call.callId, sdp })),
      );
      assert.deepEqual(replies.map(code), Array(6).fill("ok"));
      assert.equal(await relayLegs(s), 2);
      assert.equal((await s.server.operator.calls())[0]?.legs.length, 2);

      // A bad offer is refused and the device keeps the leg it has.
      const bad = await bob.client.request("call.media", { callId: call.callId, sdp: "v=0\r\nm=video 9 UDP 96\r\n" });
      assert.equal(code(bad), "BAD_PARAMS");
      assert.equal(await relayLegs(s), 2);
      alice.client.close();
      bob.client.close();
    });
  });

  it("refuses legs with MEDIA_CAPACITY at the leg cap, before the relay runs out of ports", async (t) => {
    // Below Linux's ephemeral range (32768-60999): no socket of another test bound to port 0 can
    // take one of these 20 ports between werift's probe and its bind.
    const ports = { portMin: 31100, portMax: 31119 };
    const limits = { max: 4000, perAddress: 250, loginTimeoutMs: 30_000, devicesPerUser: 20, anonymousPerSecond: 300 };
    await withTestServer({ media: { ip: IP, ...ports }, connectionLimits: limits }, async (s) => {
      const cap = s.server.config.maxMediaLegs;
      assert.ok(cap < 20, `the default leg cap (${cap}) leaves ports free in a 20-port range`);
      const alice = await registered(s.url, "alice");
      const bob = await registered(s.url, "bob");
      const devices = [bob.client];
      while (devices.length < cap) {
        const device = await RawClient.greeted(s.url);
        await device.call("auth.resume", { token: bob.token });
        devices.push(device);
      }
      const { call } = await alice.client.call<{ call: CallInfo }>("call.invite", { to: "bob" });
      await Promise.all(devices.map((device) => device.event("call.incoming")));

      // Alice and every ringing device of Bob's offer at once: one more leg than the cap.
      const offers = await Promise.all(Array.from({ length: cap + 1 }, () => offer()));
      const askers = [alice.client, ...devices];
      const replies = await Promise.all(
        askers.map((client, i) => client.request("call.media", { callId: call.callId, sdp: offers[i] })),
      );
      const codes = replies.map(code);
      // Why legs failed, from the replies and the server's log.
      const why = () =>
        [
          codes.join(","),
          ...replies.flatMap((r) => (r.ok ? [] : [`${r.error.code}: ${r.error.message}`])),
          ...fs
            .readFileSync(path.join(s.dataDir, "parley.log"), "utf8")
            .split("\n")
            .filter((l) => l.includes("media leg")),
        ].join("\n");
      // A leg that failed to set up for another reason than the cap (seen once on a loaded CI
      // machine) is reported and asked for again: the cap is what this test is about.
      if (codes.includes("MEDIA_FAILED")) {
        t.diagnostic(`a leg failed to set up:\n${why()}`);
        for (const [i, c] of codes.entries()) {
          if (c !== "MEDIA_FAILED") continue;
          replies[i] = await askers[i]!.request("call.media", { callId: call.callId, sdp: await offer() });
          codes[i] = code(replies[i]!);
        }
      }
      assert.equal(codes.filter((c) => c === "ok").length, cap, why());
      assert.equal(codes.filter((c) => c === "MEDIA_CAPACITY").length, 1, why());
      assert.equal(await relayLegs(s), cap);
      const log = fs.readFileSync(path.join(s.dataDir, "parley.log"), "utf8");
      assert.ok(!log.includes("no free UDP port"), "the relay never ran out of ports");

      // Bob answers on one device: the others stop ringing and their legs close, making room.
      const answering = devices[codes.slice(1).indexOf("ok")]!;
      await answering.call("call.answer", { callId: call.callId });
      await waitFor(async () => (await relayLegs(s)) === 2, "the other devices' legs closed");
      assert.equal(code(await alice.client.request("call.media", { callId: call.callId, sdp: await offer() })), "ok");
      for (const device of devices) device.close();
      alice.client.close();
    });
  });
});
