/**
 * Load shedding for strangers: a flood of messages from connections that never log in gets at
 * most the server-wide anonymous budget (the rest waits unread), while logged-in users keep being
 * served and a real login during the flood still succeeds, only slowed.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { PROTOCOL_VERSION } from "@parley/protocol";
import { DEFAULT_CONFIG } from "@parley/server";
import { RawClient, startTestServer, TEST_PASSWORD, type TestServer } from "@parley/testkit";

const servers: TestServer[] = [];
after(async () => {
  for (const t of servers) await t.stop();
});

const BUDGET = 20;
const FLOOD_CONNECTIONS = 20;
const WINDOW_MS = 2000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `count` anonymous connections from 127.0.0.2, each sending a request the moment the previous
 * one is answered (a closed loop, as fast as the server answers). Returns the replies counter
 * and a stop function.
 */
async function flood(url: string, count: number): Promise<{ replies: () => number; stop: () => void }> {
  let replies = 0;
  let running = true;
  const clients = await Promise.all(
    Array.from({ length: count }, () => RawClient.connect(url, { localAddress: "127.0.0.2" })),
  );
  let n = 0;
  for (const client of clients) {
    const next = () => client.send({ type: "account.get", requestId: `f${n++}`, params: {} });
    client.ws.on("message", () => {
      replies++;
      if (running) next();
    });
    next();
  }
  return {
    replies: () => replies,
    stop: () => {
      running = false;
      for (const client of clients) client.ws.terminate();
    },
  };
}

describe("load shedding for strangers", () => {
  it("answers a flood of anonymous messages at about the anonymous budget while logged-in users and a new login are served", async () => {
    const t = await startTestServer({
      connectionLimits: { ...DEFAULT_CONFIG.connectionLimits, anonymousPerSecond: BUDGET },
      // The per-connection limit is lifted so that only the server-wide budget holds the flood back.
      messageRate: { burst: 100_000, perSecond: 100_000, maxStrikes: 100_000 },
    });
    servers.push(t);
    const alice = await RawClient.greeted(t.url, { localAddress: "127.0.0.3" });
    await alice.call("auth.register", { username: "alice", password: TEST_PASSWORD });
    const setup = await RawClient.greeted(t.url, { localAddress: "127.0.0.4" });
    await setup.call("auth.register", { username: "bob", password: TEST_PASSWORD });
    setup.close();

    const attack = await flood(t.url, FLOOD_CONNECTIONS);
    try {
      await sleep(500);
      const before = attack.replies();
      await sleep(WINDOW_MS);
      const answered = attack.replies() - before;
      // About BUDGET * 2 s (plus what is left of the burst); without the budget, thousands.
      assert.ok(answered < 3 * BUDGET * (WINDOW_MS / 1000), `${answered} flood messages answered in ${WINDOW_MS} ms`);
      assert.ok(answered > 0, "the flood is slowed, not cut off");

      // The logged-in user is never held by the budget.
      for (let i = 0; i < 10; i++) {
        const reply = await alice.request("account.get");
        assert.equal(reply.ok, true, JSON.stringify(reply));
      }

      // A stranger logging in waits its turn behind the flood, and gets in.
      const bob = await RawClient.connect(t.url, { localAddress: "127.0.0.5" });
      const hello = await bob.request("hello", { protocolVersion: PROTOCOL_VERSION });
      assert.equal(hello.ok, true, JSON.stringify(hello));
      const login = await bob.request("auth.login", { username: "bob", password: TEST_PASSWORD });
      assert.equal(login.ok, true, JSON.stringify(login));
      const me = await bob.request("account.get");
      assert.equal(me.ok, true, JSON.stringify(me));
      bob.close();
    } finally {
      attack.stop();
      alice.close();
    }
  });
});
