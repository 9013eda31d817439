/**
 * Connection exhaustion by a stranger: 500 WebSocket connections from one address against the
 * per-address cap, a flood against the global cap, and idle connections that never log in. The
 * refused ones are closed with the documented codes, users already logged in keep being served,
 * the audit log summarises the refusals instead of writing one row each, and /metrics counts
 * every one.
 */
import assert from "node:assert/strict";
import http from "node:http";
import path from "node:path";
import { after, describe, it } from "node:test";
import { CloseCode, PROTOCOL_VERSION } from "@parley/protocol";
import { DEFAULT_CONFIG, type StartOptions } from "@parley/server";
import { type Closed, RawClient, startTestServer, TEST_PASSWORD, type TestServer, waitFor } from "@parley/testkit";
import Database from "better-sqlite3";

const servers: TestServer[] = [];
after(async () => {
  for (const t of servers) await t.stop();
});

async function server(options: StartOptions): Promise<TestServer> {
  const t = await startTestServer(options);
  servers.push(t);
  return t;
}

function limits(changes: Partial<typeof DEFAULT_CONFIG.connectionLimits>) {
  return { connectionLimits: { ...DEFAULT_CONFIG.connectionLimits, ...changes } };
}

/** A user logged in from `localAddress` (not the flooding one). */
async function user(url: string, username: string, localAddress: string): Promise<RawClient> {
  const client = await RawClient.greeted(url, { localAddress });
  await client.call("auth.register", { username, password: TEST_PASSWORD });
  return client;
}

/** The user's connection still answers a request with ok. */
async function stillServed(client: RawClient): Promise<void> {
  const reply = await client.request("account.get");
  assert.equal(reply.ok, true, JSON.stringify(reply));
}

interface Attempt {
  client: RawClient;
  /** Set once the server closed the connection. */
  closed?: Closed;
}

/** Opens `count` connections from `localAddress`, `batch` at a time, calling `between` after each batch. */
async function flood(
  url: string,
  count: number,
  localAddress: string,
  between: () => Promise<void>,
  batch = 50,
): Promise<Attempt[]> {
  const attempts: Attempt[] = [];
  for (let i = 0; i < count; i += batch) {
    const opened = await Promise.all(
      Array.from({ length: Math.min(batch, count - i) }, () => RawClient.connect(url, { localAddress })),
    );
    for (const client of opened) {
      const attempt: Attempt = { client };
      void client.closed.then((closed) => {
        attempt.closed = closed;
      });
      attempts.push(attempt);
    }
    await between();
  }
  return attempts;
}

/** Waits until exactly `refused` attempts were closed with TOO_MANY_CONNECTIONS; checks the rest stay usable. */
async function expectRefused(attempts: Attempt[], refused: number): Promise<Attempt[]> {
  await waitFor(
    () => attempts.filter((a) => a.closed?.code === CloseCode.TOO_MANY_CONNECTIONS).length === refused,
    `${refused} connections closed with 4007`,
    { timeoutMs: 20_000 },
  );
  const admitted = attempts.filter((a) => a.closed === undefined);
  assert.equal(admitted.length, attempts.length - refused, "every connection is either admitted or refused with 4007");
  for (const a of attempts.filter((x) => x.closed)) {
    assert.deepEqual(a.closed, { code: 4007, reason: "TOO_MANY_CONNECTIONS" });
    assert.deepEqual(
      a.client.events("session.ended").map((e) => e.reason),
      ["TOO_MANY_CONNECTIONS"],
    );
  }
  // The admitted ones are real connections: each completes the handshake.
  await Promise.all(
    admitted.map(async (a) =>
      assert.equal((await a.client.request("hello", { protocolVersion: PROTOCOL_VERSION })).ok, true),
    ),
  );
  return admitted;
}

async function health(httpUrl: string): Promise<{ connections: number }> {
  return JSON.parse(await get(`${httpUrl}/healthz`)) as { connections: number };
}

function scrapeMetrics(httpUrl: string): Promise<string> {
  return get(`${httpUrl}/metrics`);
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () => resolve(body));
      })
      .on("error", reject);
  });
}

function refusedTotal(body: string, reason: string): number {
  const match = new RegExp(`^parley_refused_connections_total\\{reason="${reason}"\\} (\\d+)$`, "m").exec(body);
  return match ? Number(match[1]) : 0;
}

interface AuditRow {
  address: string | null;
  detail: { reason: string; count: number; summary?: boolean };
}

/** The connection_refused rows of a stopped server's database. */
function refusedRows(dataDir: string): AuditRow[] {
  const db = new Database(path.join(dataDir, "parley.db"), { readonly: true, fileMustExist: true });
  try {
    return (
      db.prepare("SELECT address, detail FROM audit_log WHERE action = 'connection_refused' ORDER BY id").all() as {
        address: string | null;
        detail: string;
      }[]
    ).map((row) => ({ address: row.address, detail: JSON.parse(row.detail) as AuditRow["detail"] }));
  } finally {
    db.close();
  }
}

describe("connection caps", () => {
  it("keeps the default per-address cap below 500 and above what a school behind one NAT address needs", () => {
    assert.ok(DEFAULT_CONFIG.connectionLimits.perAddress < 500);
    assert.ok(DEFAULT_CONFIG.connectionLimits.perAddress >= 100);
    assert.ok(DEFAULT_CONFIG.connectionLimits.max > DEFAULT_CONFIG.connectionLimits.perAddress);
  });

  it("refuses each of 500 connections from one address past the per-address cap with 4007 while a logged-in user keeps being served", async () => {
    // The admitted ones stay greeting until the end: no hello timeout in the way.
    const t = await server({ ...limits({ perAddress: 100 }), helloTimeoutMs: 120_000 });
    const alice = await user(t.url, "alice", "127.0.0.2");

    const attempts = await flood(t.url, 500, "127.0.0.1", () => stillServed(alice));
    const admitted = await expectRefused(attempts, 400);
    assert.equal(admitted.length, 100);
    await stillServed(alice);

    // The cap is per address: another address still gets in while 127.0.0.1 is full.
    const other = await RawClient.greeted(t.url, { localAddress: "127.0.0.3" });
    const refusedAgain = await RawClient.connect(t.url, { localAddress: "127.0.0.1" });
    assert.equal((await refusedAgain.closed).code, CloseCode.TOO_MANY_CONNECTIONS);

    // The first refusal is written at once, the rest only counted: one audit row, not 401.
    const entries = await t.server.operator.audit({ action: "connection_refused" });
    assert.equal(entries.length, 1, JSON.stringify(entries));
    assert.equal(entries[0]!.address, "127.0.0.1");
    assert.deepEqual(entries[0]!.detail, { reason: "per_address", count: 1 });
    assert.match(
      (await t.server.commands.run(["logs", "--action", "connection_refused"])).output,
      /127\.0\.0\.1.*per_address/,
    );
    // Every refusal is counted in /metrics.
    assert.equal(refusedTotal(await scrapeMetrics(t.server.httpUrl), "per_address"), 401);

    // Closing connections frees their places.
    for (const a of admitted) a.client.close();
    await waitFor(async () => (await health(t.server.httpUrl)).connections === 2, "only alice and the other left");
    const again = await RawClient.greeted(t.url, { localAddress: "127.0.0.1" });
    await stillServed(alice);
    again.close();
    other.close();
    alice.close();

    // At shutdown the rest are written as one summary row with their count.
    await t.server.close();
    const rows = refusedRows(t.dataDir);
    assert.deepEqual(
      rows.map((r) => [r.address, r.detail.reason, r.detail.count, r.detail.summary ?? false]),
      [
        ["127.0.0.1", "per_address", 1, false],
        ["127.0.0.1", "per_address", 400, true],
      ],
    );
  });

  it("refuses connections past the global cap with 4007, whatever their address, while a logged-in user keeps being served", async () => {
    const t = await server({ ...limits({ max: 20, perAddress: 1000 }), helloTimeoutMs: 120_000 });
    const alice = await user(t.url, "alice", "127.0.0.2");

    const attempts = await flood(t.url, 60, "127.0.0.1", () => stillServed(alice), 20);
    // Alice holds one of the 20 places.
    const admitted = await expectRefused(attempts, 41);
    assert.equal(admitted.length, 19);
    const fromElsewhere = await RawClient.connect(t.url, { localAddress: "127.0.0.3" });
    assert.equal((await fromElsewhere.closed).code, CloseCode.TOO_MANY_CONNECTIONS);
    await stillServed(alice);

    const entries = await t.server.operator.audit({ action: "connection_refused" });
    assert.deepEqual(entries.map((e) => [e.address, e.detail?.reason]).sort(), [
      ["127.0.0.1", "global"],
      ["127.0.0.3", "global"],
    ]);
    assert.equal(refusedTotal(await scrapeMetrics(t.server.httpUrl), "global"), 42);
    for (const a of admitted) a.client.close();
    alice.close();
  });
});

describe("login deadline", () => {
  it("closes connections that do not log in within the deadline after hello with 4008, and keeps logged-in ones", async () => {
    const t = await server({ ...limits({ loginTimeoutMs: 1000 }), helloTimeoutMs: 4000 });
    const alice = await user(t.url, "alice", "127.0.0.2");
    const idle = await Promise.all(Array.from({ length: 5 }, () => RawClient.greeted(t.url)));
    // Never greeted: the hello timeout still applies to it, not the login deadline.
    const silent = await RawClient.connect(t.url);

    for (const client of idle) {
      assert.deepEqual(await client.closed, { code: 4008, reason: "LOGIN_TIMEOUT" });
      assert.deepEqual(
        client.events("session.ended").map((e) => e.reason),
        ["LOGIN_TIMEOUT"],
      );
    }
    assert.deepEqual(await silent.closed, { code: 4006, reason: "HELLO_TIMEOUT" });
    // Alice logged in more than the deadline ago and is still served.
    await stillServed(alice);

    const entries = await t.server.operator.audit({ action: "connection_refused" });
    assert.deepEqual(
      entries.map((e) => [e.address, e.detail?.reason]),
      [["127.0.0.1", "login_timeout"]],
    );
    assert.equal(refusedTotal(await scrapeMetrics(t.server.httpUrl), "login_timeout"), 5);
    alice.close();
  });

  it("restarts the login deadline when a logout returns the connection to anonymous", async () => {
    const t = await server(limits({ loginTimeoutMs: 1000 }));
    const bob = await user(t.url, "bob", "127.0.0.2");
    // Logged in for longer than the deadline: nothing happens.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await stillServed(bob);
    await bob.call("auth.logout");
    assert.deepEqual(await bob.closed, { code: 4008, reason: "LOGIN_TIMEOUT" });
  });

  it("waits for a login sent in time whose password check outlasts the deadline: in when right, closed when wrong", async () => {
    // A password hash takes far longer than this deadline, so each login below is still being
    // checked when the deadline passes.
    const t = await server(limits({ loginTimeoutMs: 100 }));
    (await user(t.url, "dave", "127.0.0.2")).close();
    const pipelined = async (password: string) => {
      const client = await RawClient.connect(t.url);
      // hello and the login in one go: the login arrives right after the deadline starts.
      client.send({ type: "hello", requestId: "h", params: { protocolVersion: PROTOCOL_VERSION } });
      return { client, reply: await client.request("auth.login", { username: "dave", password }) };
    };
    const right = await pipelined(TEST_PASSWORD);
    assert.equal(right.reply.ok, true, JSON.stringify(right.reply));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await stillServed(right.client);
    const wrong = await pipelined("not the password");
    assert.equal(wrong.reply.ok ? "ok" : wrong.reply.error.code, "INVALID_CREDENTIALS");
    assert.deepEqual(await wrong.client.closed, { code: 4008, reason: "LOGIN_TIMEOUT" });
    right.client.close();
  });

  it("lets a connection that logs in again after a logout stay", async () => {
    const t = await server(limits({ loginTimeoutMs: 1000 }));
    const carol = await user(t.url, "carol", "127.0.0.2");
    await carol.call("auth.logout");
    await carol.call("auth.login", { username: "carol", password: TEST_PASSWORD });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await stillServed(carol);
    carol.close();
  });
});
