import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  loggedIn,
  RawClient,
  registered,
  runAdmin,
  type ServerProcess,
  spawnServer,
  TEST_PASSWORD,
  tempDir,
  waitFor,
} from "@parley/testkit";

let dir: string;
let server: ServerProcess;
before(async () => {
  dir = tempDir();
  server = await spawnServer(dir);
});
after(async () => {
  if (server.child.exitCode === null) server.child.kill("SIGKILL");
  fs.rmSync(dir, { recursive: true, force: true });
});

const admin = (...words: string[]) => runAdmin(dir, words);

describe("parley admin against a running server", () => {
  it("creates accounts that can log in, and refuses bad ones", async () => {
    const created = await admin("users", "add", "olga", "--password", "olga-password", "--display-name", "Olga O.");
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /created olga/);
    const { client } = await loggedIn(server.url, "olga", "olga-password");
    assert.equal((await client.call<{ displayName: string }>("account.get")).displayName, "Olga O.");
    client.close();
    const taken = await admin("users", "add", "olga", "--password", "another-password");
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /USERNAME_TAKEN/);
    const weak = await admin("users", "add", "weakling", "--password", "short");
    assert.match(weak.stderr, /INVALID_PASSWORD/);
    const usage = await admin("users", "add", "nopassword");
    assert.equal(usage.code, 2);
  });

  it("creates operators and grants or revokes the role, shown in the users list", async () => {
    const created = await admin("users", "add", "opal", "--password", "opal-password", "--operator");
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /created opal \(id \d+\) as an operator/);
    assert.match((await admin("users")).stdout, /opal\s+opal\s+offline\s+0\s+-\s+operator/);
    assert.match((await admin("operator", "revoke", "opal")).stdout, /opal is not an operator/);
    assert.doesNotMatch((await admin("users")).stdout, /opal.*operator/);
    assert.match((await admin("operator", "grant", "opal")).stdout, /opal is an operator/);
    const unknown = await admin("operator", "grant", "nobody");
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /USER_NOT_FOUND/);
    const logs = await admin("logs", "5", "--user", "opal");
    assert.match(logs.stdout, /admin\.grant_operator\s+operator\s+opal/);
    assert.match(logs.stdout, /admin\.revoke_operator\s+operator\s+opal/);
  });

  it("seeds the demo users with one command", async () => {
    const seeded = await admin("demo-users");
    assert.match(seeded.stdout, /created yann, tugdual, johndoe, alice, bob/);
    const { client } = await loggedIn(server.url, "johndoe", "parley-demo");
    assert.equal((await client.call<{ displayName: string }>("account.get")).displayName, "John Doe");
    client.close();
    assert.match((await admin("demo-users")).stdout, /already exist/);
  });

  it("lists users and connected clients with their addresses, and shows one user in detail", async () => {
    const laptop = await RawClient.greeted(server.url, { localAddress: "127.0.0.7" });
    await laptop.call("auth.login", { username: "alice", password: "parley-demo", deviceName: "laptop" });
    const users = await admin("users");
    assert.match(users.stdout, /alice\s+Alice\s+available\s+1/);
    assert.match(users.stdout, /bob\s+Bob\s+offline\s+0/);
    const who = await admin("who");
    assert.match(who.stdout, /alice\s+laptop\s+127\.0\.0\.7/);
    const one = await admin("user", "alice");
    assert.match(one.stdout, /status:\s+available/);
    assert.match(one.stdout, /last login:\s+\d{4}-/);
    assert.match(one.stdout, /"laptop" from 127\.0\.0\.7, connected since \d{4}-/);
    const unknown = await admin("user", "nobody");
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /USER_NOT_FOUND/);
    laptop.close();
  });

  it("kicks every device of a user, who may log in again", async () => {
    const a = await loggedIn(server.url, "bob", "parley-demo");
    const b = await loggedIn(server.url, "bob", "parley-demo");
    const kicked = await admin("kick", "bob");
    assert.match(kicked.stdout, /kicked bob \(2 device/);
    assert.deepEqual(await a.client.closed, { code: 4001, reason: "KICKED" });
    assert.equal((await b.client.closed).code, 4001);
    assert.ok(a.client.events("session.ended").some((d) => d.reason === "KICKED"));
    (await loggedIn(server.url, "bob", "parley-demo")).client.close();
  });

  it("disables an account (disconnecting it, hiding it, refusing logins) and enables it again", async () => {
    const watcher = await loggedIn(server.url, "yann", "parley-demo");
    const victim = await loggedIn(server.url, "tugdual", "parley-demo");
    assert.equal((await admin("disable", "tugdual")).code, 0);
    assert.deepEqual(await victim.client.closed, { code: 4002, reason: "ACCOUNT_DISABLED" });
    await watcher.client.event("directory.userRemoved", (d) => d.userId === victim.userId);
    const c = await RawClient.greeted(server.url);
    const refused = await c.request("auth.login", { username: "tugdual", password: "parley-demo" });
    assert.equal(!refused.ok && refused.error.code, "ACCOUNT_DISABLED");
    const resumed = await c.request("auth.resume", { token: victim.token });
    assert.equal(!resumed.ok && resumed.error.code, "SESSION_INVALID");
    assert.equal((await admin("enable", "tugdual")).code, 0);
    await watcher.client.event("directory.userAdded", (d) => (d.user as { id: number }).id === victim.userId);
    await c.call("auth.login", { username: "tugdual", password: "parley-demo" });
    c.close();
    watcher.client.close();
  });

  it("resets a password to a given or a random one, ending the user's sessions", async () => {
    const session = await registered(server.url, "forgetful");
    const given = await admin("reset-password", "forgetful", "--password", "operator-chosen");
    assert.match(given.stdout, /password of forgetful reset/);
    assert.equal((await session.client.closed).code, 4003);
    (await loggedIn(server.url, "forgetful", "operator-chosen")).client.close();
    const random = await admin("reset-password", "forgetful");
    const password = /reset to: (\S+)/.exec(random.stdout)?.[1];
    assert.ok(password && password.length >= 12);
    (await loggedIn(server.url, "forgetful", password)).client.close();
    const c = await RawClient.greeted(server.url);
    const old = await c.request("auth.login", { username: "forgetful", password: TEST_PASSWORD });
    assert.equal(!old.ok && old.error.code, "INVALID_CREDENTIALS");
    c.close();
  });

  it("turns self-signup off and on", async () => {
    assert.match((await admin("signup", "off")).stdout, /signup is off/);
    const c = await RawClient.greeted(server.url);
    const refused = await c.request("auth.register", { username: "newbie", password: TEST_PASSWORD });
    assert.equal(!refused.ok && refused.error.code, "SIGNUP_DISABLED");
    assert.match((await admin("signup", "on")).stdout, /signup is on/);
    await c.call("auth.register", { username: "newbie", password: TEST_PASSWORD });
    c.close();
    assert.equal((await admin("signup", "maybe")).code, 2);
  });

  it("shows the audit log with filters, including admin actions and failed logins", async () => {
    const c = await RawClient.greeted(server.url, { localAddress: "127.0.0.8" });
    await c.request("auth.login", { username: "alice", password: "not her password" });
    c.close();
    const all = await admin("logs", "100");
    for (const action of [
      "admin.user_added",
      "admin.demo_users",
      "admin.kick",
      "admin.disable",
      "admin.enable",
      "admin.reset_password",
      "admin.signup",
      "login",
      "register",
    ]) {
      assert.match(all.stdout, new RegExp(`\\s${action.replace(".", "\\.")}\\s`), action);
    }
    const failed = await admin("logs", "10", "--user", "alice", "--action", "login_failed");
    assert.match(failed.stdout, /login_failed\s+-\s+alice\s+127\.0\.0\.8\s+\{"reason":"wrong_password","count":1\}/);
    assert.doesNotMatch(failed.stdout, /\sadmin\./);
    const lines = (await admin("logs", "3")).stdout.trim().split("\n");
    assert.equal(lines.length, 4, "header and three entries");
    assert.equal((await admin("logs", "zero")).code, 2);
  });

  it("shows statistics", async () => {
    const stats = await admin("stats");
    assert.match(stats.stdout, /uptime:\s+\dh\d\dm\d\ds/);
    assert.match(stats.stdout, /accounts:\s+\d+/);
    assert.match(stats.stdout, /messages in \/ out:\s+\d+ \/ \d+/);
    assert.match(stats.stdout, /errors sent:.*INVALID_CREDENTIALS=\d+/);
  });

  it("answers help and refuses unknown commands with exit code 2", async () => {
    const help = await admin("help");
    for (const command of [
      "users",
      "operator grant NAME",
      "who",
      "user NAME",
      "kick",
      "disable",
      "reset-password",
      "logs",
      "stats",
      "shutdown",
    ]) {
      assert.ok(help.stdout.includes(command), command);
    }
    const unknown = await admin("frobnicate");
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command/);
  });

  it("fails clearly when no server runs on the data dir", async () => {
    const empty = tempDir();
    const result = await runAdmin(empty, ["users"]);
    assert.equal(result.code, 3);
    assert.match(result.stderr, /cannot reach the server/);
    fs.rmSync(empty, { recursive: true, force: true });
  });

  it("shuts the server down cleanly: clients are told, the process exits 0, the data is kept", async () => {
    const c = await loggedIn(server.url, "alice", "parley-demo");
    const result = await admin("shutdown");
    assert.match(result.stdout, /shutting down/);
    assert.deepEqual(await c.client.closed, { code: 1001, reason: "GOING_AWAY" });
    assert.equal(await server.exited, 0);
    assert.ok(!fs.existsSync(path.join(dir, "parley.sock")), "control socket removed");
    // Everything is still there on the next start.
    server = await spawnServer(dir);
    (await loggedIn(server.url, "olga", "olga-password")).client.close();
    server.child.kill("SIGTERM");
    assert.equal(await server.exited, 0);
  });
});

describe("operator console on the server's terminal", () => {
  it("runs the same commands typed on stdin", async () => {
    const consoleDir = tempDir();
    const proc = await spawnServer(consoleDir, ["--console", "on"]);
    try {
      proc.child.stdin!.write("users add zoe --password zoe-password\n");
      await waitFor(() => proc.output().includes("created zoe"), "zoe created");
      const z = await loggedIn(proc.url, "zoe", "zoe-password", "tablet");
      proc.child.stdin!.write('user "zoe"\n');
      await waitFor(() => /"tablet" from 127\.0\.0\.1/.test(proc.output()), "user details");
      proc.child.stdin!.write("who\nstats\nlogs 5\n");
      await waitFor(() => proc.output().includes("devices connected:"), "stats output");
      // `logs` answers when the audit log is read, which may be after `stats` has answered.
      await waitFor(() => /admin\.user_added\s+console\s+zoe/.test(proc.output()), "the audit log's line for zoe");
      proc.child.stdin!.write("bogus\n");
      await waitFor(() => proc.output().includes("unknown command 'bogus'"), "usage error");
      proc.child.stdin!.write("shutdown\n");
      assert.equal((await z.client.closed).code, 1001);
      assert.equal(await proc.exited, 0);
    } finally {
      if (proc.child.exitCode === null) proc.child.kill("SIGKILL");
      fs.rmSync(consoleDir, { recursive: true, force: true });
    }
  });
});
