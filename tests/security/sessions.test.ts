import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loggedIn, RawClient, registered, TEST_PASSWORD, type TestServer, withTestServer } from "@parley/testkit";

type Reply = Awaited<ReturnType<RawClient["request"]>>;

const code = (reply: Reply) => (reply.ok ? "ok" : reply.error.code);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function sessionIds(s: TestServer, username: string): number[] {
  return s.server.db
    .prepare<[string], { id: number }>(
      "SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = ? ORDER BY s.id",
    )
    .all(username)
    .map((row) => row.id);
}

async function resume(s: TestServer, token: string): Promise<{ client: RawClient; reply: Reply }> {
  const client = await RawClient.greeted(s.url);
  return { client, reply: await client.request("auth.resume", { token }) };
}

describe("session lifetime", () => {
  it("refuses to resume a session left unused past the idle limit, and purges it without being asked", async () => {
    await withTestServer({ sessionIdleMs: 1500 }, async (s) => {
      const { client, token } = await registered(s.url, "idler");
      client.close();
      await client.closed;
      // Within the limit the token still works, and using it restarts the idle clock.
      await sleep(800);
      const early = await resume(s, token);
      assert.equal(code(early.reply), "ok");
      early.client.close();
      await early.client.closed;
      await sleep(2000);
      assert.deepEqual(sessionIds(s, "idler"), [], "the sweep deleted the idle session on its own");
      const late = await resume(s, token);
      assert.equal(code(late.reply), "SESSION_INVALID");
      assert.equal(code(await late.client.request("account.get")), "NOT_AUTHENTICATED");
      late.client.close();
    });
  });

  it("keeps a session that stays connected alive past the idle limit", async () => {
    await withTestServer({ sessionIdleMs: 1000 }, async (s) => {
      const { client, token } = await registered(s.url, "stayer");
      await sleep(2500);
      assert.equal(code(await client.request("account.get")), "ok");
      assert.equal(sessionIds(s, "stayer").length, 1);
      client.close();
      await client.closed;
      const again = await resume(s, token);
      assert.equal(code(again.reply), "ok", "a session in use is marked used, so it had not gone idle");
      again.client.close();
    });
  });

  it("closes an open connection with SESSION_EXPIRED (4009) when its session reaches its absolute expiry", async () => {
    await withTestServer({ sessionTtlMs: 1500, sessionIdleMs: 0 }, async (s) => {
      const { client, token } = await registered(s.url, "expiring");
      const tab = (await resume(s, token)).client;
      const expiresAt = Date.parse(
        s.server.db.prepare<[], { expires_at: string }>("SELECT expires_at FROM sessions LIMIT 1").get()!.expires_at,
      );
      assert.deepEqual(await client.closed, { code: 4009, reason: "SESSION_EXPIRED" });
      assert.ok(Date.now() >= expiresAt, "not closed before the session's expiry");
      assert.deepEqual(await tab.closed, { code: 4009, reason: "SESSION_EXPIRED" }, "every connection on it");
      assert.equal(client.events("session.ended")[0]?.reason, "SESSION_EXPIRED");
      assert.deepEqual(sessionIds(s, "expiring"), []);
      const late = await resume(s, token);
      assert.equal(code(late.reply), "SESSION_INVALID");
      late.client.close();
    });
  });
});

describe("revoked sessions", () => {
  it("closes every open connection on a revoked session: logout of all devices, password change, operator reset and disable", async () => {
    await withTestServer({}, async (s) => {
      const { client: phone, token } = await registered(s.url, "revokee");
      const tab = (await resume(s, token)).client;
      const { client: laptop } = await loggedIn(s.url, "revokee");
      // Logging out every device from the laptop closes the phone and the tab that resumed its token.
      await laptop.call("auth.logout", { allDevices: true });
      assert.deepEqual(await phone.closed, { code: 4003, reason: "SESSION_REVOKED" });
      assert.deepEqual(await tab.closed, { code: 4003, reason: "SESSION_REVOKED" });
      laptop.close();

      // A password change ends the other devices, a second tab on them included.
      const first = await loggedIn(s.url, "revokee");
      const second = await loggedIn(s.url, "revokee");
      const secondTab = (await resume(s, second.token)).client;
      await first.client.call("account.changePassword", { oldPassword: TEST_PASSWORD, newPassword: "second password" });
      assert.deepEqual(await second.client.closed, { code: 4003, reason: "SESSION_REVOKED" });
      assert.deepEqual(await secondTab.closed, { code: 4003, reason: "SESSION_REVOKED" });
      assert.equal(code(await first.client.request("account.get")), "ok");

      // The operator's password reset ends every session, the asking user's own included.
      await s.server.operator.resetPassword("revokee", "third password", "console");
      assert.deepEqual(await first.client.closed, { code: 4003, reason: "SESSION_REVOKED" });
      assert.equal(code((await resume(s, first.token)).reply), "SESSION_INVALID");

      // Disabling the account closes its connections with ACCOUNT_DISABLED.
      const third = await loggedIn(s.url, "revokee", "third password");
      const thirdTab = (await resume(s, third.token)).client;
      s.server.operator.setDisabled("revokee", true, "console");
      assert.deepEqual(await third.client.closed, { code: 4002, reason: "ACCOUNT_DISABLED" });
      assert.deepEqual(await thirdTab.closed, { code: 4002, reason: "ACCOUNT_DISABLED" });
      assert.deepEqual(sessionIds(s, "revokee"), []);
    });
  });
});

describe("sessions and devices per user", () => {
  it("revokes the least recently used session beyond the per-user cap and closes its connection", async () => {
    await withTestServer({ maxSessionsPerUser: 2 }, async (s) => {
      const { client: a, token: tokenA } = await registered(s.url, "capped");
      await sleep(10);
      const b = await loggedIn(s.url, "capped");
      b.client.close();
      await b.client.closed;
      await sleep(10);
      // A (still connected) was created first but is in use: B is the least recently used.
      const c = await loggedIn(s.url, "capped");
      assert.equal(code((await resume(s, b.token)).reply), "SESSION_INVALID", "B was revoked");
      assert.equal(code(await a.request("account.get")), "ok", "A, in use, was kept");
      assert.equal(sessionIds(s, "capped").length, 2);

      // Both left are connected: the next login revokes the older one and closes its socket.
      await sleep(10);
      const d = await loggedIn(s.url, "capped");
      assert.deepEqual(await a.closed, { code: 4003, reason: "SESSION_REVOKED" });
      assert.equal(code((await resume(s, tokenA)).reply), "SESSION_INVALID");
      assert.deepEqual(sessionIds(s, "capped"), [c.sessionId, d.sessionId]);
      assert.equal(code(await c.client.request("account.get")), "ok");
      const audit = await s.server.commands.run(["logs", "10", "--action", "session_capped"]);
      assert.match(audit.output, /session_capped/, "the operator sees why the sessions ended");
      c.client.close();
      d.client.close();
    });
  });

  it("refuses a login or resume beyond the devices per user with TOO_MANY_DEVICES, leaving the connection anonymous", async () => {
    const limits = { max: 4000, perAddress: 250, loginTimeoutMs: 30_000, devicesPerUser: 2, anonymousPerSecond: 300 };
    await withTestServer({ connectionLimits: limits }, async (s) => {
      const first = await registered(s.url, "busy-bee");
      const second = await loggedIn(s.url, "busy-bee");
      const before = sessionIds(s, "busy-bee");

      const third = await RawClient.greeted(s.url);
      const login = await third.request("auth.login", { username: "busy-bee", password: TEST_PASSWORD });
      assert.equal(code(login), "TOO_MANY_DEVICES");
      assert.deepEqual(sessionIds(s, "busy-bee"), before, "a refused login opens no session");
      assert.equal(code(await third.request("auth.resume", { token: first.token })), "TOO_MANY_DEVICES");
      assert.equal(code(await third.request("account.get")), "NOT_AUTHENTICATED");
      assert.equal(code(await third.request("directory.list")), "NOT_AUTHENTICATED");

      // Once a device leaves, the same connection gets in.
      second.client.close();
      await second.client.closed;
      assert.equal(code(await third.request("auth.resume", { token: first.token })), "ok");
      assert.equal(code(await third.request("account.get")), "ok");
      first.client.close();
      third.close();
    });
  });
});
