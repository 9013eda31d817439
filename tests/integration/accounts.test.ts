import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  BACKENDS,
  backendUnavailable,
  loggedIn,
  RawClient,
  registered,
  startTestServer,
  storageSnapshot,
  TEST_PASSWORD,
  type TestServer,
  tempDir,
} from "@parley/testkit";

function errorCode(reply: { ok: boolean; error?: { code: string } } | { ok: true }) {
  return reply.ok ? "ok" : (reply as { error: { code: string } }).error.code;
}

// The account rules on both back-ends: the same requests, the same answers and rows.
for (const backend of BACKENDS) {
  describe(`accounts (${backend})`, { skip: backendUnavailable(backend) }, () => {
    let t: TestServer;
    // The first user's connection stays open until the end: closing it marks its session used
    // (an asynchronous write) while the next test compares the tables before and after.
    let alice: RawClient | undefined;
    before(async () => {
      t = await startTestServer({ backend });
    });
    after(async () => {
      alice?.close();
      await t.stop();
    });
    const sql = () => t.server.storage.sql;

    it("registers a user, logs them in on the same connection and returns a resumable token", async () => {
      const client = await RawClient.greeted(t.url);
      const reply = await client.request("auth.register", {
        username: "Alice",
        password: TEST_PASSWORD,
        displayName: "Alice Liddell",
      });
      assert.equal(reply.ok, true);
      const result = (reply as { result: { token: string; user: { username: string; displayName: string } } }).result;
      assert.equal(result.user.username, "alice", "usernames are lower-cased");
      assert.equal(result.user.displayName, "Alice Liddell");
      assert.ok(result.token.length >= 40);
      const self = await client.call<{ username: string }>("account.get");
      assert.equal(self.username, "alice");
      alice = client;
    });

    it("refuses invalid usernames and passwords with typed errors and stores nothing", async () => {
      const client = await RawClient.greeted(t.url);
      const before = await storageSnapshot(t.server.storage, { exceptTables: ["audit_log"] });
      for (const username of ["ab", "has space", "-dash", "x".repeat(33), "émile"]) {
        const reply = await client.request("auth.register", { username, password: TEST_PASSWORD });
        assert.equal(errorCode(reply), "INVALID_USERNAME", username);
      }
      for (const password of ["short", "y".repeat(129)]) {
        const reply = await client.request("auth.register", { username: "validname", password });
        assert.equal(errorCode(reply), "INVALID_PASSWORD");
      }
      assert.equal(before, await storageSnapshot(t.server.storage, { exceptTables: ["audit_log"] }));
      client.close();
    });

    it("refuses a taken username, whatever its case", async () => {
      const { client } = await registered(t.url, "taken");
      const other = await RawClient.greeted(t.url);
      const reply = await other.request("auth.register", { username: "TAKEN", password: TEST_PASSWORD });
      assert.equal(errorCode(reply), "USERNAME_TAKEN");
      client.close();
      other.close();
    });

    it("gives the same error for an unknown user and a wrong password", async () => {
      const { client } = await registered(t.url, "carol");
      client.close();
      const c = await RawClient.greeted(t.url);
      const wrong = await c.request("auth.login", { username: "carol", password: "wrong password!" });
      const unknown = await c.request("auth.login", { username: "nobody-here", password: "wrong password!" });
      assert.equal(errorCode(wrong), "INVALID_CREDENTIALS");
      assert.deepEqual(
        (wrong as { error: unknown }).error,
        (unknown as { error: unknown }).error,
        "the two errors are identical",
      );
      c.close();
    });

    it("stores passwords hashed with scrypt and session tokens hashed, never in clear", async () => {
      const { client, token } = await registered(t.url, "dave");
      const user = (await sql().get<{ password_hash: string }>(
        "SELECT password_hash FROM users WHERE username = 'dave'",
      ))!;
      assert.match(user.password_hash, /^scrypt\$131072\$8\$1\$/);
      assert.ok(!user.password_hash.includes(TEST_PASSWORD));
      const sessions = await sql().all<{ token_hash: string }>("SELECT token_hash FROM sessions");
      assert.ok(sessions.every((s) => s.token_hash !== token && /^[0-9a-f]{64}$/.test(s.token_hash)));
      client.close();
    });

    it("resumes a session with its token after a reconnect, and refuses a bogus or logged-out token", async () => {
      const { client, token } = await registered(t.url, "erin");
      client.close();
      await client.closed;
      const again = await RawClient.greeted(t.url);
      const resumed = await again.call<{ user: { username: string }; token: string }>("auth.resume", { token });
      assert.equal(resumed.user.username, "erin");
      assert.equal(resumed.token, token);
      const bogus = await (await RawClient.greeted(t.url)).request("auth.resume", { token: "not-a-token" });
      assert.equal(errorCode(bogus), "SESSION_INVALID");
      await again.call("auth.logout", {});
      const afterLogout = await RawClient.greeted(t.url);
      assert.equal(errorCode(await afterLogout.request("auth.resume", { token })), "SESSION_INVALID");
      again.close();
      afterLogout.close();
    });

    it("expires sessions after their lifetime", async () => {
      const short = await startTestServer({ backend, sessionTtlMs: 300 });
      try {
        const { client, token } = await registered(short.url, "frank");
        client.close();
        await new Promise((r) => setTimeout(r, 400));
        const c = await RawClient.greeted(short.url);
        assert.equal(errorCode(await c.request("auth.resume", { token })), "SESSION_INVALID");
        c.close();
      } finally {
        await short.stop();
      }
    });

    it("changes the password only with the old one, and ends the account's other sessions", async () => {
      const { client: first } = await registered(t.url, "grace");
      const { client: second } = await loggedIn(t.url, "grace");
      const wrong = await first.request("account.changePassword", {
        oldPassword: "not the password",
        newPassword: "brand new password",
      });
      assert.equal(errorCode(wrong), "WRONG_PASSWORD");
      await first.call("account.changePassword", { oldPassword: TEST_PASSWORD, newPassword: "brand new password" });
      const closed = await second.closed;
      assert.equal(closed.code, 4003);
      assert.equal(closed.reason, "SESSION_REVOKED");
      assert.ok(second.events("session.ended").length === 1);
      assert.equal((await first.call<{ username: string }>("account.get")).username, "grace", "this device stays in");
      const c = await RawClient.greeted(t.url);
      assert.equal(
        errorCode(await c.request("auth.login", { username: "grace", password: TEST_PASSWORD })),
        "INVALID_CREDENTIALS",
      );
      await c.call("auth.login", { username: "grace", password: "brand new password" });
      first.close();
      c.close();
    });

    it("changes the display name and the username, refusing a taken one", async () => {
      const { client } = await registered(t.url, "heidi");
      const { client: other } = await registered(t.url, "ivan");
      const renamed = await client.call<{ displayName: string }>("account.setDisplayName", { displayName: "Heidi H." });
      assert.equal(renamed.displayName, "Heidi H.");
      assert.equal(errorCode(await client.request("account.setUsername", { username: "ivan" })), "USERNAME_TAKEN");
      const moved = await client.call<{ username: string }>("account.setUsername", { username: "heidi2" });
      assert.equal(moved.username, "heidi2");
      client.close();
      const c = await RawClient.greeted(t.url);
      await c.call("auth.login", { username: "heidi2", password: TEST_PASSWORD });
      assert.equal(errorCode(await c.request("account.setDisplayName", { displayName: "" })), "BAD_PARAMS");
      c.close();
      other.close();
    });

    it("logs out one device, or every device of the account", async () => {
      const { client: a } = await registered(t.url, "judy");
      const { client: b } = await loggedIn(t.url, "judy");
      const { client: c } = await loggedIn(t.url, "judy");
      await a.call("auth.logout", {});
      assert.equal(errorCode(await a.request("account.get")), "NOT_AUTHENTICATED", "back to anonymous");
      const sessions = await b.call<{ sessions: unknown[] }>("account.sessions");
      assert.equal(sessions.sessions.length, 2);
      await b.call("auth.logout", { allDevices: true });
      const closed = await c.closed;
      assert.equal(closed.code, 4003);
      const left = (await sql().get<{ n: number }>(
        "SELECT COUNT(*) AS n FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = 'judy'",
      ))!;
      assert.equal(left.n, 0);
      a.close();
      b.close();
    });

    it("deletes an account with its password; its other devices are disconnected and it can no longer log in", async () => {
      const { client } = await registered(t.url, "mallory");
      const { client: other } = await loggedIn(t.url, "mallory");
      assert.equal(errorCode(await client.request("account.delete", { password: "nope nope nope" })), "WRONG_PASSWORD");
      await client.call("account.delete", { password: TEST_PASSWORD });
      assert.equal((await other.closed).code, 4003);
      const c = await RawClient.greeted(t.url);
      assert.equal(
        errorCode(await c.request("auth.login", { username: "mallory", password: TEST_PASSWORD })),
        "INVALID_CREDENTIALS",
      );
      client.close();
      c.close();
    });

    it("ends every connection on a session that logs out, such as a second tab that resumed the same token", async () => {
      const { client: tab1, token } = await registered(t.url, "tabs");
      const tab2 = await RawClient.greeted(t.url);
      await tab2.call("auth.resume", { token });
      await tab1.call("auth.logout", {});
      assert.deepEqual(await tab2.closed, { code: 4003, reason: "SESSION_REVOKED" });
      assert.equal(errorCode(await tab1.request("account.get")), "NOT_AUTHENTICATED");
      tab1.close();
    });

    it("ends a second tab on the same session when the account is deleted", async () => {
      const { client: tab1, token } = await registered(t.url, "tabs-deleted");
      const tab2 = await RawClient.greeted(t.url);
      await tab2.call("auth.resume", { token });
      await tab1.call("account.delete", { password: TEST_PASSWORD });
      assert.equal((await tab2.closed).code, 4003);
      tab1.close();
    });

    it("keeps the data dir and its files private to the server's account", async () => {
      const fs = await import("node:fs");
      const parent = tempDir();
      const dataDir = path.join(parent, "new-data-dir");
      const s = await startTestServer({ backend, dataDir });
      try {
        (await registered(s.url, "perm")).client.close();
        assert.equal(fs.statSync(dataDir).mode & 0o077, 0, "data dir");
        const files = backend === "sqlite" ? ["parley.db", "parley.db-wal"] : [];
        for (const file of [...files, "parley.log", "parley.sock"]) {
          assert.equal(fs.statSync(path.join(dataDir, file)).mode & 0o077, 0, file);
        }
      } finally {
        await s.stop();
        fs.rmSync(parent, { recursive: true, force: true });
      }
    });

    it("refuses registration when the operator turned signup off", async () => {
      await t.server.commands.run(["signup", "off"]);
      try {
        const c = await RawClient.greeted(t.url);
        assert.equal(
          errorCode(await c.request("auth.register", { username: "latecomer", password: TEST_PASSWORD })),
          "SIGNUP_DISABLED",
        );
        c.close();
      } finally {
        await t.server.commands.run(["signup", "on"]);
      }
    });

    it("records registrations, logins, failed logins and profile changes in the audit log", async () => {
      const entries = await t.server.commands.run(["logs", "200"]);
      for (const action of [
        "register",
        "login",
        "login_failed",
        "logout",
        "logout_all",
        "password_changed",
        "display_name_changed",
        "username_changed",
        "account_deleted",
        "admin.signup",
      ]) {
        assert.match(entries.output, new RegExp(` ${action.replace(".", "\\.")} `), action);
      }
    });
  });
}

describe("brute-force protection", () => {
  const limited = (limits: { perAccountAddress?: number; perAccount?: number; perAddress?: number }) =>
    startTestServer({
      loginLimits: {
        perAccountAddress: 100,
        perAccount: 100,
        perAddress: 100,
        windowMs: 60_000,
        maxDelayMs: 10_000,
        ...limits,
      },
    });
  let attempts = 0;
  const attempt = async (url: string, username: string, password: string, localAddress = "127.0.0.1") => {
    const c = await RawClient.greeted(url, { localAddress });
    // Parallel attempts queue for one password hash at a time (and failures are slowed down): on a
    // loaded machine the last answer comes after a request's usual 5 s.
    const requestId = `attempt-${++attempts}`;
    c.send({ type: "auth.login", requestId, params: { username, password } });
    const reply = await c.waitFor(
      (m): m is Extract<typeof m, { type: "response" }> => m.type === "response" && m.requestId === requestId,
      "login answer",
      30_000,
    );
    c.close();
    return errorCode(reply);
  };

  it("refuses logins to an account from an address after repeated failures, even with the right password", async () => {
    const s = await limited({ perAccountAddress: 3 });
    try {
      (await registered(s.url, "victim")).client.close();
      for (let i = 0; i < 3; i++) assert.equal(await attempt(s.url, "victim", `guess-${i}-xx`), "INVALID_CREDENTIALS");
      assert.equal(await attempt(s.url, "victim", TEST_PASSWORD), "TOO_MANY_ATTEMPTS");
      // The guesser locked out only himself: the owner, elsewhere, still logs in.
      assert.equal(await attempt(s.url, "victim", TEST_PASSWORD, "127.0.0.2"), "ok");
      const audit = await s.server.commands.run(["logs", "50", "--action", "login_failed"]);
      assert.match(audit.output, /rate_limited/);
    } finally {
      await s.stop();
    }
  });

  it("slows down logins to an account attacked from many addresses but never locks its owner out", async () => {
    const s = await limited({ perAccount: 3 });
    try {
      (await registered(s.url, "target")).client.close();
      for (const address of ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]) {
        assert.equal(await attempt(s.url, "target", "wrong guess!", address), "INVALID_CREDENTIALS");
      }
      // Four failures, one past the threshold: the next attempt waits 250 ms * 2 before its check.
      const started = Date.now();
      assert.equal(await attempt(s.url, "target", TEST_PASSWORD, "127.0.0.6"), "ok");
      assert.ok(Date.now() - started >= 500, "the attempt was slowed down");
      const audit = await s.server.commands.run(["logs", "50", "--action", "login_failed"]);
      assert.doesNotMatch(audit.output, /rate_limited/);
    } finally {
      await s.stop();
    }
  });

  it("refuses logins from an address after repeated failures across accounts", async () => {
    const s = await limited({ perAddress: 4 });
    try {
      (await registered(s.url, "bystander")).client.close();
      for (let i = 0; i < 4; i++) assert.equal(await attempt(s.url, `ghost${i}`, "whatever123"), "INVALID_CREDENTIALS");
      assert.equal(await attempt(s.url, "bystander", TEST_PASSWORD), "TOO_MANY_ATTEMPTS");
      assert.equal(await attempt(s.url, "bystander", TEST_PASSWORD, "127.0.0.9"), "ok");
    } finally {
      await s.stop();
    }
  });

  it("counts parallel attempts before checking passwords, so a burst cannot slip past the limit", async () => {
    const s = await limited({ perAccountAddress: 5 });
    try {
      (await registered(s.url, "burst")).client.close();
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => attempt(s.url, "burst", `wrong-${i}-guess`)),
      );
      assert.equal(results.filter((r) => r === "INVALID_CREDENTIALS").length, 5);
      assert.equal(results.filter((r) => r === "TOO_MANY_ATTEMPTS").length, 7);
    } finally {
      await s.stop();
    }
  });
});
