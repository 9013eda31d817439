/**
 * The web operator console's protocol: `operator.*` requests over a real WebSocket, refused with
 * NOT_OPERATOR to everyone but operators (changing nothing), each action audited with the
 * operator as actor, and the live `operator.snapshot` feed.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { OperatorRequests } from "@parley/protocol";
import {
  loggedIn,
  RawClient,
  registered,
  startTestServer,
  TEST_PASSWORD,
  type TestServer,
  waitFor,
} from "@parley/testkit";

let t: TestServer;
/** The operator's connection, from 127.0.0.9 (so its address can be looked for). */
let olivia: RawClient;

before(async () => {
  t = await startTestServer();
  const created = await t.server.commands.run(["users", "add", "olivia", "--password", TEST_PASSWORD, "--operator"]);
  assert.equal(created.exitCode, 0, created.output);
  assert.match(created.output, /created olivia .* as an operator/);
  olivia = (await loggedIn(t.url, "olivia", TEST_PASSWORD, "console")).client;
});
after(async () => {
  olivia?.close();
  await t.stop();
});

type Reply = Awaited<ReturnType<RawClient["request"]>>;
function codeOf(reply: Reply): string {
  return reply.ok ? "ok" : reply.error.code;
}

interface Snapshot {
  server: { version: string; calls: number; usersOnline: number; signupEnabled: boolean; uptimeSeconds: number };
  users: {
    username: string;
    operator: boolean;
    disabled: boolean;
    status: string;
    callId: string | null;
    devices: { address: string; deviceName: string }[];
  }[];
  calls: {
    callId: string;
    state: string;
    participants: string[];
    durationMs: number;
    legs: unknown[];
  }[];
}

interface Audit {
  entries: {
    action: string;
    actor: string | null;
    username: string | null;
    address: string | null;
    detail: Record<string, unknown> | null;
  }[];
}

/** Valid parameters for every operator request, so a refusal can only come from the role check. */
const VALID_PARAMS: Record<keyof typeof OperatorRequests, Record<string, unknown>> = {
  "operator.snapshot": {},
  "operator.subscribe": {},
  "operator.unsubscribe": {},
  "operator.kick": { username: "olivia" },
  "operator.setDisabled": { username: "olivia", disabled: true },
  "operator.resetPassword": { username: "olivia", password: "stolen password" },
  "operator.setOperator": { username: "mallory", operator: true },
  "operator.endCall": { callId: "00000000-0000-0000-0000-000000000000" },
  "operator.setSignup": { enabled: false },
  "operator.audit": {},
  "operator.callHistory": {},
};

describe("operator requests", () => {
  it("refuses every operator request to a non-operator with NOT_OPERATOR, changing nothing and leaking no address", async () => {
    const mallory = await registered(t.url, "mallory");
    const spy = await RawClient.connect(t.url, { localAddress: "127.0.0.9" });
    await spy.call("hello", { protocolVersion: 1 });
    await spy.call("auth.login", { username: "olivia", password: TEST_PASSWORD, deviceName: "second tab" });
    for (const type of Object.keys(OperatorRequests) as (keyof typeof OperatorRequests)[]) {
      const reply = await mallory.client.request(type, VALID_PARAMS[type]);
      assert.equal(codeOf(reply), "NOT_OPERATOR", type);
      if (!reply.ok) assert.match(reply.error.message, /operator/i);
    }
    // Nothing changed: olivia is still connected, enabled, an operator with her password; signup is on.
    const snapshot = await olivia.call<Snapshot>("operator.snapshot");
    const me = snapshot.users.find((u) => u.username === "olivia")!;
    assert.deepEqual([me.operator, me.disabled, me.devices.length], [true, false, 2]);
    assert.equal(snapshot.server.signupEnabled, true);
    assert.equal(snapshot.users.find((u) => u.username === "mallory")?.operator, false);
    (await loggedIn(t.url, "olivia", TEST_PASSWORD)).client.close();
    // The operator sees client addresses; the non-operator never received one, nor any operator event.
    assert.ok(me.devices.some((d) => d.address === "127.0.0.9" && d.deviceName === "second tab"));
    await new Promise((resolve) => setTimeout(resolve, 1200));
    assert.ok(!mallory.client.frames.some((f) => f.includes("127.0.0.9")), "no address reached the non-operator");
    assert.equal(mallory.client.events("operator.snapshot").length, 0);
    // Before login: not authenticated at all.
    const anonymous = await RawClient.greeted(t.url);
    assert.equal(codeOf(await anonymous.request("operator.snapshot")), "NOT_AUTHENTICATED");
    anonymous.close();
    spy.close();
    mallory.client.close();
  });

  it("grants and revokes the operator role from the console and over the WebSocket, audited and effective at once", async () => {
    const mallory = await loggedIn(t.url, "mallory");
    const before = mallory.client.received.length;
    // commands.run is what the control socket (`parley admin`, actor "operator") calls.
    const granted = await t.server.commands.run(["operator", "grant", "mallory"]);
    assert.equal(granted.exitCode, 0, granted.output);
    assert.match(granted.output, /mallory is an operator/);
    // Her devices learn it (the page can show the console link) and her requests pass at once.
    await mallory.client.event("account.updated", (d) => (d.user as { operator: boolean }).operator, before);
    await mallory.client.call("operator.subscribe");
    await mallory.client.event("operator.snapshot");
    const revoked = await olivia.call<{ user: { operator: boolean } }>("operator.setOperator", {
      username: "Mallory",
      operator: false,
    });
    assert.equal(revoked.user.operator, false);
    assert.equal(codeOf(await mallory.client.request("operator.snapshot")), "NOT_OPERATOR");
    // The feed stops for a revoked operator.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const events = mallory.client.events("operator.snapshot").length;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(mallory.client.events("operator.snapshot").length, events, "no snapshot after the revoke");

    const usage = await t.server.commands.run(["operator", "promote", "mallory"]);
    assert.equal(usage.exitCode, 2);
    const unknown = await olivia.request("operator.setOperator", { username: "nobody", operator: true });
    assert.equal(codeOf(unknown), "USER_NOT_FOUND");
    const audit = await olivia.call<Audit>("operator.audit", { username: "mallory" });
    const roles = audit.entries
      .filter((e) => e.action.endsWith("_operator"))
      .map((e) => [e.action, e.actor, e.address]);
    // The console acts locally (no address); the web operator from her connection's address.
    assert.deepEqual(roles, [
      ["admin.grant_operator", "operator", null],
      ["admin.revoke_operator", "olivia", "127.0.0.1"],
    ]);
    mallory.client.close();
  });

  it("pushes a live snapshot every second: users with devices and addresses, calls with duration and legs", async () => {
    const caller = await registered(t.url, "snap-caller");
    const callee = await registered(t.url, "snap-callee");
    const { call } = await caller.client.call<{ call: { callId: string } }>("call.invite", { to: "snap-callee" });
    await callee.client.call("call.answer", { callId: call.callId });
    const from = olivia.received.length;
    const first = await olivia.call<Snapshot>("operator.subscribe");
    assert.ok(first.server.calls >= 1);
    const live = first.calls.find((c) => c.callId === call.callId);
    assert.deepEqual([live?.state, live?.participants], ["active", ["snap-caller", "snap-callee"]]);
    assert.equal(first.users.find((u) => u.username === "snap-caller")?.callId, call.callId);
    assert.equal(first.users.find((u) => u.username === "snap-caller")?.status, "in-call");
    // Two pushed snapshots a second apart show the call's duration growing.
    const durations: number[] = [];
    await waitFor(
      () => {
        durations.splice(
          0,
          durations.length,
          ...olivia.received
            .slice(from)
            .filter((m) => m.type === "event" && m.event === "operator.snapshot")
            .map((m) => (m as { data: Snapshot }).data.calls.find((c) => c.callId === call.callId)?.durationMs ?? -1),
        );
        return durations.length >= 2;
      },
      "two snapshots",
      { timeoutMs: 5000 },
    );
    assert.ok(durations[1]! > durations[0]!, `duration grows: ${durations.join(", ")}`);
    await callee.client.call("call.hold", { callId: call.callId });
    const held = await olivia.call<Snapshot>("operator.snapshot");
    assert.equal(held.calls.find((c) => c.callId === call.callId)?.state, "held");
    await olivia.call("operator.unsubscribe");
    await caller.client.call("call.hangup", { callId: call.callId });
    caller.client.close();
    callee.client.close();
  });

  it("kicks, disables, enables, resets passwords and toggles signup, each audited with the operator as actor", async () => {
    const victim = await registered(t.url, "victim");
    const kicked = await olivia.call<{ devices: number }>("operator.kick", { username: "victim" });
    assert.equal(kicked.devices, 1);
    assert.deepEqual(await victim.client.closed, { code: 4001, reason: "KICKED" });

    const again = await loggedIn(t.url, "victim");
    const disabled = await olivia.call<{ user: { disabled: boolean } }>("operator.setDisabled", {
      username: "victim",
      disabled: true,
    });
    assert.equal(disabled.user.disabled, true);
    assert.deepEqual(await again.client.closed, { code: 4002, reason: "ACCOUNT_DISABLED" });
    const refused = await RawClient.greeted(t.url);
    assert.equal(
      codeOf(await refused.request("auth.login", { username: "victim", password: TEST_PASSWORD })),
      "ACCOUNT_DISABLED",
    );
    await olivia.call("operator.setDisabled", { username: "victim", disabled: false });

    const random = await olivia.call<{ password: string | null }>("operator.resetPassword", { username: "victim" });
    assert.ok(random.password && random.password.length >= 12);
    await refused.call("auth.login", { username: "victim", password: random.password });
    refused.close();
    const chosen = await olivia.call<{ password: string | null }>("operator.resetPassword", {
      username: "victim",
      password: "chosen by olivia",
    });
    assert.equal(chosen.password, null);
    (await loggedIn(t.url, "victim", "chosen by olivia")).client.close();

    assert.deepEqual(await olivia.call("operator.setSignup", { enabled: false }), { enabled: false });
    const newcomer = await RawClient.greeted(t.url);
    assert.equal(
      codeOf(await newcomer.request("auth.register", { username: "newcomer", password: TEST_PASSWORD })),
      "SIGNUP_DISABLED",
    );
    assert.deepEqual(await olivia.call("operator.setSignup", { enabled: true }), { enabled: true });
    newcomer.close();

    const audit = await olivia.call<Audit>("operator.audit", { username: "victim", limit: 50 });
    const byOlivia = audit.entries.filter((e) => e.actor === "olivia").map((e) => e.action);
    // Each entry says where the operator acted from: her connection's address (loopback here).
    assert.deepEqual(
      new Set(audit.entries.filter((e) => e.actor === "olivia").map((e) => e.address)),
      new Set(["127.0.0.1"]),
    );
    assert.deepEqual(byOlivia, [
      "admin.kick",
      "admin.disable",
      "admin.enable",
      "admin.reset_password",
      "admin.reset_password",
    ]);
    const signup = await olivia.call<Audit>("operator.audit", { action: "admin.signup" });
    assert.deepEqual(
      signup.entries.slice(-2).map((e) => [e.actor, e.detail?.enabled]),
      [
        ["olivia", false],
        ["olivia", true],
      ],
    );
  });

  it("ends a call for both participants, and finds it in the call history search", async () => {
    const caller = await registered(t.url, "end-caller");
    const callee = await registered(t.url, "end-callee");
    const { call } = await caller.client.call<{ call: { callId: string } }>("call.invite", { to: "end-callee" });
    await callee.client.call("call.answer", { callId: call.callId });
    await olivia.call("operator.endCall", { callId: call.callId });
    for (const side of [caller.client, callee.client]) {
      const ended = await side.event("call.ended", (d) => d.callId === call.callId);
      assert.deepEqual([ended.data.reason, ended.data.by], ["operator", null]);
    }
    assert.equal(codeOf(await olivia.request("operator.endCall", { callId: call.callId })), "CALL_NOT_FOUND");
    // A prefix is for the console only: the page names calls by their full id.
    const other = await caller.client.call<{ call: { callId: string } }>("call.invite", { to: "end-callee" });
    assert.equal(
      codeOf(await olivia.request("operator.endCall", { callId: other.call.callId.slice(0, 8) })),
      "CALL_NOT_FOUND",
    );
    await caller.client.call("call.hangup", { callId: other.call.callId });

    const history = await olivia.call<{ calls: { callId: string; outcome: string; endReason: string }[] }>(
      "operator.callHistory",
      { username: "end-callee", since: new Date(Date.now() - 60_000).toISOString() },
    );
    assert.deepEqual(
      history.calls.map((c) => [c.callId, c.outcome, c.endReason]),
      [
        [other.call.callId, "cancelled", "cancelled"],
        [call.callId, "answered", "operator"],
      ],
    );
    const answered = await olivia.call<{ calls: unknown[] }>("operator.callHistory", {
      username: "end-callee",
      outcome: "answered",
    });
    assert.equal(answered.calls.length, 1);
    const future = await olivia.call<{ calls: unknown[] }>("operator.callHistory", {
      since: new Date(Date.now() + 60_000).toISOString(),
    });
    assert.equal(future.calls.length, 0);
    // A renamed user's calls are found by the new name as well as by the name they had then.
    await callee.client.call("account.setUsername", { username: "end-renamed" });
    for (const username of ["end-renamed", "End-Renamed", "end-callee"]) {
      const found = await olivia.call<{ calls: { callId: string }[] }>("operator.callHistory", { username });
      assert.deepEqual(
        found.calls.map((c) => c.callId),
        [other.call.callId, call.callId],
        `the calls found as ${username}`,
      );
    }
    const hangups = await olivia.call<Audit>("operator.audit", { action: "admin.hangup" });
    assert.equal(hangups.entries.at(-1)?.actor, "olivia");
    caller.client.close();
    callee.client.close();
  });

  it("answers bad operator input with typed errors", async () => {
    const cases: [string, Record<string, unknown>, string][] = [
      ["operator.kick", { username: "nobody-here" }, "USER_NOT_FOUND"],
      ["operator.kick", {}, "BAD_PARAMS"],
      ["operator.setDisabled", { username: "victim", disabled: "yes" }, "BAD_PARAMS"],
      ["operator.resetPassword", { username: "victim", password: "short" }, "INVALID_PASSWORD"],
      ["operator.endCall", { callId: "" }, "BAD_PARAMS"],
      ["operator.audit", { since: "yesterday" }, "BAD_PARAMS"],
      ["operator.audit", { limit: 0 }, "BAD_PARAMS"],
      ["operator.callHistory", { outcome: "exploded" }, "BAD_PARAMS"],
      ["operator.snapshot", { extra: 1 }, "BAD_PARAMS"],
    ];
    for (const [type, params, code] of cases) {
      assert.equal(codeOf(await olivia.request(type, params)), code, `${type} ${JSON.stringify(params)}`);
    }
    // The refused reset changed nothing.
    (await loggedIn(t.url, "victim", "chosen by olivia")).client.close();
  });
});
