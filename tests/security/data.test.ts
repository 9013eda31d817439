/**
 * Data protection: an online backup taken while clients write opens as a sound database holding
 * every table and everything acknowledged before it began; a backup never overwrites a file;
 * retention deletes audit entries and call history past their days (and keeps everything at 0);
 * a data dir left readable by others is made owner-only at start, with a warning.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import {
  CallHistoryStore,
  type CallRecord,
  openDatabase,
  type SqlClient,
  SqliteClient,
  type SqlValue,
} from "@parley/server";
import {
  BACKENDS,
  backendUnavailable,
  RawClient,
  registered,
  runAdmin,
  spawnServer,
  startTestServer,
  TEST_PASSWORD,
  type TestServer,
  type TestServerOptions,
  tempDir,
  waitFor,
} from "@parley/testkit";
import Database from "better-sqlite3";

const DAY_MS = 24 * 60 * 60 * 1000;

const servers: TestServer[] = [];
const dirs: string[] = [];
after(async () => {
  for (const t of servers) await t.stop();
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

async function server(options: TestServerOptions = {}): Promise<TestServer> {
  const t = await startTestServer(options);
  servers.push(t);
  return t;
}

function scratch(prefix: string): string {
  const dir = tempDir(prefix);
  dirs.push(dir);
  return dir;
}

function mode(file: string): number {
  return fs.statSync(file).mode & 0o777;
}

function count(db: Database.Database, sql: string, ...args: unknown[]): number {
  return (db.prepare(sql).get(...args) as { n: number }).n;
}

function tableNames(db: Database.Database): string[] {
  return (
    db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
      .all() as { name: string }[]
  ).map((row) => row.name);
}

/** Adds `count` audit entries of ~2 KiB at `at` straight into the live database (one transaction). */
function bulkAudit(db: Database.Database, count: number, at: string, action = "login"): void {
  const insert = db.prepare(
    "INSERT INTO audit_log (at, action, actor, username, address, detail) VALUES (?, ?, NULL, ?, '127.0.0.1', ?)",
  );
  const detail = JSON.stringify({ padding: "x".repeat(2000) });
  db.transaction(() => {
    for (let i = 0; i < count; i++) insert.run(at, action, `bulk${i}`, detail);
  })();
}

describe("backup", { timeout: 150_000 }, () => {
  it("takes a backup during write load that passes an integrity check and holds every table and the latest rows", async () => {
    // The writers are this test's own clients: no message rate limit gets in their way.
    const t = await server({ messageRate: { burst: 1_000_000, perSecond: 1_000_000, maxStrikes: 50 } });
    const live = t.server.db;
    // Some 8 MB of history, so the copy takes many steps and the clients' writes land in between.
    bulkAudit(live, 4000, new Date(Date.now() - DAY_MS).toISOString());

    // The writer keeps rewriting one phone book entry's notes; others keep registering accounts.
    const writer = await registered(t.url, "writer");
    await registered(t.url, "target");
    const entry = await writer.client.call<{ id: number }>("phonebook.add", { username: "target" });
    let notesAcked = 0;
    const accounts: string[] = [];
    let stop = false;
    const phonebookLoad = (async () => {
      for (let seq = 1; !stop; seq++) {
        await writer.client.call("phonebook.update", { id: entry.id, notes: `write ${seq}` });
        notesAcked = seq;
      }
    })();
    const registrationLoad = (async () => {
      const client = await RawClient.greeted(t.url);
      for (let i = 0; !stop; i++) {
        const username = `load${i}`;
        await client.call("auth.register", { username, password: TEST_PASSWORD });
        accounts.push(username);
        await client.call("auth.logout");
      }
      client.close();
    })();
    await waitFor(() => notesAcked >= 20 && accounts.length >= 2, "writes under way", { timeoutMs: 30_000 });

    const file = path.join(scratch("parley-backup-"), "parley-backup.db");
    const notesBefore = notesAcked;
    const accountsBefore = [...accounts];
    const backup = t.server.commands.run(["backup", file], "operator");
    let backupDone = false;
    void backup.then(() => {
      backupDone = true;
    });
    const result = await backup;
    const notesDuring = notesAcked - notesBefore;
    stop = true;
    await Promise.all([phonebookLoad, registrationLoad]);
    assert.equal(backupDone, true);
    assert.equal(result.exitCode, 0, result.output);
    assert.ok(notesDuring > 0, "clients' writes were answered while the backup ran (it is online, in steps)");

    assert.equal(mode(file), 0o600, "the backup is owner-only: it holds password hashes");
    assert.match(result.output, new RegExp(`backup written to ${file} \\(\\d+ bytes\\)`));
    assert.match(result.output, /audit_log\s+\d+/);
    assert.match(result.output, /users\s+\d+/);
    for (const leftover of ["-wal", "-shm", "-journal"]) assert.ok(!fs.existsSync(file + leftover), `no ${leftover}`);

    const copy = new Database(file, { readonly: true, fileMustExist: true });
    try {
      assert.equal(copy.pragma("integrity_check", { simple: true }), "ok");
      assert.deepEqual(tableNames(copy), tableNames(live), "every table");
      assert.equal(copy.pragma("user_version", { simple: true }), live.pragma("user_version", { simple: true }));
      const notes = (
        copy.prepare("SELECT notes FROM phonebook_entries WHERE id = ?").get(entry.id) as { notes: string }
      ).notes;
      assert.ok(Number(/^write (\d+)$/.exec(notes)?.[1]) >= notesBefore, `${notes} is at least write ${notesBefore}`);
      const users = new Set(
        (copy.prepare("SELECT username FROM users").all() as { username: string }[]).map((u) => u.username),
      );
      const audited = new Set(
        (copy.prepare("SELECT username FROM audit_log WHERE action = 'register'").all() as { username: string }[]).map(
          (u) => u.username,
        ),
      );
      for (const username of ["writer", "target", ...accountsBefore]) {
        assert.ok(users.has(username), `${username}'s account is in the backup`);
        assert.ok(audited.has(username), `${username}'s registration is in the backup's audit log`);
      }
      assert.equal(count(copy, "SELECT COUNT(*) AS n FROM audit_log WHERE username LIKE 'bulk%'"), 4000);
    } finally {
      copy.close();
    }
    writer.client.close();
    // Taking the copy is itself audited.
    const [audited] = await t.server.operator.audit({ action: "admin.backup" });
    assert.equal(audited?.detail?.file, file);
  });

  it("refuses to overwrite an existing file through parley admin, changing nothing", async () => {
    const t = await server();
    const dir = scratch("parley-backup-");
    const file = path.join(dir, "existing.db");
    fs.writeFileSync(file, "precious");
    const refused = await runAdmin(t.dataDir, ["backup", file]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /BAD_PARAMS.*already exists/);
    assert.equal(fs.readFileSync(file, "utf8"), "precious");

    const missingDir = await runAdmin(t.dataDir, ["backup", path.join(dir, "no-such-dir", "b.db")]);
    assert.equal(missingDir.code, 1, missingDir.stderr);
    assert.match(missingDir.stderr, /does not exist/);

    const fresh = path.join(dir, "fresh.db");
    const taken = await runAdmin(t.dataDir, ["backup", fresh]);
    assert.equal(taken.code, 0, taken.stderr);
    assert.match(taken.stdout, /backup written to/);
    assert.equal(mode(fresh), 0o600);
    assert.deepEqual(
      (await t.server.operator.audit({ action: "admin.backup" })).length,
      1,
      "only the backup taken is audited",
    );
  });
});

describe("audit log writes", { timeout: 60_000 }, () => {
  it("queues entries off the event loop's path and writes them in batches, seen by every query and kept at shutdown", async () => {
    const t = await startTestServer();
    const file = path.join(t.dataDir, "parley.db");
    const onDisk = () => {
      const reader = new Database(file, { readonly: true, fileMustExist: true });
      try {
        return count(reader, "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'admin.signup'");
      } finally {
        reader.close();
      }
    };
    try {
      const signups = (n: number, value?: boolean) =>
        Promise.all(Array.from({ length: n }, (_, i) => t.server.operator.setSignup(value ?? i % 2 === 0, "console")));
      await signups(10);
      assert.equal(onDisk(), 0, "recorded, not yet written: no disk sync per entry");
      assert.equal((await t.server.operator.audit({ action: "admin.signup" })).length, 10, "a query sees every entry");
      assert.equal(onDisk(), 10, "the query wrote the queue first");

      // A full batch is written at once, in one transaction.
      await signups(250, true);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(onDisk(), 210);
      await signups(5, true);
      // Within the flush interval, without a query.
      await waitFor(() => onDisk() === 265, "the queue written by its timer");

      await signups(3, true);
    } finally {
      await t.server.close();
    }
    assert.equal(onDisk(), 268, "a clean shutdown writes what was queued");
    fs.rmSync(t.dataDir, { recursive: true, force: true });
  });
});

describe("call history writes", { timeout: 60_000 }, () => {
  it("queues ended calls off the event loop's path and writes them in batches, seen by every read", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const file = path.join(dir, "parley.db");
    const db = openDatabase(file);
    const store = new CallHistoryStore(new SqliteClient(db));
    const onDisk = () => {
      const reader = new Database(file, { readonly: true, fileMustExist: true });
      try {
        return count(reader, "SELECT COUNT(*) AS n FROM calls");
      } finally {
        reader.close();
      }
    };
    const at = new Date().toISOString();
    const refused = (i: number): CallRecord => ({
      id: `refused-${i}`,
      createdAt: at,
      answeredAt: null,
      endedAt: at,
      outcome: "unreachable",
      endReason: null,
      heldMs: 0,
      participants: [
        {
          id: 1,
          username: "ann",
          displayName: "Ann",
          role: "caller",
          outcome: "unreachable",
          joinedAt: null,
          leftAt: at,
        },
        {
          id: 2,
          username: "ben",
          displayName: "Ben",
          role: "callee",
          outcome: "unreachable",
          joinedAt: null,
          leftAt: at,
        },
      ],
    });
    try {
      for (let i = 0; i < 10; i++) store.record(refused(i));
      assert.equal(onDisk(), 0, "recorded, not yet written: no disk sync per call");
      assert.equal(await store.count(), 10, "a read sees every call");
      assert.equal(onDisk(), 10, "the read wrote the queue first");
      for (let i = 10; i < 260; i++) store.record(refused(i));
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(onDisk(), 210, "a full batch is written at once");
      await waitFor(() => onDisk() === 260, "the queue written by its timer");
      store.record(refused(999));
      await store.flush();
      assert.equal(onDisk(), 261, "flush (at shutdown) writes what was queued");
    } finally {
      db.close();
    }
  });
});

/** `count` audit entries of ~2 KiB at `at`, straight into the server's database (one transaction). */
async function bulkAuditRows(sql: SqlClient, count: number, at: string, action = "login"): Promise<void> {
  const detail = JSON.stringify({ padding: "x".repeat(2000) });
  await sql.transaction(async (tx) => {
    for (let i = 0; i < count; i += 100) {
      const rows = Array.from({ length: Math.min(100, count - i) }, (_, j) => [at, action, `bulk${i + j}`, detail]);
      await tx.run(
        `INSERT INTO audit_log (at, action, actor, username, address, detail) VALUES ${rows
          .map(() => "(?, ?, NULL, ?, '127.0.0.1', ?)")
          .join(", ")}`,
        rows.flat(),
      );
    }
  });
}

/** A finished 1:1 call that ended at `endedAt`, with its two participants, straight into the database. */
async function oldCallRow(sql: SqlClient, id: string, endedAt: string): Promise<void> {
  await sql.transaction(async (tx) => {
    await tx.run(
      `INSERT INTO calls (id, caller_id, callee_id, caller_name, caller_display_name, callee_name, callee_display_name,
         created_at, answered_at, ended_at, outcome, end_reason)
       VALUES (?, NULL, NULL, 'ann', 'Ann', 'ben', 'Ben', ?, ?, ?, 'answered', 'hangup')`,
      [id, endedAt, endedAt, endedAt],
    );
    for (const [position, name, role] of [
      [0, "ann", "caller"],
      [1, "ben", "callee"],
    ] as const) {
      await tx.run(
        `INSERT INTO call_participants (call_id, position, user_id, username, display_name, role, outcome, joined_at, left_at)
         VALUES (?, ?, NULL, ?, ?, ?, 'answered', ?, ?)`,
        [id, position, name, name.toUpperCase(), role, endedAt, endedAt],
      );
    }
  });
}

async function countOf(sql: SqlClient, statement: string, ...args: SqlValue[]): Promise<number> {
  return (await sql.get<{ n: number }>(statement, args))!.n;
}

// Retention runs the same statements on both back-ends.
for (const backend of BACKENDS) {
  describe(`retention (${backend})`, { timeout: 60_000, skip: backendUnavailable(backend) }, () => {
    it("deletes audit entries and calls past their days, in batches, and keeps recent ones", async () => {
      const t = await server({ backend, retention: { auditDays: 30, historyDays: 10 } });
      const sql = t.server.storage.sql;
      const now = Date.now();
      const ago = (days: number) => new Date(now - days * DAY_MS).toISOString();
      await bulkAuditRows(sql, 1234, ago(31), "login_failed");
      await bulkAuditRows(sql, 7, ago(29), "logout");
      await oldCallRow(sql, "old-call-1", ago(11));
      await oldCallRow(sql, "old-call-2", ago(400));
      await oldCallRow(sql, "new-call", ago(9));

      const deleted = await t.server.runRetention(now);
      assert.deepEqual(deleted, { audit: 1234, calls: 2 });
      assert.equal(await countOf(sql, "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'login_failed'"), 0);
      assert.equal(await countOf(sql, "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'logout'"), 7);
      assert.deepEqual(
        (await sql.all<{ id: string }>("SELECT id FROM calls")).map((c) => c.id),
        ["new-call"],
      );
      assert.equal(
        await countOf(sql, "SELECT COUNT(*) AS n FROM call_participants"),
        2,
        "the old calls' participants went too",
      );
      const log = fs.readFileSync(path.join(t.dataDir, "parley.log"), "utf8");
      assert.match(log, /"target":"audit".*"deleted":1234/);
    });

    it("keeps everything when both are 0", async () => {
      const t = await server({ backend, retention: { auditDays: 0, historyDays: 0 } });
      const sql = t.server.storage.sql;
      const ancient = new Date(Date.now() - 3000 * DAY_MS).toISOString();
      await bulkAuditRows(sql, 10, ancient);
      await oldCallRow(sql, "ancient-call", ancient);
      assert.deepEqual(await t.server.runRetention(), {});
      assert.equal(await countOf(sql, "SELECT COUNT(*) AS n FROM audit_log WHERE at = ?", ancient), 10);
      assert.equal(await countOf(sql, "SELECT COUNT(*) AS n FROM calls"), 1);
    });
  });
}

describe("data dir permissions", { timeout: 60_000 }, () => {
  it("makes a 0755 data dir and its 0644 files owner-only at start, with a warning naming them", async () => {
    const dataDir = path.join(scratch("parley-perms-"), "data");
    fs.mkdirSync(dataDir);
    fs.chmodSync(dataDir, 0o755);
    for (const name of ["parley.db", "parley.log"]) {
      fs.writeFileSync(path.join(dataDir, name), "");
      fs.chmodSync(path.join(dataDir, name), 0o644);
    }
    const proc = await spawnServer(dataDir);
    try {
      assert.equal(mode(dataDir), 0o700);
      assert.equal(mode(path.join(dataDir, "parley.db")), 0o600);
      assert.equal(mode(path.join(dataDir, "parley.log")), 0o600);
      for (const name of ["parley.db-wal", "parley.db-shm"]) {
        const file = path.join(dataDir, name);
        if (fs.existsSync(file)) assert.equal(mode(file), 0o600, name);
      }
      // On stderr, for whoever started it...
      const output = proc.output();
      assert.match(output, new RegExp(`warning: ${dataDir} was .*mode 0755.*\\(0700\\)`));
      assert.match(output, new RegExp(`warning: ${path.join(dataDir, "parley.db")} was .*mode 0644.*\\(0600\\)`));
      // ...and in the log.
      const log = fs.readFileSync(path.join(dataDir, "parley.log"), "utf8");
      const warnings = log
        .split("\n")
        .filter((line) => line.includes("data dir permissions were too loose"))
        .map((line) => JSON.parse(line) as { path: string; was: string });
      assert.deepEqual(
        warnings.map((w) => [path.basename(w.path), w.was]),
        [
          ["data", "0755"],
          ["parley.db", "0644"],
          ["parley.log", "0644"],
        ],
      );
    } finally {
      proc.child.kill("SIGTERM");
      await proc.exited;
    }

    // A start with owner-only permissions warns of nothing.
    const again = await spawnServer(dataDir);
    again.child.kill("SIGTERM");
    await again.exited;
    assert.doesNotMatch(again.output(), /warning/);
  });
});
