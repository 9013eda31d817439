import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { PROTOCOL_VERSION } from "@parley/protocol";
import { dbSnapshot, RawClient, registered, startTestServer, type TestServer } from "@parley/testkit";
import WebSocket from "ws";

let t: TestServer;
let snapshot: string;
/** What is stored, less what legitimate logins in these tests move (sessions, last login time). */
const stored = () =>
  dbSnapshot(path.join(t.dataDir, "parley.db"), {
    exceptTables: ["audit_log", "sessions"],
    ignoreColumns: ["last_login_at"],
  });
before(async () => {
  t = await startTestServer();
  const { client } = await registered(t.url, "existing");
  await client.call("phonebook.add", { username: "existing", label: "me" });
  client.close();
  snapshot = stored();
});
after(async () => {
  // Nothing any test below sent changed what is stored, and the server is still healthy.
  assert.equal(stored(), snapshot);
  const health = await fetch(`${t.server.httpUrl}/healthz`);
  assert.equal(health.status, 200);
  await t.stop();
});

function lastError(client: RawClient) {
  const last = client.received.at(-1);
  assert.ok(last && last.type === "response" && !last.ok, `expected an error reply, got ${JSON.stringify(last)}`);
  return last;
}

async function nextReply(client: RawClient, send: () => void) {
  const mark = client.received.length;
  send();
  return client.waitFor((m) => m.type === "response", "a reply", 5000, mark);
}

describe("bad input", () => {
  it("answers malformed JSON with BAD_JSON and keeps the connection usable", async () => {
    const c = await RawClient.greeted(t.url);
    const reply = await nextReply(c, () => c.sendRaw("{not json"));
    assert.deepEqual(reply.type === "response" && !reply.ok && [reply.requestId, reply.error.code], [null, "BAD_JSON"]);
    assert.equal(typeof (reply as { error: { message: string } }).error.message, "string");
    const ok = await c.request("directory.list");
    assert.equal(!ok.ok && ok.error.code, "NOT_AUTHENTICATED", "still answering after garbage");
    c.close();
  });

  it("answers JSON that is not a request envelope with BAD_MESSAGE", async () => {
    const c = await RawClient.greeted(t.url);
    for (const raw of [
      "[]",
      "42",
      "null",
      '"hello"',
      '{"type":"hello"}',
      '{"requestId":"1"}',
      '{"type":5,"requestId":"1"}',
      `{"type":"hello","requestId":"${"x".repeat(65)}"}`,
    ]) {
      await nextReply(c, () => c.sendRaw(raw));
      assert.equal(lastError(c).error.code, "BAD_MESSAGE", raw);
    }
    await nextReply(c, () => c.sendRaw(Buffer.from([1, 2, 3]), true));
    assert.equal(lastError(c).error.code, "BAD_MESSAGE", "binary frame");
    c.close();
  });

  it("answers an unknown message type with UNKNOWN_TYPE, echoing the request id", async () => {
    const c = await RawClient.greeted(t.url);
    for (const type of ["call.teleport", "__proto__", "constructor", "toString"]) {
      const reply = await c.request(type, {});
      assert.equal(!reply.ok && reply.error.code, "UNKNOWN_TYPE", type);
      assert.match(reply.requestId ?? "", /^t\d+$/);
    }
    c.close();
  });

  it("answers schema violations with BAD_PARAMS", async () => {
    const c = await RawClient.greeted(t.url);
    const cases: [string, unknown][] = [
      ["auth.login", { username: 42, password: "x" }],
      ["auth.login", { username: "existing" }],
      ["auth.login", { username: "existing", password: "secret123", admin: true }],
      ["auth.login", "not an object"],
      ["auth.resume", { token: "" }],
      ["auth.register", { username: "someone", password: "long enough", displayName: "bad\u0000name" }],
    ];
    for (const [type, params] of cases) {
      const reply = await c.request(type, params);
      assert.equal(!reply.ok && reply.error.code, "BAD_PARAMS", JSON.stringify(params));
    }
    const { client } = await registered(t.url, "schema-user");
    for (const [type, params] of [
      ["presence.set", { status: "invisible" }],
      ["presence.set", { status: "offline" }],
      ["phonebook.update", { id: -1 }],
      ["phonebook.update", { id: "1" }],
      ["phonebook.add", { username: "existing", notes: "n".repeat(1001) }],
    ] as [string, unknown][]) {
      const reply = await client.request(type, params);
      assert.equal(!reply.ok && reply.error.code, "BAD_PARAMS", JSON.stringify(params));
    }
    await client.call("account.delete", { password: "correct horse battery" });
    client.close();
    c.close();
  });

  it("requires hello first, once, and login before user requests", async () => {
    const c = await RawClient.connect(t.url);
    const early = await c.request("auth.login", { username: "existing", password: "whatever1" });
    assert.equal(!early.ok && early.error.code, "HELLO_REQUIRED");
    await c.call("hello", { protocolVersion: PROTOCOL_VERSION });
    const again = await c.request("hello", { protocolVersion: PROTOCOL_VERSION });
    assert.equal(!again.ok && again.error.code, "ALREADY_HELLO");
    for (const type of ["directory.list", "presence.set", "phonebook.list", "account.get", "auth.logout"]) {
      const reply = await c.request(type, type === "presence.set" ? { status: "away" } : {});
      assert.equal(!reply.ok && reply.error.code, "NOT_AUTHENTICATED", type);
    }
    await c.call("auth.login", { username: "existing", password: "correct horse battery" });
    const twice = await c.request("auth.login", { username: "existing", password: "correct horse battery" });
    assert.equal(!twice.ok && twice.error.code, "ALREADY_AUTHENTICATED");
    c.close();
  });

  it("refuses an unsupported protocol version and closes with 4005", async () => {
    const c = await RawClient.connect(t.url);
    const reply = await c.request("hello", { protocolVersion: 999 });
    assert.equal(!reply.ok && reply.error.code, "PROTOCOL_VERSION_UNSUPPORTED");
    const closed = await c.closed;
    assert.deepEqual(closed, { code: 4005, reason: "PROTOCOL_VERSION_UNSUPPORTED" });
  });

  it("closes a connection that sends a frame over 64 KiB with 1009", async () => {
    const c = await RawClient.greeted(t.url);
    c.send({ type: "auth.login", requestId: "big", params: { username: "existing", password: "x".repeat(70_000) } });
    const closed = await c.closed;
    assert.equal(closed.code, 1009);
  });

  it("rate-limits a flooding connection, then closes it with 4004", async () => {
    const c = await RawClient.greeted(t.url);
    for (let i = 0; i < 300; i++) c.send({ type: "directory.list", requestId: `f${i}`, params: {} });
    const closed = await c.closed;
    assert.deepEqual(closed, { code: 4004, reason: "FLOODING" });
    const limited = c.received.filter((m) => m.type === "response" && !m.ok && m.error.code === "RATE_LIMITED");
    assert.ok(limited.length > 0, "some messages were answered RATE_LIMITED before the close");
    assert.ok(c.events("session.ended").some((d) => d.reason === "FLOODING"));
    // Others are unaffected.
    const other = await RawClient.greeted(t.url);
    await other.call("auth.login", { username: "existing", password: "correct horse battery" });
    other.close();
  });

  it("refuses a WebSocket from a foreign browser origin with HTTP 403, and accepts the server's own", async () => {
    await assert.rejects(RawClient.connect(t.url, { origin: "http://evil.example" }), /HTTP 403/);
    await assert.rejects(RawClient.connect(t.url, { origin: "null" }), /HTTP 403/);
    const own = await RawClient.connect(t.url, { origin: t.server.httpUrl });
    own.close();
    // The same host written in another letter case is still the same origin.
    const port = new URL(t.server.httpUrl).port;
    const shouting = await RawClient.connect(t.url, {
      origin: `http://localhost:${port}`,
      headers: { Host: `LocalHost:${port}` },
    });
    shouting.close();
  });

  it("accepts an origin the operator allowed", async () => {
    const s = await startTestServer({ allowedOrigins: ["http://softphone.example"] });
    try {
      const c = await RawClient.connect(s.url, { origin: "http://softphone.example" });
      c.close();
      await assert.rejects(RawClient.connect(s.url, { origin: "http://other.example" }), /HTTP 403/);
    } finally {
      await s.stop();
    }
  });

  it("refuses WebSocket upgrades on other paths with 404", async () => {
    await assert.rejects(RawClient.connect(t.url.replace("/ws", "/other")), /HTTP 404/);
  });
});

describe("connection liveness", () => {
  it("closes a connection that never says hello with 4006", async () => {
    const s = await startTestServer({ helloTimeoutMs: 200 });
    try {
      const c = await RawClient.connect(s.url);
      assert.deepEqual(await c.closed, { code: 4006, reason: "HELLO_TIMEOUT" });
    } finally {
      await s.stop();
    }
  });

  it("drops a connection that stops answering pings, and its user goes offline", async () => {
    const s = await startTestServer({ heartbeatMs: 1000 });
    try {
      const watcher = await registered(s.url, "hb-watcher");
      const ws = new WebSocket(s.url, { autoPong: false });
      // It answers pings until its registration is through (a password hash can take seconds on a
      // loaded machine, longer than the heartbeat gives a silent connection), then falls silent.
      let registeredYet = false;
      ws.on("ping", (data) => {
        if (!registeredYet) ws.pong(data);
      });
      ws.on("message", (data) => {
        if ((JSON.parse(String(data)) as { requestId?: string }).requestId === "auth.register") registeredYet = true;
      });
      await new Promise((resolve) => ws.once("open", resolve));
      const send = (type: string, params: unknown) => ws.send(JSON.stringify({ type, requestId: type, params }));
      send("hello", { protocolVersion: PROTOCOL_VERSION });
      send("auth.register", { username: "hb-silent", password: "correct horse battery" });
      const dropped = new Promise<number>((resolve) => ws.once("close", resolve));
      const online = await watcher.client.waitFor(
        (m) =>
          m.type === "event" &&
          m.event === "presence.changed" &&
          (m.data as { userId: number }).userId !== watcher.userId &&
          (m.data as { status: string }).status === "available",
        "the silent client online (after its password hash)",
        60_000,
      );
      const silentId = (online as unknown as { data: { userId: number } }).data.userId;
      await watcher.client.event("presence.changed", (d) => d.userId === silentId && d.status === "offline");
      assert.equal(await dropped, 1006);
      watcher.client.close();
    } finally {
      await s.stop();
    }
  });
});
