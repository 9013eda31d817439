import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { ParleyError } from "@parley/protocol";
import {
  AuditLog,
  CallHistoryStore,
  type CallRecord,
  MIGRATIONS,
  openDatabase,
  PhonebookStore,
  PostgresStorage,
  SCHEMA_VERSION,
  SessionStore,
  SettingsStore,
  SqliteStorage,
  type Storage,
  schemaVersion,
  TABLES,
  UniqueViolation,
  UserStore,
} from "@parley/server";
import {
  BACKENDS,
  type Backend,
  backendUnavailable,
  freshDatabase,
  loggedIn,
  PARLEY_BIN,
  RawClient,
  runParley,
  spawnServer,
  TEST_PASSWORD,
  tempDir,
  waitFor,
} from "@parley/testkit";
import Database from "better-sqlite3";

/** A fresh empty database on `backend`, opened; `reopen` opens the same one again. */
async function freshStorage(backend: Backend): Promise<{ storage: Storage; reopen(): Promise<Storage> }> {
  const url = await freshDatabase(backend);
  const file = path.join(tempDir(), "parley.db");
  const reopen = async (): Promise<Storage> => (url ? PostgresStorage.open(url) : new SqliteStorage(file));
  return { storage: await reopen(), reopen };
}

function call(id: string, createdAt: string, users: { id: number; username: string }[], heldMs = 0): CallRecord {
  const endedAt = new Date(Date.parse(createdAt) + 60_000).toISOString();
  return {
    id,
    createdAt,
    answeredAt: createdAt,
    endedAt,
    outcome: "answered",
    endReason: "hangup",
    heldMs,
    participants: users.map((user, i) => ({
      id: user.id,
      username: user.username,
      displayName: user.username,
      role: i === 0 ? "caller" : "callee",
      outcome: "answered",
      joinedAt: createdAt,
      leftAt: endedAt,
    })),
  };
}

// The storage contract: the same statements answer alike on both back-ends.
for (const backend of BACKENDS) {
  describe(`storage contract (${backend})`, { skip: backendUnavailable(backend) }, () => {
    const opened: Storage[] = [];
    const open = async () => {
      const fresh = await freshStorage(backend);
      opened.push(fresh.storage);
      return fresh;
    };
    after(async () => {
      for (const storage of opened) await storage.close();
    });

    it("creates the schema at the latest version, keeps data across a reopen and refuses a newer schema", async () => {
      const { storage, reopen } = await open();
      assert.equal(await storage.schemaVersion(), SCHEMA_VERSION);
      assert.equal(SCHEMA_VERSION, MIGRATIONS.length);
      await new SettingsStore(storage.sql).set("k", "v");
      await storage.close();
      const again = await reopen();
      assert.equal(await again.schemaVersion(), SCHEMA_VERSION);
      assert.equal(await new SettingsStore(again.sql).get("k"), "v");
      if (backend === "postgres") await again.sql.run("UPDATE parley_schema SET version = ?", [SCHEMA_VERSION + 1]);
      else (again as SqliteStorage).db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
      await again.close();
      await assert.rejects(reopen(), /newer than this server/);
    });

    it("answers duplicates alike: a taken username, a listed phone book entry, a unique violation", async () => {
      const { storage } = await open();
      const users = new UserStore(storage.sql);
      const alice = await users.create("alice", "Alice", "h");
      assert.ok(alice);
      assert.equal(await users.create("alice", "Other", "h"), undefined);
      const bob = (await users.create("bob", "Bob", "h"))!;
      assert.equal(await users.setUsername(bob.id, "alice"), false);
      assert.equal(await users.setUsername(bob.id, "bobby"), true);
      await assert.rejects(
        storage.sql.run("INSERT INTO settings (key, value) VALUES ('x', '1'), ('x', '2')"),
        UniqueViolation,
      );
      assert.equal(await new SettingsStore(storage.sql).get("x"), undefined, "the failed statement left nothing");
      const phonebook = new PhonebookStore(storage.sql);
      await phonebook.add(alice.id, bob.id, { label: "Bob" });
      await assert.rejects(
        phonebook.add(alice.id, bob.id, {}),
        (error) => error instanceof ParleyError && error.code === "ENTRY_EXISTS",
      );
      const settings = new SettingsStore(storage.sql);
      assert.equal(await settings.setIfAbsent("secret", "first"), "first");
      assert.equal(await settings.setIfAbsent("secret", "second"), "first");
    });

    it("orders text by bytes and folds only ASCII case, as SQLite does", async () => {
      const { storage } = await open();
      const users = new UserStore(storage.sql);
      const names = ["b", "a_b", "a.b", "a-b", "ab", "a0", "B", "été", "zed"];
      for (const name of names) await users.create(name, name, "h");
      assert.deepEqual(
        (await users.all()).map((u) => u.username),
        ["B", "a-b", "a.b", "a0", "a_b", "ab", "b", "zed", "été"],
      );
      const owner = (await users.byName("zed"))!;
      const phonebook = new PhonebookStore(storage.sql);
      const labels: [string, string, boolean][] = [
        ["b", "beta", false],
        ["ab", "Alpha", false],
        ["a0", "alpha", false],
        ["a_b", "Émile", false],
        ["B", "zulu", true],
      ];
      for (const [username, label, favourite] of labels) {
        const target = (await storage.sql.get<{ id: number }>("SELECT id FROM users WHERE username = ?", [username]))!;
        await phonebook.add(owner.id, target.id, { label, favourite });
      }
      assert.deepEqual(
        (await phonebook.list(owner.id)).map((e) => e.label),
        ["zulu", "alpha", "Alpha", "beta", "Émile"],
      );
    });

    it("reads times back exactly as written and compares them as times; counts and large numbers as numbers", async () => {
      const { storage } = await open();
      const users = new UserStore(storage.sql);
      const user = (await users.create("timely", "T", "h"))!;
      assert.match(user.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(typeof user.id, "number");
      assert.equal(user.last_login_at, null);
      assert.equal(user.disabled, 0);
      const sessions = new SessionStore(storage.sql);
      const { token, session } = await sessions.create(user.id, "laptop", 3_600_000);
      assert.equal(Date.parse(session.expires_at) - Date.parse(session.created_at), 3_600_000);
      assert.deepEqual(await sessions.byToken(token), session);
      const short = await sessions.create(user.id, "phone", 1);
      await new Promise((r) => setTimeout(r, 10));
      assert.equal(await sessions.byToken(short.token), undefined, "expired");
      assert.deepEqual(
        (await sessions.ofUser(user.id)).map((s) => s.device_name),
        ["laptop"],
      );
      const audit = new AuditLog(storage.sql);
      audit.record({ action: "register", username: "timely" });
      await audit.flush();
      const [entry] = await audit.query({ since: "2000-01-01T00:00:00.000Z" });
      assert.equal(typeof entry!.id, "number");
      assert.deepEqual(await audit.query({ until: "2000-01-01T00:00:00.000Z" }), []);
      assert.equal(await audit.deleteOlderThan("2000-01-01T00:00:00.000Z", 10), 0);
      assert.equal(await audit.deleteOlderThan(new Date(Date.now() + 1000).toISOString(), 10), 1);
      await audit.close();
      const history = new CallHistoryStore(storage.sql);
      history.record(call("c-big", "2026-01-01T00:00:00.001Z", [user, user], 2 ** 40));
      await history.flush();
      const [big] = await history.forUser(user.id);
      assert.equal(big!.heldMs, 2 ** 40);
      assert.equal(big!.createdAt, "2026-01-01T00:00:00.001Z");
      assert.equal(await history.count(), 1);
      assert.equal(await history.deleteEndedBefore("2026-01-01T00:01:00.001Z", 10), 0, "ended at that instant");
      assert.equal(await history.deleteEndedBefore("2026-01-01T00:01:00.002Z", 10), 1);
    });

    it("lists call history newest first, calls of the same millisecond in the order they were recorded", async () => {
      const { storage } = await open();
      const users = new UserStore(storage.sql);
      const a = (await users.create("caller", "A", "h"))!;
      const b = (await users.create("callee", "B", "h"))!;
      const history = new CallHistoryStore(storage.sql);
      const at = "2026-03-01T10:00:00.000Z";
      for (const id of ["zz", "aa", "mm"]) history.record(call(id, at, [a, b]));
      history.record(call("later", "2026-03-01T10:00:00.001Z", [b, a]));
      const ids = (await history.forUser(a.id)).map((c) => c.callId);
      assert.deepEqual(ids, ["later", "mm", "aa", "zz"]);
      const [latest] = await history.forUser(a.id, 1);
      assert.equal(latest!.direction, "incoming");
      assert.deepEqual((await history.forUser(b.id, 10, at)).length, 0);
    });

    it("makes a transaction all or nothing, and invisible to others until it commits", async () => {
      const { storage } = await open();
      const count = async () => (await storage.sql.get<{ n: number }>("SELECT COUNT(*) AS n FROM settings"))!.n;
      await assert.rejects(
        storage.sql.transaction(async (tx) => {
          await tx.run("INSERT INTO settings (key, value) VALUES ('a', '1')");
          throw new Error("changed my mind");
        }),
        /changed my mind/,
      );
      assert.equal(await count(), 0);
      await storage.sql.transaction(async (tx) => {
        await tx.run("INSERT INTO settings (key, value) VALUES ('outer', '1')");
        await assert.rejects(
          tx.transaction(async (inner) => {
            await inner.run("INSERT INTO settings (key, value) VALUES ('inner', '1')");
            await inner.run("INSERT INTO settings (key, value) VALUES ('outer', '2')");
          }),
          UniqueViolation,
        );
      });
      assert.deepEqual(await storage.sql.all("SELECT key, value FROM settings ORDER BY key"), [
        { key: "outer", value: "1" },
      ]);
      // Readers racing a transaction of ten rows see none or all of them.
      const seen = new Set<number>();
      const writer = storage.sql.transaction(async (tx) => {
        for (let i = 0; i < 10; i++) await tx.run("INSERT INTO settings (key, value) VALUES (?, ?)", [`r${i}`, "x"]);
      });
      const readers = Array.from({ length: 20 }, async () => seen.add(await count()));
      await Promise.all([writer, ...readers]);
      assert.deepEqual(
        [...seen].filter((n) => n !== 1 && n !== 11),
        [],
        "no reader saw half the transaction",
      );
      assert.equal(await count(), 11);
    });

    it("backs up a consistent copy into a new SQLite file that opens as a Parley database", async () => {
      const { storage } = await open();
      const users = new UserStore(storage.sql);
      const a = (await users.create("backup-a", "A", "h"))!;
      const b = (await users.create("backup-b", "B", "h"))!;
      await new PhonebookStore(storage.sql).add(a.id, b.id, { label: "B" });
      const history = new CallHistoryStore(storage.sql);
      history.record(call("c1", "2026-02-01T00:00:00.000Z", [a, b], 1500));
      await history.flush();
      const dir = tempDir();
      const file = path.join(dir, "copy.db");
      const result = await storage.backup(file);
      assert.equal(fs.statSync(file).mode & 0o077, 0, "owner-only");
      const counts = await storage.tableCounts();
      for (const table of TABLES) assert.equal(result.tables[table], counts[table], table);
      await assert.rejects(storage.backup(file), /already exists/);
      const copy = new SqliteStorage(file);
      assert.deepEqual(await new UserStore(copy.sql).all(), await users.all());
      assert.deepEqual(await new CallHistoryStore(copy.sql).forUser(b.id), await history.forUser(b.id));
      await copy.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it("tells the other server processes on the database, and resynchronises them after a lost connection", {
      skip: backend === "sqlite" && "SQLite has one server process: nothing to tell",
    }, async () => {
      const { storage, reopen } = await open();
      const other = await reopen();
      opened.push(other);
      const heard: string[] = [];
      let resyncs = 0;
      other.subscribe(
        "parley_test",
        (payload) => heard.push(payload),
        () => resyncs++,
      );
      await waitFor(async () => {
        await storage.publish("parley_test", "ping");
        return heard.includes("ping");
      }, "the message heard by the other process");
      // The listening connection is cut (as a restart of PostgreSQL or a network failure would).
      await storage.sql.run(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'",
      );
      await waitFor(() => resyncs === 1, "a resync after the listener reconnected");
      heard.length = 0;
      await waitFor(async () => {
        await storage.publish("parley_test", "again");
        return heard.includes("again");
      }, "messages heard again");
    });
  });
}

describe("storage", () => {
  it("creates the schema at the latest migration and reopens an existing database unchanged", () => {
    const dir = tempDir();
    const file = path.join(dir, "parley.db");
    const db = openDatabase(file);
    assert.equal(schemaVersion(db), MIGRATIONS.length);
    assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    assert.equal(db.pragma("synchronous", { simple: true }), 2, "synchronous=FULL");
    db.prepare("INSERT INTO settings (key, value) VALUES ('k', 'v')").run();
    db.close();
    const again = openDatabase(file);
    assert.equal(schemaVersion(again), MIGRATIONS.length);
    assert.deepEqual(again.prepare("SELECT value FROM settings WHERE key = 'k'").get(), { value: "v" });
    again.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("refuses a database written by a newer Parley instead of damaging it", () => {
    const dir = tempDir();
    const file = path.join(dir, "parley.db");
    const raw = new Database(file);
    raw.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    raw.close();
    assert.throws(() => openDatabase(file), /newer than this server/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("loses no acknowledged write when the server process is killed mid-traffic", async () => {
    const dir = tempDir();
    const server = await spawnServer(dir);
    const acknowledged: string[] = [];
    const entries: string[] = [];
    let stop = false;
    // Four clients register accounts and fill phone books as fast as they can.
    const workers = Array.from({ length: 4 }, async (_, w) => {
      const c = await RawClient.greeted(server.url);
      for (let i = 0; !stop; i++) {
        const username = `crash-${w}-${i}`;
        // Four registrations queue for one password hash at a time: on a loaded machine an answer
        // takes longer than a request's usual 5 s.
        const requestId = `register-${w}-${i}`;
        c.send({ type: "auth.register", requestId, params: { username, password: TEST_PASSWORD } });
        const reply = await Promise.race([
          c.waitFor((m) => m.type === "response" && m.requestId === requestId, "registration", 60_000),
          c.closed.then(() => undefined),
        ]).catch(() => undefined);
        if (!(reply?.type === "response" && reply.ok)) break;
        acknowledged.push(username);
        const added = await c
          .request("phonebook.add", { username: "crash-0-0", label: username })
          .catch(() => undefined);
        if (added?.ok) entries.push(username);
        await c.request("auth.logout", {}).catch(() => undefined);
      }
    });
    let working = workers.length;
    for (const worker of workers) void worker.finally(() => working--);
    while (acknowledged.length < 12 && working > 0) await new Promise((r) => setTimeout(r, 20));
    assert.ok(acknowledged.length >= 12, `only ${acknowledged.length} registrations acknowledged before the kill`);
    server.child.kill("SIGKILL");
    stop = true;
    await server.exited;
    await Promise.allSettled(workers);

    const db = new Database(path.join(dir, "parley.db"));
    assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
    const stored = new Set(
      (db.prepare("SELECT username FROM users").all() as { username: string }[]).map((r) => r.username),
    );
    for (const username of acknowledged) assert.ok(stored.has(username), `${username} was acknowledged but lost`);
    const labels = new Set(
      (db.prepare("SELECT label FROM phonebook_entries").all() as { label: string }[]).map((r) => r.label),
    );
    for (const label of entries) assert.ok(labels.has(label), `phone book entry ${label} was acknowledged but lost`);
    db.close();

    // The server starts again on the same data dir (the stale control socket is cleaned up).
    const again = await spawnServer(dir);
    (await loggedIn(again.url, acknowledged[0]!)).client.close();
    again.child.kill("SIGTERM");
    assert.equal(await again.exited, 0);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe("server process", () => {
  it("documents its flags and environment variables in --help", async () => {
    const help = await runParley(["server", "--help"]);
    for (const text of [
      "--host",
      "--port",
      "--data-dir",
      "PARLEY_HOST",
      "PARLEY_PORT",
      "PARLEY_DATA_DIR",
      "--database",
      "PARLEY_DATABASE_URL",
      "--no-signup",
    ]) {
      assert.ok(help.stdout.includes(text), text);
    }
  });

  it("prints where it listens, answers /healthz, and stops cleanly on SIGTERM", async () => {
    const dir = tempDir();
    const server = await spawnServer(dir);
    assert.match(
      server.output(),
      /Parley \S+ listening on http:\/\/127\.0\.0\.1:\d+ \(signaling ws:\/\/127\.0\.0\.1:\d+\/ws\)/,
    );
    const health = await fetch(`${server.httpUrl}/healthz`);
    assert.equal(health.status, 200);
    const body = (await health.json()) as { status: string; version: string };
    assert.equal(body.status, "ok");
    const c = await RawClient.greeted(server.url);
    server.child.kill("SIGTERM");
    assert.deepEqual(await c.closed, { code: 1001, reason: "GOING_AWAY" });
    assert.equal(await server.exited, 0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("takes its port and data dir from the environment", async () => {
    const dir = tempDir();
    const child = spawn(process.execPath, [PARLEY_BIN, "server", "--quiet"], {
      env: { ...process.env, PARLEY_HOST: "127.0.0.1", PARLEY_PORT: "0", PARLEY_DATA_DIR: dir },
    });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    while (!out.includes("listening on")) await new Promise((r) => setTimeout(r, 20));
    assert.ok(fs.existsSync(path.join(dir, "parley.db")));
    assert.match(out, /listening on http:\/\/127\.0\.0\.1:/);
    child.kill("SIGINT");
    await new Promise((r) => child.on("exit", r));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("refuses to start a second server on the same data dir", async () => {
    const dir = tempDir();
    const first = await spawnServer(dir);
    const second = await runParley(["server", "--host", "127.0.0.1", "--port", "0", "--data-dir", dir, "--quiet"]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /Another Parley server is running with this data dir/);
    first.child.kill("SIGTERM");
    await first.exited;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("reports a port already in use instead of crashing", async () => {
    const dir = tempDir();
    const first = await spawnServer(dir);
    const port = new URL(first.httpUrl).port;
    const otherDir = tempDir();
    const second = await runParley([
      "server",
      "--host",
      "127.0.0.1",
      "--port",
      port,
      "--data-dir",
      otherDir,
      "--quiet",
    ]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /cannot start: .*EADDRINUSE/);
    first.child.kill("SIGTERM");
    await first.exited;
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(otherDir, { recursive: true, force: true });
  });
});
