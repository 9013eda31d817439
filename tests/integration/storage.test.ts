import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { MIGRATIONS, openDatabase, schemaVersion } from "@parley/server";
import { loggedIn, PARLEY_BIN, RawClient, runParley, spawnServer, TEST_PASSWORD, tempDir } from "@parley/testkit";
import Database from "better-sqlite3";

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
        const reply = await c.request("auth.register", { username, password: TEST_PASSWORD }).catch(() => undefined);
        if (!reply?.ok) break;
        acknowledged.push(username);
        const added = await c
          .request("phonebook.add", { username: "crash-0-0", label: username })
          .catch(() => undefined);
        if (added?.ok) entries.push(username);
        await c.request("auth.logout", {}).catch(() => undefined);
      }
    });
    while (acknowledged.length < 12) await new Promise((r) => setTimeout(r, 20));
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
