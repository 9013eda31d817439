import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PROTOCOL_VERSION } from "@parley/protocol";
import { DEFAULT_CONFIG } from "@parley/server";
import { RawClient, startTestServer, TEST_PASSWORD, type TestServer, waitFor } from "@parley/testkit";

type Reply = Awaited<ReturnType<RawClient["request"]>>;

const code = (reply: Reply) => (reply.ok ? "ok" : reply.error.code);

let nextId = 1;
/** A request whose reply may take long (a slowed-down login, queued hashes): waits up to two minutes. */
function slowRequest(client: RawClient, type: string, params: unknown): Promise<Reply> {
  const requestId = `slow${nextId++}`;
  client.send({ type, requestId, params });
  return client.waitFor(
    (m): m is Reply => m.type === "response" && m.requestId === requestId,
    `response to ${type}`,
    120_000,
  );
}

/** Low limits so an attack is quick to stage; the slowdown starts after 5 failures, at most 2 s. */
const LIMITS = { perAccountAddress: 10, perAccount: 5, perAddress: 30, windowMs: 60_000, maxDelayMs: 2_000 };

/** A different documentation address (RFC 5737) for each attempt: 198.51.100.x, 203.0.113.x. */
function rotating(i: number): string {
  const host = 1 + (Math.floor(i / 2) % 254);
  return i % 2 === 0 ? `198.51.100.${host}` : `203.0.113.${host}`;
}

/** One guess on a fresh connection from 127.0.0.1 claiming to be forwarded for `forwardedFor`. */
async function guess(s: TestServer, username: string, password: string, forwardedFor: string): Promise<string> {
  const client = await RawClient.connect(s.url, { headers: { "X-Forwarded-For": forwardedFor } });
  try {
    await client.call("hello", { protocolVersion: PROTOCOL_VERSION });
    return code(await slowRequest(client, "auth.login", { username, password }));
  } finally {
    client.close();
  }
}

/** `total` guesses, `parallel` at a time, each from the next rotating address. */
function flood(s: TestServer, username: string, total: number, parallel: number) {
  const results: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      results.push(await guess(s, username, `guess number ${i}`, rotating(i)));
    }
  };
  const done = Promise.all(Array.from({ length: parallel }, worker)).then(() => results);
  return { results, done };
}

async function login(s: TestServer, localAddress: string, params: Record<string, unknown>): Promise<Reply> {
  const client = await RawClient.greeted(s.url, { localAddress });
  try {
    return await slowRequest(client, "auth.login", { username: "victim", password: TEST_PASSWORD, ...params });
  } finally {
    client.close();
  }
}

async function withVictim(s: TestServer): Promise<string> {
  const client = await RawClient.greeted(s.url, { localAddress: "127.0.0.2" });
  await client.call("auth.register", { username: "victim", password: TEST_PASSWORD });
  client.close();
  // The owner's own browser: it logged in before and kept its device token.
  const reply = await login(s, "127.0.0.2", {});
  assert.equal(code(reply), "ok");
  const token = (reply as { result: { deviceToken?: string } }).result.deviceToken;
  assert.ok(token, "a login hands out a device token");
  return token;
}

describe("password guessing from many addresses", () => {
  it("slows a flood of guesses from rotating forwarded addresses down, yet the owner logs in from a known device at once and from a new one after the slowdown", async () => {
    // The guesses queue for one hash thread: on a loaded machine the last of 20 waits longer than
    // the default 30 s login deadline, which would close its connection (not what this tests).
    const s = await startTestServer({
      trustProxy: ["127.0.0.1"],
      loginLimits: LIMITS,
      connectionLimits: { ...DEFAULT_CONFIG.connectionLimits, loginTimeoutMs: 120_000 },
    });
    try {
      const deviceToken = await withVictim(s);
      const total = 120;
      const attack = flood(s, "victim", total, 20);
      await waitFor(() => attack.results.length >= 2 * LIMITS.perAccount, "the account to be under slowdown", {
        timeoutMs: 60_000,
      });

      // (a) The owner's known device: exempt from the slowdown, ahead in the hash queue.
      const known = await login(s, "127.0.0.2", { deviceToken });
      assert.equal(code(known), "ok");
      assert.ok(attack.results.length < total, "the known device logged in while the attack went on");

      // (b) A new device: slowed down like everyone (at most maxDelayMs), but let in, not refused.
      const started = Date.now();
      const fresh = await login(s, "127.0.0.3", {});
      assert.equal(code(fresh), "ok");
      assert.ok(Date.now() - started >= LIMITS.maxDelayMs, "the new device waited the account's slowdown");

      // Every guess was checked and failed: slowed, never refused (each came from a new address).
      const results = await attack.done;
      assert.deepEqual(new Set(results), new Set(["INVALID_CREDENTIALS"]));
      const audit = await s.server.commands.run(["logs", "200", "--action", "login_failed"]);
      assert.match(audit.output, /198\.51\.100\.\d+/, "the forwarded addresses are what the audit sees");
      assert.doesNotMatch(audit.output, /rate_limited/);
    } finally {
      await s.stop();
    }
  });

  it("ignores X-Forwarded-For without a trusted proxy: the guesses count against the real address, which is refused, while the owner elsewhere logs in", async () => {
    const s = await startTestServer({
      loginLimits: { ...LIMITS, perAccountAddress: 100, perAccount: 100, perAddress: 8 },
    });
    try {
      await withVictim(s);
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => guess(s, "victim", `guess number ${i}`, rotating(i))),
      );
      assert.equal(results.filter((r) => r === "INVALID_CREDENTIALS").length, 8);
      assert.equal(results.filter((r) => r === "TOO_MANY_ATTEMPTS").length, 2);
      // 127.0.0.1 is refused even with the right password; the owner at 127.0.0.2 is not.
      assert.equal(code(await login(s, "127.0.0.1", {})), "TOO_MANY_ATTEMPTS");
      assert.equal(code(await login(s, "127.0.0.2", {})), "ok");
      const audit = await s.server.commands.run(["logs", "50", "--action", "login_failed"]);
      assert.match(audit.output, /127\.0\.0\.1/);
      assert.doesNotMatch(audit.output, /198\.51\.100|203\.0\.113/);
    } finally {
      await s.stop();
    }
  });
});
