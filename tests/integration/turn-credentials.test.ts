import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import fs from "node:fs";
import { after, describe, it } from "node:test";
import { RawClient, registered, runParley, tempDir, withTestServer } from "@parley/testkit";

const SECRET = "shared with coturn 0123456789";
const TURN = { urls: ["turns:turn.parley.test:5349?transport=tcp", "turn:turn.parley.test:3478?transport=tcp"] };

interface IceServers {
  iceServers: { urls: string[]; username: string; credential: string }[];
}

describe("TURN credentials handed to clients", () => {
  it("are none when the server has no TURN server configured", async () => {
    await withTestServer({}, async (s) => {
      const { client } = await registered(s.url, "no-turn");
      assert.deepEqual(await client.call<IceServers>("media.iceServers"), { iceServers: [] });
      client.close();
    });
  });

  it("are the configured URLs with a coturn REST-API username and password of the user's own, valid for the TTL", async () => {
    await withTestServer({ turn: { ...TURN, secret: SECRET, ttlSeconds: 600 } }, async (s) => {
      const ann = await registered(s.url, "turn-ann");
      const bob = await registered(s.url, "turn-bob");
      const before = Math.floor(Date.now() / 1000);
      const { iceServers } = await ann.client.call<IceServers>("media.iceServers");
      const after = Math.floor(Date.now() / 1000);
      assert.equal(iceServers.length, 1);
      const [server] = iceServers;
      assert.deepEqual(server!.urls, TURN.urls);
      const [expiry, userId] = server!.username.split(":").map(Number);
      assert.equal(userId, ann.userId);
      assert.ok(expiry! >= before + 600 && expiry! <= after + 600, `expiry ${expiry} is the TTL from now`);
      // What coturn computes with use-auth-secret / static-auth-secret.
      assert.equal(server!.credential, createHmac("sha1", SECRET).update(server!.username).digest("base64"));
      const other = (await bob.client.call<IceServers>("media.iceServers")).iceServers[0]!;
      assert.equal(other.username.split(":")[1], String(bob.userId));
      assert.notEqual(other.credential, server!.credential);
      ann.client.close();
      bob.client.close();
    });
  });

  it("are refused to a connection that has not logged in", async () => {
    await withTestServer({ turn: { ...TURN, secret: SECRET, ttlSeconds: 600 } }, async (s) => {
      const client = await RawClient.greeted(s.url);
      const reply = await client.request("media.iceServers");
      assert.equal(reply.ok ? "ok" : reply.error.code, "NOT_AUTHENTICATED");
      client.close();
    });
  });
});

describe("TURN settings at start", () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });
  const start = (args: string[]) => {
    const dir = tempDir();
    dirs.push(dir);
    return runParley(["server", "--port", "0", "--host", "127.0.0.1", "--data-dir", dir, "--quiet", ...args]);
  };

  it("refuses a --turn-url that is not a TURN URL, naming it", async () => {
    const result = await start(["--turn-url", "http://turn.parley.test", "--turn-secret", SECRET]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /--turn-url 'http:\/\/turn\.parley\.test' is not a TURN URL/);
  });

  it("refuses turns: over UDP", async () => {
    const result = await start(["--turn-url", "turns:turn.parley.test:5349?transport=udp", "--turn-secret", SECRET]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /turns: runs over TLS/);
  });

  it("refuses a --turn-url without --turn-secret, and a secret too short to sign with", async () => {
    const noSecret = await start(["--turn-url", "turn:turn.parley.test:3478?transport=tcp"]);
    assert.equal(noSecret.code, 2);
    assert.match(noSecret.stderr, /--turn-url needs --turn-secret/);
    const short = await start(["--turn-url", "turn:turn.parley.test:3478", "--turn-secret", "short"]);
    assert.notEqual(short.code, 0);
    assert.match(short.stderr, /at least 16 characters/);
  });
});
