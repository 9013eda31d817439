import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  BACKENDS,
  backendUnavailable,
  loggedIn,
  type RawClient,
  registered,
  startTestServer,
  type TestServer,
} from "@parley/testkit";

/** The server of the back-end whose tests run now (the suites run one after the other). */
let t: TestServer;

type CallInfo = {
  callId: string;
  state: string;
  answeredAt: string | null;
  participants: { username: string; state: string; held: boolean; muted: boolean }[];
};
type History = {
  calls: {
    callId: string;
    direction: string;
    outcome: string;
    missed: boolean;
    durationMs: number;
    peer: { username: string };
  }[];
};

let n = 0;
/** A caller and a callee (with `devices` devices), freshly registered. */
async function pair(devices = 1) {
  n += 1;
  const caller = await registered(t.url, `caller${n}`);
  const callee = await registered(t.url, `callee${n}`);
  const calleeDevices: RawClient[] = [callee.client];
  for (let i = 1; i < devices; i++) calleeDevices.push((await loggedIn(t.url, `callee${n}`)).client);
  return { caller, callee, calleeDevices, callerName: `caller${n}`, calleeName: `callee${n}` };
}

async function invite(from: RawClient, to: string): Promise<CallInfo> {
  return (await from.call<{ call: CallInfo }>("call.invite", { to })).call;
}

function errorOf(reply: { ok: boolean }) {
  return reply.ok ? "ok" : (reply as unknown as { error: { code: string } }).error.code;
}

function closeAll(...clients: RawClient[]) {
  for (const c of clients) c.close();
}

// Calls and their history on both back-ends.
for (const backend of BACKENDS) {
  describe(`calls (${backend})`, { skip: backendUnavailable(backend) }, () => {
    before(async () => {
      t = await startTestServer({ backend, ringTimeoutMs: 1500 });
    });
    after(async () => {
      await t.stop();
    });

    it("rings every device of the callee, connects the one that answers and stops the others", async () => {
      const { caller, callee, calleeDevices, calleeName } = await pair(2);
      const [phone, laptop] = calleeDevices as [RawClient, RawClient];
      const call = await invite(caller.client, calleeName);
      assert.equal(call.state, "ringing");
      assert.deepEqual(
        call.participants.map((p) => p.state),
        ["calling", "ringing"],
      );
      const rang = await Promise.all([phone.event("call.incoming"), laptop.event("call.incoming")]);
      for (const r of rang) assert.equal((r.data.call as CallInfo).callId, call.callId);

      const answered = await laptop.call<{ call: CallInfo }>("call.answer", { callId: call.callId });
      assert.equal(answered.call.state, "active");
      assert.ok(answered.call.answeredAt);
      const stopped = await phone.event("call.ended", (d) => d.callId === call.callId);
      assert.equal(stopped.data.reason, "answered_elsewhere");
      const info = await caller.client.event("call.info", (d) => (d.call as CallInfo).state === "active");
      assert.deepEqual(
        (info.data.call as CallInfo).participants.map((p) => p.state),
        ["connected", "connected"],
      );
      // Presence shows both in a call.
      await caller.client.event("presence.changed", (d) => d.userId === callee.userId && d.status === "in-call");
      await phone.event("presence.changed", (d) => d.userId === caller.userId && d.status === "in-call");

      await caller.client.call("call.hangup", { callId: call.callId });
      const ended = await laptop.event("call.ended", (d) => d.callId === call.callId);
      assert.deepEqual([ended.data.reason, ended.data.outcome, ended.data.by], ["hangup", "answered", caller.userId]);
      await caller.client.event("call.ended", (d) => d.callId === call.callId);
      await phone.event("presence.changed", (d) => d.userId === caller.userId && d.status === "available");

      const mine = await caller.client.call<History>("call.history");
      assert.equal(mine.calls[0]?.callId, call.callId);
      assert.equal(mine.calls[0]?.direction, "outgoing");
      assert.equal(mine.calls[0]?.outcome, "answered");
      const theirs = await phone.call<History>("call.history");
      assert.equal(theirs.calls[0]?.direction, "incoming");
      assert.equal(theirs.calls[0]?.missed, false);
      assert.ok((theirs.calls[0]?.durationMs ?? -1) >= 0);
      closeAll(caller.client, phone, laptop);
    });

    it("ends a declined call for the caller and records it as declined, not missed", async () => {
      const { caller, callee, calleeName } = await pair();
      const call = await invite(caller.client, calleeName);
      await callee.client.event("call.incoming");
      await callee.client.call("call.decline", { callId: call.callId });
      const ended = await caller.client.event("call.ended", (d) => d.callId === call.callId);
      assert.deepEqual([ended.data.reason, ended.data.outcome], ["declined", "declined"]);
      const history = await callee.client.call<History>("call.history");
      assert.deepEqual([history.calls[0]?.outcome, history.calls[0]?.missed], ["declined", false]);
      closeAll(caller.client, callee.client);
    });

    it("lets the caller cancel while it rings; the callee sees a missed call", async () => {
      const { caller, callee, calleeName } = await pair();
      const call = await invite(caller.client, calleeName);
      await callee.client.event("call.incoming");
      await caller.client.call("call.hangup", { callId: call.callId });
      const ended = await callee.client.event("call.ended", (d) => d.callId === call.callId);
      assert.deepEqual([ended.data.reason, ended.data.outcome], ["cancelled", "cancelled"]);
      const history = await callee.client.call<History>("call.history");
      assert.deepEqual([history.calls[0]?.outcome, history.calls[0]?.missed], ["cancelled", true]);
      // Answering the cancelled call is refused with a typed error.
      const late = await callee.client.request("call.answer", { callId: call.callId });
      assert.equal(errorOf(late), "CALL_ENDED");
      closeAll(caller.client, callee.client);
    });

    it("ends an unanswered call after the ring timeout as no answer", async () => {
      const { caller, callee, calleeName } = await pair();
      const call = await invite(caller.client, calleeName);
      const ended = await caller.client.event("call.ended", (d) => d.callId === call.callId);
      assert.deepEqual([ended.data.reason, ended.data.outcome], ["no_answer", "no_answer"]);
      await callee.client.event("call.ended", (d) => d.callId === call.callId);
      const history = await callee.client.call<History>("call.history");
      assert.deepEqual([history.calls[0]?.outcome, history.calls[0]?.missed], ["no_answer", true]);
      closeAll(caller.client, callee.client);
    });

    it("answers busy for a do-not-disturb callee and unreachable for an offline one, recording both", async () => {
      const { caller, callee, calleeName } = await pair();
      await callee.client.call("presence.set", { status: "busy" });
      assert.equal(errorOf(await caller.client.request("call.invite", { to: calleeName })), "USER_BUSY");
      const missed = await callee.client.call<History>("call.history");
      assert.deepEqual([missed.calls[0]?.outcome, missed.calls[0]?.missed], ["busy", true]);
      await callee.client.call("presence.set", { status: "available" });
      const offline = await registered(t.url, `offline${n}`);
      offline.client.close();
      await offline.client.closed;
      assert.equal(errorOf(await caller.client.request("call.invite", { to: `offline${n}` })), "USER_OFFLINE");
      const history = await caller.client.call<History>("call.history");
      assert.deepEqual(
        history.calls.map((c) => c.outcome),
        ["unreachable", "busy"],
      );
      closeAll(caller.client, callee.client);
    });

    it("rings a callee who is already in a call as call waiting; answering holds the first call", async () => {
      const { caller, callee, calleeName } = await pair();
      const third = await registered(t.url, `third${n}`);
      const first = await invite(caller.client, calleeName);
      await callee.client.call("call.answer", { callId: first.callId });
      assert.equal(errorOf(await caller.client.request("call.invite", { to: `third${n}` })), "ALREADY_IN_CALL");
      const second = await invite(third.client, calleeName);
      const ring = await callee.client.event("call.incoming", (d) => (d.call as CallInfo).callId === second.callId);
      assert.equal(ring.data.waiting, true);
      await callee.client.call("call.answer", { callId: second.callId });
      // The first call is now on hold by the callee, and the caller is told.
      const held = await caller.client.event("call.info", (d) =>
        (d.call as CallInfo & { participants: { held: boolean }[] }).participants.some((p) => p.held),
      );
      assert.equal((held.data.call as CallInfo).callId, first.callId);
      // Switching back holds the second call.
      const resumed = await callee.client.call<{ call: { participants: { username: string; held: boolean }[] } }>(
        "call.resume",
        { callId: first.callId },
      );
      assert.ok(resumed.call.participants.every((p) => !p.held));
      await third.client.event("call.info", (d) =>
        (d.call as CallInfo & { participants: { username: string; held: boolean }[] }).participants.some(
          (p) => p.username === calleeName && p.held,
        ),
      );
      await callee.client.call("call.hangup", { callId: second.callId });
      await caller.client.call("call.hangup", { callId: first.callId });
      const history = await caller.client.call<History & { calls: { heldMs: number }[] }>("call.history");
      assert.ok((history.calls[0]?.heldMs ?? 0) > 0, "held time recorded");
      closeAll(caller.client, callee.client, third.client);
    });

    it("holds and resumes a call, shows mute to the other side, and refuses hold before the answer", async () => {
      const { caller, callee, calleeName } = await pair();
      const call = await invite(caller.client, calleeName);
      assert.equal(errorOf(await caller.client.request("call.hold", { callId: call.callId })), "CALL_NOT_ACTIVE");
      await callee.client.call("call.answer", { callId: call.callId });
      type Info = { call: { participants: { username: string; held: boolean; muted: boolean }[] } };
      const held = await caller.client.call<Info>("call.hold", { callId: call.callId });
      assert.deepEqual(
        held.call.participants.map((p) => p.held),
        [true, false],
      );
      await callee.client.event("call.info", (d) => (d.call as Info["call"]).participants[0]?.held === true);
      await caller.client.call("call.resume", { callId: call.callId });
      await callee.client.event("call.info", (d) => (d.call as Info["call"]).participants.every((p) => !p.held));
      await callee.client.call("call.mute", { callId: call.callId, muted: true });
      await caller.client.event("call.info", (d) => (d.call as Info["call"]).participants[1]?.muted === true);
      await caller.client.call("call.hangup", { callId: call.callId });
      closeAll(caller.client, callee.client);
    });

    it("refuses calling yourself, an unknown user or a disabled one", async () => {
      const { caller, callee, callerName, calleeName } = await pair();
      assert.equal(errorOf(await caller.client.request("call.invite", { to: callerName })), "CANNOT_CALL_SELF");
      assert.equal(errorOf(await caller.client.request("call.invite", { to: "nobody-at-all" })), "USER_NOT_FOUND");
      await t.server.commands.run(["disable", calleeName]);
      assert.equal(errorOf(await caller.client.request("call.invite", { to: calleeName })), "USER_NOT_FOUND");
      await t.server.commands.run(["enable", calleeName]);
      closeAll(caller.client, callee.client);
    });

    it("lets exactly one of two devices answering at once win", async () => {
      const { caller, calleeDevices, calleeName } = await pair(2);
      const [a, b] = calleeDevices as [RawClient, RawClient];
      const call = await invite(caller.client, calleeName);
      await Promise.all([a.event("call.incoming"), b.event("call.incoming")]);
      const replies = await Promise.all([
        a.request("call.answer", { callId: call.callId }),
        b.request("call.answer", { callId: call.callId }),
      ]);
      assert.deepEqual(replies.map(errorOf).sort(), ["CALL_ALREADY_ANSWERED", "ok"]);
      await caller.client.call("call.hangup", { callId: call.callId });
      closeAll(caller.client, a, b);
    });

    it("refuses call requests from devices that are not part of the call", async () => {
      const { caller, callee, calleeName } = await pair();
      const stranger = await registered(t.url, `stranger${n}`);
      const call = await invite(caller.client, calleeName);
      for (const type of ["call.answer", "call.decline", "call.hangup"]) {
        assert.equal(errorOf(await stranger.client.request(type, { callId: call.callId })), "NOT_IN_CALL", type);
      }
      assert.equal(
        errorOf(await stranger.client.request("call.media", { callId: call.callId, sdp: "v=0 not really sdp" })),
        "NOT_IN_CALL",
      );
      assert.equal(errorOf(await stranger.client.request("call.answer", { callId: "no-such-call" })), "CALL_NOT_FOUND");
      assert.equal(
        errorOf(await caller.client.request("call.media", { callId: call.callId, sdp: "v=0 this is not an offer" })),
        "BAD_PARAMS",
      );
      assert.equal(errorOf(await caller.client.request("call.answer", { callId: call.callId })), "NOT_IN_CALL");
      // Once answered, a stranger still learns nothing about the call's state.
      await callee.client.call("call.answer", { callId: call.callId });
      assert.equal(errorOf(await stranger.client.request("call.answer", { callId: call.callId })), "NOT_IN_CALL");
      assert.equal(errorOf(await caller.client.request("call.decline", { callId: call.callId })), "NOT_IN_CALL");
      await caller.client.call("call.hangup", { callId: call.callId });
      closeAll(caller.client, callee.client, stranger.client);
    });

    it("ends the call for the other side when a participant's connection drops, leaving nothing live", async () => {
      const { caller, callee, calleeName } = await pair();
      const ringing = await invite(caller.client, calleeName);
      await callee.client.event("call.incoming");
      caller.client.close();
      const lost = await callee.client.event("call.ended", (d) => d.callId === ringing.callId);
      assert.deepEqual([lost.data.reason, lost.data.outcome], ["connection_lost", "cancelled"]);

      const again = await loggedIn(t.url, `caller${n}`);
      const active = await invite(again.client, calleeName);
      await callee.client.call("call.answer", { callId: active.callId });
      callee.client.close();
      const dropped = await again.client.event("call.ended", (d) => d.callId === active.callId);
      assert.deepEqual([dropped.data.reason, dropped.data.outcome], ["connection_lost", "answered"]);
      const live = await t.server.commands.run(["calls"]);
      assert.doesNotMatch(live.output, new RegExp(active.callId));
      again.client.close();
    });

    it("records a call whose participant deleted their account during it, keeping the name", async () => {
      const { caller, callee, calleeName } = await pair();
      const call = await invite(caller.client, calleeName);
      await callee.client.call("call.answer", { callId: call.callId });
      await callee.client.call("account.delete", { password: "correct horse battery" });
      const ended = await caller.client.event("call.ended", (d) => d.callId === call.callId);
      assert.equal(ended.data.reason, "connection_lost");
      const history = await caller.client.call<History & { calls: { peer: { userId: number | null } }[] }>(
        "call.history",
      );
      assert.equal(history.calls[0]?.callId, call.callId);
      assert.deepEqual([history.calls[0]?.peer.userId, history.calls[0]?.peer.username], [null, calleeName]);
      closeAll(caller.client, callee.client);
    });

    it("lists live calls for the operator and lets the operator end one", async () => {
      const { caller, callee, callerName, calleeName } = await pair();
      const call = await invite(caller.client, calleeName);
      await callee.client.call("call.answer", { callId: call.callId });
      const live = await t.server.commands.run(["calls"]);
      assert.match(live.output, new RegExp(`${call.callId}\\s+active\\s+${callerName} ${calleeName}\\s+0h00m0\\ds`));
      const ended = await t.server.commands.run(["hangup", call.callId.slice(0, 8)]);
      assert.equal(ended.exitCode, 0, ended.output);
      for (const side of [caller.client, callee.client]) {
        const e = await side.event("call.ended", (d) => d.callId === call.callId);
        assert.deepEqual([e.data.reason, e.data.by], ["operator", null]);
      }
      const audit = await t.server.commands.run(["logs", "5", "--action", "admin.hangup"]);
      assert.match(audit.output, /admin\.hangup/);
      assert.equal((await t.server.commands.run(["hangup", "zzzz"])).exitCode, 1);
      closeAll(caller.client, callee.client);
    });
  });
}
