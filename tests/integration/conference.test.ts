import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type RawClient, registered, startTestServer, type TestServer } from "@parley/testkit";

let t: TestServer;
before(async () => {
  // A small maximum, so "full" is reachable with a few users.
  t = await startTestServer({ ringTimeoutMs: 1500, maxConferenceSize: 4 });
});
after(async () => {
  await t.stop();
});

type Participant = { userId: number; username: string; role: string; state: string; held: boolean; speaking: boolean };
type CallInfo = {
  callId: string;
  state: string;
  participants: Participant[];
  conference: boolean;
  maxParticipants: number;
};
type HistoryEntry = {
  callId: string;
  direction: string;
  outcome: string;
  missed: boolean;
  conference: boolean;
  peer: { username: string };
  participants: { username: string }[];
};

type User = { client: RawClient; userId: number; name: string };

let n = 0;
/** `count` freshly registered users, connected. */
async function users(count: number): Promise<User[]> {
  n += 1;
  const made: User[] = [];
  for (let i = 0; i < count; i++) {
    const name = `conf${n}-${String.fromCharCode(97 + i)}`;
    const { client, userId } = await registered(t.url, name);
    made.push({ client, userId, name });
  }
  return made;
}

function errorOf(reply: { ok: boolean }) {
  return reply.ok ? "ok" : (reply as unknown as { error: { code: string } }).error.code;
}

function states(info: CallInfo): Record<string, string> {
  return Object.fromEntries(info.participants.map((p) => [p.username, p.state]));
}

/** Waits for a `call.info` on `client` that satisfies `match`. */
async function infoWhere(
  client: RawClient,
  callId: string,
  match: (info: CallInfo) => boolean,
  from = 0,
): Promise<CallInfo> {
  const event = await client.event(
    "call.info",
    (d) => {
      const info = d.call as CallInfo;
      return info.callId === callId && match(info);
    },
    from,
  );
  return event.data.call as CallInfo;
}

async function history(client: RawClient): Promise<HistoryEntry[]> {
  return (await client.call<{ calls: HistoryEntry[] }>("call.history")).calls;
}

function closeAll(list: User[]) {
  for (const u of list) u.client.close();
}

describe("conference calls", () => {
  it("rings everyone of a group call; one declining leaves the others talking; it ends when one remains", async () => {
    const group = await users(3);
    const [a, b, c] = group as [User, User, User];
    const { call } = await a.client.call<{ call: CallInfo }>("call.invite", { to: [b.name, c.name] });
    assert.equal(call.conference, true);
    assert.equal(call.maxParticipants, 4);
    assert.deepEqual(states(call), { [a.name]: "calling", [b.name]: "ringing", [c.name]: "ringing" });
    for (const u of [b, c]) {
      const rang = await u.client.event("call.incoming");
      assert.equal((rang.data.call as CallInfo).callId, call.callId);
    }

    await b.client.call("call.answer", { callId: call.callId });
    const active = await infoWhere(a.client, call.callId, (i) => i.state === "active");
    assert.deepEqual(states(active), { [a.name]: "connected", [b.name]: "connected", [c.name]: "ringing" });

    // C declines: only C's call ends; A and B go on.
    await c.client.call("call.decline", { callId: call.callId });
    const cEnded = await c.client.event("call.ended", (d) => d.callId === call.callId);
    assert.deepEqual([cEnded.data.reason, cEnded.data.outcome], ["declined", "declined"]);
    const afterDecline = await infoWhere(b.client, call.callId, (i) => states(i)[c.name] === "left");
    assert.equal(afterDecline.state, "active");
    assert.equal(b.client.events("call.ended").length, 0);

    // A leaves: B alone, so the call ends for B.
    await a.client.call("call.hangup", { callId: call.callId });
    const bEnded = await b.client.event("call.ended", (d) => d.callId === call.callId);
    assert.deepEqual([bEnded.data.reason, bEnded.data.outcome, bEnded.data.by], ["hangup", "answered", a.userId]);

    const aHistory = (await history(a.client))[0]!;
    assert.deepEqual(
      [aHistory.callId, aHistory.direction, aHistory.outcome, aHistory.conference],
      [call.callId, "outgoing", "answered", true],
    );
    assert.deepEqual(
      aHistory.participants.map((p) => p.username),
      [b.name, c.name],
    );
    const cHistory = (await history(c.client))[0]!;
    assert.deepEqual([cHistory.outcome, cHistory.missed, cHistory.peer.username], ["declined", false, a.name]);
    assert.deepEqual(
      cHistory.participants.map((p) => p.username),
      [a.name, b.name],
    );
    closeAll(group);
  });

  it("keeps a conference going while two remain, and records who missed it", async () => {
    const group = await users(4);
    const [a, b, c, d] = group as [User, User, User, User];
    const { call } = await a.client.call<{ call: CallInfo }>("call.invite", { to: [b.name, c.name, d.name] });
    for (const u of [b, c]) {
      await u.client.event("call.incoming");
      await u.client.call("call.answer", { callId: call.callId });
    }
    // D never answers: its ring times out (1.5 s) and only D's call ends.
    const dEnded = await d.client.event("call.ended", (e) => e.callId === call.callId);
    assert.equal(dEnded.data.reason, "no_answer");
    await infoWhere(a.client, call.callId, (i) => states(i)[d.name] === "left");

    await b.client.call("call.hangup", { callId: call.callId });
    const afterB = await infoWhere(c.client, call.callId, (i) => states(i)[b.name] === "left");
    assert.equal(afterB.state, "active", "A and C still talk");
    await c.client.call("call.hangup", { callId: call.callId });
    const aEnded = await a.client.event("call.ended", (e) => e.callId === call.callId);
    assert.deepEqual([aEnded.data.reason, aEnded.data.by], ["hangup", c.userId]);

    const dHistory = (await history(d.client))[0]!;
    assert.deepEqual([dHistory.outcome, dHistory.missed, dHistory.conference], ["no_answer", true, true]);
    const bHistory = (await history(b.client))[0]!;
    assert.deepEqual([bHistory.outcome, bHistory.missed], ["answered", false]);
    closeAll(group);
  });

  it("adds a participant to a running 1:1 call, with typed errors for bad additions", async () => {
    const group = await users(5);
    const [a, b, c, d, e] = group as [User, User, User, User, User];
    const { call } = await a.client.call<{ call: CallInfo }>("call.invite", { to: b.name });
    assert.equal(call.conference, false);
    await b.client.event("call.incoming");
    await b.client.call("call.answer", { callId: call.callId });

    // Bad additions change nothing.
    assert.equal(
      errorOf(await a.client.request("call.add", { callId: call.callId, to: b.name })),
      "ALREADY_PARTICIPANT",
    );
    assert.equal(errorOf(await a.client.request("call.add", { callId: call.callId, to: a.name })), "CANNOT_CALL_SELF");
    assert.equal(
      errorOf(await a.client.request("call.add", { callId: call.callId, to: "nobody-here" })),
      "USER_NOT_FOUND",
    );
    assert.equal(errorOf(await c.client.request("call.add", { callId: call.callId, to: d.name })), "NOT_IN_CALL");
    assert.equal(errorOf(await a.client.request("call.add", { callId: "no-such-call", to: c.name })), "CALL_NOT_FOUND");
    assert.equal(errorOf(await a.client.request("call.add", { callId: call.callId, to: ["x"] })), "BAD_PARAMS");
    await t.server.commands.run(["kick", e.name]);
    assert.equal(errorOf(await a.client.request("call.add", { callId: call.callId, to: e.name })), "USER_OFFLINE");
    await d.client.call("presence.set", { status: "busy" });
    assert.equal(errorOf(await a.client.request("call.add", { callId: call.callId, to: d.name })), "USER_BUSY");
    await d.client.call("presence.set", { status: "available" });
    assert.equal(c.client.events("call.incoming").length, 0);

    // B (not only the caller) adds C: C rings, everyone sees a conference.
    const added = await b.client.call<{ call: CallInfo }>("call.add", { callId: call.callId, to: c.name });
    assert.equal(added.call.conference, true);
    const rang = await c.client.event("call.incoming");
    assert.equal((rang.data.call as CallInfo).conference, true);
    await infoWhere(a.client, call.callId, (i) => i.conference && states(i)[c.name] === "ringing");
    await c.client.call("call.answer", { callId: call.callId });
    await infoWhere(a.client, call.callId, (i) => states(i)[c.name] === "connected");

    // With D the call reaches the maximum (4); one more is refused. (The fifth user registers
    // first: D rings only 1.5 s, less than a password hash may wait on a loaded machine.)
    const again = await registered(t.url, `${e.name}-2`);
    await a.client.call("call.add", { callId: call.callId, to: d.name });
    await d.client.event("call.incoming");
    assert.equal(
      errorOf(await a.client.request("call.add", { callId: call.callId, to: `${e.name}-2` })),
      "CONFERENCE_FULL",
    );
    again.client.close();
    closeAll(group);
  });

  it("holds the caller's other call when a call they placed is answered", async () => {
    const group = await users(3);
    const [a, b, c] = group as [User, User, User];
    const { call: first } = await a.client.call<{ call: CallInfo }>("call.invite", { to: b.name });
    await b.client.event("call.incoming");
    await b.client.call("call.answer", { callId: first.callId });
    await a.client.call("call.hold", { callId: first.callId });
    const { call: second } = await a.client.call<{ call: CallInfo }>("call.invite", { to: c.name });
    // While C rings, A takes B off hold again...
    const resumed = await a.client.call<{ call: CallInfo }>("call.resume", { callId: first.callId });
    const heldByA = (i: CallInfo) => i.participants.some((p) => p.username === a.name && p.held);
    assert.equal(heldByA(resumed.call), false);
    const mark = b.client.received.length;
    await c.client.event("call.incoming");
    await c.client.call("call.answer", { callId: second.callId });
    // ...so when C answers, the call with B goes back on hold: A talks in one call at a time.
    const held = await infoWhere(b.client, first.callId, heldByA, mark);
    assert.equal(held.state, "active");
    closeAll(group);
  });

  it("refuses a group call larger than the maximum, and lists unreachable invitees as left", async () => {
    const group = await users(5);
    const [a, b, c, d, e] = group as [User, User, User, User, User];
    const tooMany = await a.client.request("call.invite", { to: [b.name, c.name, d.name, e.name] });
    assert.equal(errorOf(tooMany), "CONFERENCE_FULL");
    assert.equal(b.client.events("call.incoming").length, 0);
    assert.equal((await history(a.client)).length, 0, "nothing recorded");

    e.client.close();
    await t.server.commands.run(["kick", d.name]);
    for (const gone of [d, e]) {
      await a.client.event("presence.changed", (p) => p.userId === gone.userId && p.status === "offline");
    }
    const { call } = await a.client.call<{ call: CallInfo }>("call.invite", { to: [b.name, e.name] });
    assert.equal(states(call)[e.name], "left");
    assert.equal(states(call)[b.name], "ringing");
    // Nobody reachable at all: refused as for a 1:1 call.
    const none = await c.client.request("call.invite", { to: [d.name, e.name] });
    assert.equal(errorOf(none), "USER_OFFLINE");
    closeAll(group);
  });
});
