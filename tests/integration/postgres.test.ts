import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { PhonebookStore, PostgresStorage, SCHEMA_VERSION, SqliteStorage, UserStore } from "@parley/server";
import {
  loggedIn,
  postgresUnavailable,
  RawClient,
  registered,
  runAdmin,
  runParley,
  type ServerProcess,
  sharedPostgres,
  spawnServer,
  startTestServer,
  storageSnapshot,
  TEST_PASSWORD,
  type TestServer,
  tempDir,
  waitFor,
} from "@parley/testkit";
import { BOT_PASSWORD, useBotCalls } from "./bot-calls.js";

const bots = useBotCalls("parley-pg-bots-");

type Response = Awaited<ReturnType<RawClient["request"]>>;

/** A request whose answer may take long (password hashes queued behind many others). */
async function slowRequest(client: RawClient, type: string, params: unknown, timeoutMs = 120_000): Promise<Response> {
  const requestId = `slow-${Math.random().toString(36).slice(2)}`;
  client.send({ type, requestId, params });
  return client.waitFor(
    (m): m is Response => m.type === "response" && m.requestId === requestId,
    `response to ${type}`,
    timeoutMs,
  );
}

function codeOf(reply: Response): string {
  return reply.ok ? "ok" : reply.error.code;
}

describe("several server processes on one PostgreSQL database", { skip: postgresUnavailable() }, () => {
  const servers: ServerProcess[] = [];
  const dirs: string[] = [];
  before(async () => {
    const database = await (await sharedPostgres()).createDatabase();
    // Two processes, each with a data dir of its own (log, control socket), sharing the data.
    for (let i = 0; i < 2; i++) {
      const dir = tempDir();
      dirs.push(dir);
      servers.push(await spawnServer(dir, ["--database", database, "--hash-concurrency", "3"]));
    }
  });
  after(async () => {
    for (const server of servers) {
      server.child.kill("SIGTERM");
      await server.exited;
    }
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("lets exactly one of 50 registrations of one name, spread over both processes, succeed", async () => {
    const clients = await Promise.all(Array.from({ length: 50 }, (_, i) => RawClient.greeted(servers[i % 2]!.url)));
    const replies = await Promise.all(
      clients.map((client) => slowRequest(client, "auth.register", { username: "contested", password: TEST_PASSWORD })),
    );
    const codes = replies.map(codeOf);
    assert.equal(codes.filter((code) => code === "ok").length, 1, codes.join(" "));
    assert.equal(codes.filter((code) => code === "USERNAME_TAKEN").length, 49, codes.join(" "));
    for (const client of clients) client.close();
    // Both processes see the one account.
    for (const server of servers) (await loggedIn(server.url, "contested")).client.close();
  });

  it("ends a session on every process when it is revoked on one", async () => {
    const { client: onFirst } = await registered(servers[0]!.url, "roaming");
    const { client: onSecond } = await loggedIn(servers[1]!.url, "roaming");
    const { client: alsoSecond } = await loggedIn(servers[1]!.url, "roaming");
    await onFirst.call("account.changePassword", { oldPassword: TEST_PASSWORD, newPassword: "a new password" });
    assert.deepEqual(await onSecond.closed, { code: 4003, reason: "SESSION_REVOKED" });
    assert.deepEqual(await alsoSecond.closed, { code: 4003, reason: "SESSION_REVOKED" });
    assert.equal((await onFirst.call<{ username: string }>("account.get")).username, "roaming", "this device stays");
    // A logout of every device from the second process ends the first's too.
    const { client: again } = await loggedIn(servers[1]!.url, "roaming", "a new password");
    await again.call("auth.logout", { allDevices: true });
    assert.equal((await onFirst.closed).code, 4003);
    again.close();
  });

  it("backs up the shared database through parley admin into an SQLite file a server can open", async () => {
    const file = path.join(dirs[0]!, "backup.db");
    const backup = await runAdmin(dirs[0]!, ["backup", file]);
    assert.equal(backup.code, 0, backup.stderr);
    const copy = new SqliteStorage(file);
    try {
      const names = (await new UserStore(copy.sql).all()).map((user) => user.username);
      assert.deepEqual(names, ["contested", "roaming"]);
      assert.equal(await copy.schemaVersion(), SCHEMA_VERSION);
    } finally {
      await copy.close();
    }
  });
});

describe("opening PostgreSQL", { skip: postgresUnavailable() }, () => {
  it("stops the start naming the database, without its password, when it cannot be reached or refuses", async () => {
    await assert.rejects(
      startTestServer({ database: "postgres://parley:hunter22@127.0.0.1:1/parley" }),
      (error: Error) =>
        /^PostgreSQL at postgres:\/\/parley:\*\*\*@127\.0\.0\.1:1\/parley cannot be reached: .*ECONNREFUSED/.test(
          error.message,
        ) && !error.message.includes("hunter22"),
    );
    const url = new URL(await (await sharedPostgres()).createDatabase());
    url.username = "nobody";
    await assert.rejects(startTestServer({ database: url.href }), /PostgreSQL at .*: role "nobody" does not exist/);
  });
});

describe("PostgreSQL restarted under traffic", { skip: postgresUnavailable() }, () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ database: await (await sharedPostgres()).createDatabase() });
  });
  after(async () => {
    await t.stop();
  });

  it("fails requests with STORAGE_UNAVAILABLE while it is down, loses nothing acknowledged and recovers by itself", async () => {
    const cluster = await sharedPostgres();
    // Owners add entries to their phone books as fast as they can; every target is a user of its own.
    const users = new UserStore(t.server.storage.sql);
    const targets: number[] = [];
    for (let i = 0; i < 400; i++) targets.push((await users.create(`target-${i}`, `Target ${i}`, "x"))!.id);
    // One after the other: parallel registrations would queue for one password hash at a time.
    const owners: Awaited<ReturnType<typeof registered>>[] = [];
    for (let i = 0; i < 3; i++) owners.push(await registered(t.url, `owner-${i}`));
    const acknowledged = new Map<string, number[]>();
    const codes = new Map<string, number>();
    let stop = false;
    const workers = owners.map(async ({ client }, w) => {
      const mine: number[] = [];
      acknowledged.set(`owner-${w}`, mine);
      for (let i = w; i < targets.length && !stop; i += owners.length) {
        const reply = await client.request("phonebook.add", { username: `target-${i}` }).catch(() => undefined);
        const code = reply ? codeOf(reply) : "no answer";
        codes.set(code, (codes.get(code) ?? 0) + 1);
        if (code === "ok") mine.push(targets[i]!);
        else await new Promise((r) => setTimeout(r, 50));
      }
    });
    await waitFor(() => [...acknowledged.values()].flat().length >= 30, "traffic before the restart");
    let failedWhileDown: Response | undefined;
    await cluster.restart(async () => {
      failedWhileDown = await owners[0]!.client.request("phonebook.list");
      await new Promise((r) => setTimeout(r, 500));
    });
    assert.equal(failedWhileDown && codeOf(failedWhileDown), "STORAGE_UNAVAILABLE");
    // Back by itself: requests succeed again without anyone restarting Parley.
    await waitFor(async () => (await owners[1]!.client.request("phonebook.list")).ok, "requests served again", {
      timeoutMs: 30_000,
    });
    const before = [...acknowledged.values()].flat().length;
    await waitFor(() => [...acknowledged.values()].flat().length >= before + 30, "traffic after the restart", {
      timeoutMs: 60_000,
    });
    stop = true;
    await Promise.all(workers);
    assert.ok((codes.get("STORAGE_UNAVAILABLE") ?? 0) > 0, `failures were typed: ${JSON.stringify([...codes])}`);
    assert.deepEqual(
      [...codes.keys()].filter((code) => !["ok", "STORAGE_UNAVAILABLE", "ENTRY_EXISTS"].includes(code)),
      [],
      `no other failure: ${JSON.stringify([...codes])}`,
    );
    const phonebook = new PhonebookStore(t.server.storage.sql);
    for (const [w, { client }] of owners.entries()) {
      const stored = new Set((await phonebook.list((await users.byName(`owner-${w}`))!.id)).map((e) => e.userId));
      for (const id of acknowledged.get(`owner-${w}`)!) assert.ok(stored.has(id), `entry for user ${id} was lost`);
      client.close();
    }
    // Sessions made before the restart still work on new connections.
    (await loggedIn(t.url, "owner-0")).client.close();
  });
});

describe("parley admin migrate-to-postgres", { skip: postgresUnavailable() }, () => {
  it("copies an SQLite installation completely, refuses a target that is not empty, and calls work on the copy", async () => {
    // An SQLite installation with accounts, sessions, a call in the history, audit entries and a phone book.
    const dataDir = tempDir();
    const sqlite = await startTestServer({ dataDir });
    const url = await (await sharedPostgres()).createDatabase();
    const serverDir = tempDir();
    let server: ServerProcess | undefined;
    try {
      await bots.botCall(
        { user: "mig-bob", hz: 660, server: sqlite.url },
        { user: "mig-alice", hz: 440, server: sqlite.url },
        2,
      );
      const alice = await loggedIn(sqlite.url, "mig-alice", BOT_PASSWORD);
      await alice.client.call("phonebook.add", { username: "mig-bob", label: "Bob", favourite: true });
      alice.client.close();
      await sqlite.server.close();

      const migrate = () => runParley(["admin", "migrate-to-postgres", "--from", dataDir, "--to", url]);
      const migrated = await migrate();
      assert.equal(migrated.code, 0, migrated.stderr);
      assert.match(migrated.stdout, /counts checked/);
      const source = new SqliteStorage(path.join(dataDir, "parley.db"));
      const target = await PostgresStorage.open(url);
      try {
        const counts = await source.tableCounts();
        assert.ok(counts.users === 2 && counts.sessions > 0 && counts.settings > 0, JSON.stringify(counts));
        assert.ok(counts.phonebook_entries === 1 && counts.calls === 1 && counts.call_participants === 2);
        assert.ok(counts.audit_log > 0);
        assert.deepEqual(await target.tableCounts(), counts);
        // Row for row, value for value (PostgreSQL's own insertion numbering of calls aside).
        assert.equal(await storageSnapshot(target, { ignoreColumns: ["seq"] }), await storageSnapshot(source));
      } finally {
        await source.close();
        await target.close();
      }

      const again = await migrate();
      assert.equal(again.code, 1);
      assert.match(again.stderr, /not empty \(users: 2/);

      // A server on the copy: the bots log in with their passwords, call, and the history goes on.
      server = await spawnServer(serverDir, ["--database", url]);
      const call = await bots.botCall(
        { user: "mig-alice", hz: 440, server: server.url },
        { user: "mig-bob", hz: 660, server: server.url },
        3,
      );
      bots.assertHears("mig-bob", 440, call);
      // The accounts came over: registration finds the names taken and the passwords log in.
      assert.match(call.callee.output(), /logged in as mig-alice/);
      assert.match(call.caller.output(), /logged in as mig-bob/);
      const bob = await loggedIn(server.url, "mig-bob", BOT_PASSWORD);
      const history = await bob.client.call<{ calls: { direction: string }[] }>("call.history");
      assert.deepEqual(
        history.calls.map((c) => c.direction),
        ["outgoing", "incoming"],
      );
      const book = await (await loggedIn(server.url, "mig-alice", BOT_PASSWORD)).client.call<{
        entries: { label: string }[];
      }>("phonebook.list");
      assert.deepEqual(
        book.entries.map((e) => e.label),
        ["Bob"],
      );
      bob.client.close();
    } finally {
      if (server) {
        server.child.kill("SIGTERM");
        await server.exited;
      }
      await sqlite.server.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
      fs.rmSync(serverDir, { recursive: true, force: true });
    }
  });
});
