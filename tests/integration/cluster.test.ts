import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, describe, it } from "node:test";
import { COALESCE_MS, PostgresStorage, SessionStore, UserStore } from "@parley/server";
import {
  loggedIn,
  postgresUnavailable,
  RawClient,
  type Redis,
  redisUnavailable,
  registered,
  type ServerProcess,
  sharedPostgres,
  spawnServer,
  startRedis,
  startTestServer,
  TEST_PASSWORD,
  tempDir,
  waitFor,
} from "@parley/testkit";

type Event = { type: "event"; event: string; data: Record<string, unknown> };

/** Waits up to `timeoutMs` for a `presence.changed` of `userId` matching `match`. */
function presenceOf(
  client: RawClient,
  userId: number,
  match: (data: Record<string, unknown>) => boolean,
  what: string,
  timeoutMs = 5000,
): Promise<Event> {
  return client.waitFor(
    (m) =>
      m.type === "event" &&
      m.event === "presence.changed" &&
      (m.data as { userId: number }).userId === userId &&
      match(m.data as Record<string, unknown>),
    what,
    timeoutMs,
  ) as unknown as Promise<Event>;
}

/** The directory entry of `userId` as the node `client` is connected to sees it. */
async function directoryEntry(client: RawClient, userId: number) {
  const { users } = await client.call<{ users: { id: number; status: string; devices: number }[] }>("directory.list");
  return users.find((user) => user.id === userId);
}

const unavailable = postgresUnavailable() ?? redisUnavailable();

describe("three nodes sharing PostgreSQL and Redis", { skip: unavailable }, () => {
  let redis: Redis;
  const nodes: ServerProcess[] = [];
  const dirs: string[] = [];
  const clients: RawClient[] = [];
  let database: string;
  const url = (node: 1 | 2 | 3) => nodes[node - 1]!.url;
  /** The node records in Redis (one per live node). */
  const nodeRecords = async () => {
    const ids = (await redis.command("SMEMBERS", "parley:nodes")).split("\n").filter((id) => id !== "");
    const records = await Promise.all(ids.map((id) => redis.command("GET", `parley:node:${id}`)));
    return records
      .filter((record) => record.trim() !== "")
      .map((record) => JSON.parse(record) as { id: string; mediaAddress: string; load: Record<string, number> });
  };
  /** PUBLISH commands Redis has run: the presence messages of every node together. */
  const published = async () =>
    Number(/cmdstat_publish:calls=(\d+)/.exec(await redis.command("INFO", "commandstats"))?.[1] ?? 0);

  before(async () => {
    let started: Redis;
    [database, started] = await Promise.all([
      sharedPostgres().then((cluster) => cluster.createDatabase()),
      startRedis(),
    ]);
    redis = started;
    const start = async () => {
      const dir = tempDir("parley-node-");
      dirs.push(dir);
      return spawnServer(dir, ["--database", database, "--redis", redis.url, "--hash-concurrency", "2"]);
    };
    // The first node brings the schema up to date; the two others join it together.
    nodes.push(await start());
    nodes.push(...(await Promise.all([start(), start()])));
  });
  after(async () => {
    for (const client of clients) client.close();
    for (const node of nodes) {
      node.child.kill("SIGTERM");
      await node.exited;
    }
    await redis?.stop();
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("lets a user registered through node 1 log in on node 3", async () => {
    const { client: first } = await registered(url(1), "alice");
    const { client: third, userId } = await loggedIn(url(3), "alice");
    clients.push(first, third);
    assert.equal((await third.call<{ id: number }>("account.get")).id, userId);
  });

  it("keeps a record of each live node in Redis: its media address and load, renewed by its heartbeat", async () => {
    const records = await nodeRecords();
    assert.equal(records.length, 3);
    for (const record of records) {
      assert.equal(record.mediaAddress, "127.0.0.1");
      assert.deepEqual(Object.keys(record.load).sort(), ["calls", "legs", "users"]);
    }
    // alice is online on nodes 1 and 3, once each.
    await waitFor(
      async () => (await nodeRecords()).filter((record) => record.load.users === 1).length === 2,
      "two nodes with one user each in their heartbeats",
    );
  });

  let watcher: RawClient;
  let watcherOn3: RawClient;
  let bobId: number;

  it("shows node 1's clients a user who logs in on node 2, live: devices, status and logout", async () => {
    ({ client: watcher } = await registered(url(1), "watcher"));
    ({ client: watcherOn3 } = await loggedIn(url(3), "alice"));
    clients.push(watcher, watcherOn3);
    const { client: bob, userId } = await registered(url(2), "bob");
    bobId = userId;
    clients.push(bob);
    await presenceOf(watcher, bobId, (d) => d.status === "available" && d.devices === 1, "bob online on node 1");
    assert.deepEqual(
      { ...(await directoryEntry(watcher, bobId)) },
      { id: bobId, username: "bob", displayName: "bob", status: "available", devices: 1 },
    );
    // A second device on node 3: two devices in all, seen from node 1.
    const { client: bobOn3 } = await loggedIn(url(3), "bob");
    await presenceOf(watcher, bobId, (d) => d.devices === 2, "bob's second device, on node 3");
    // The status chosen on node 2 reaches node 1.
    await bob.call("presence.set", { status: "busy" });
    await presenceOf(watcher, bobId, (d) => d.status === "busy" && d.devices === 2, "bob busy");
    bobOn3.close();
    await presenceOf(watcher, bobId, (d) => d.status === "busy" && d.devices === 1, "bob's node 3 device gone");
    // A call answered on node 2 shows bob in a call on node 1; hung up, his chosen status again.
    const { client: dave } = await registered(url(2), "dave");
    clients.push(dave);
    const { call } = await bob.call<{ call: { callId: string } }>("call.invite", { to: "dave" });
    await dave.event("call.incoming");
    await dave.call("call.answer", { callId: call.callId });
    await presenceOf(watcher, bobId, (d) => d.status === "in-call" && d.devices === 1, "bob in a call");
    await bob.call("call.hangup", { callId: call.callId });
    const from = watcher.received.length;
    await watcher.waitFor(
      (m) => m.type === "event" && m.event === "presence.changed" && matches(m.data, bobId, "busy"),
      "bob busy again after the call",
      5000,
      from,
    );
    // The watcher on node 1 is seen from node 3 as well.
    assert.equal(
      (await directoryEntry(watcherOn3, (await watcher.call<{ id: number }>("account.get")).id))?.devices,
      1,
    );
  });

  it("shares a storm of 100 logins on one node with the others in one message per coalescing window at most", async (t) => {
    const STORM = 100;
    // Accounts and sessions written straight into the database: the storm is of logins, not of password hashes.
    const storage = await PostgresStorage.open(database);
    const people: { id: number; token: string }[] = [];
    try {
      const users = new UserStore(storage.sql);
      const sessions = new SessionStore(storage.sql);
      for (let i = 0; i < STORM; i++) {
        const user = await users.create(`storm-${i}`, `Storm ${i}`, "not a password hash");
        people.push({ id: user!.id, token: (await sessions.create(user!.id, "storm", 3_600_000)).token });
      }
    } finally {
      await storage.close();
    }
    // Every connection greeted first, then all log in at once.
    const stormers = await Promise.all(people.map(() => RawClient.greeted(url(3))));
    clients.push(...stormers);
    const from = watcher.received.length;
    const before = await published();
    const started = Date.now();
    await Promise.all(stormers.map((client, i) => client.call("auth.resume", { token: people[i]!.token })));
    const online = (id: number) =>
      watcher.received
        .slice(from)
        .some(
          (m) =>
            m.type === "event" &&
            m.event === "presence.changed" &&
            (m.data as { userId: number }).userId === id &&
            (m.data as { devices: number }).devices === 1,
        );
    await waitFor(() => people.every(({ id }) => online(id)), "every user of the storm online as node 1 sees it", {
      timeoutMs: 15_000,
    });
    const elapsed = Date.now() - started;
    const messages = (await published()) - before;
    t.diagnostic(
      `${STORM} logins on node 3 seen on node 1 after ${elapsed} ms, shared in ${messages} presence messages`,
    );
    // At most one message per coalescing window, however many logins fall into it.
    assert.ok(messages <= elapsed / COALESCE_MS + 1, `${messages} messages in ${elapsed} ms`);
  });

  it("shows a user of a node killed with SIGKILL offline on the other nodes within 10 s", async (t) => {
    const killedAt = Date.now();
    const fromOne = watcher.received.length;
    const fromThree = watcherOn3.received.length;
    nodes[1]!.child.kill("SIGKILL");
    await nodes[1]!.exited;
    await Promise.all([
      watcher.waitFor(
        (m) => m.type === "event" && m.event === "presence.changed" && matches(m.data, bobId, "offline"),
        "bob offline on node 1",
        10_000,
        fromOne,
      ),
      watcherOn3.waitFor(
        (m) => m.type === "event" && m.event === "presence.changed" && matches(m.data, bobId, "offline"),
        "bob offline on node 3",
        10_000,
        fromThree,
      ),
    ]);
    const elapsed = Date.now() - killedAt;
    assert.ok(elapsed < 10_000, `seen offline after ${elapsed} ms`);
    t.diagnostic(`the killed node's user seen offline on both other nodes after ${elapsed} ms`);
    assert.equal((await nodeRecords()).length, 2, "the dead node's record is gone");
    assert.equal((await directoryEntry(watcher, bobId))?.status, "offline");
  });

  it("refuses logins with CLUSTER_UNAVAILABLE while Redis is down and recovers when it is back, without a restart", async (t) => {
    await redis.restart(async () => {
      await waitFor(async () => {
        const client = await RawClient.greeted(url(1));
        clients.push(client);
        const reply = await client.request("auth.login", { username: "alice", password: TEST_PASSWORD });
        return !reply.ok && reply.error.code === "CLUSTER_UNAVAILABLE";
      }, "login on node 1 refused with CLUSTER_UNAVAILABLE");
      // Connections logged in before stay.
      assert.equal((await watcher.call<{ username: string }>("account.get")).username, "watcher");
    });
    // Back: logins work on both nodes again, and presence crosses nodes as before.
    const back = Date.now();
    for (const node of [1, 3] as const) {
      await waitFor(async () => {
        const client = await RawClient.greeted(url(node));
        clients.push(client);
        const reply = await client.request("auth.login", { username: "alice", password: TEST_PASSWORD });
        return reply.ok;
      }, `login on node ${node} after Redis came back`);
    }
    t.diagnostic(`logins taken again on both nodes ${Date.now() - back} ms after Redis was back`);
    const { client: carol, userId: carolId } = await registered(url(3), "carol");
    clients.push(carol);
    await presenceOf(watcher, carolId, (d) => d.status === "available" && d.devices === 1, "carol (node 3) on node 1");
    // What each node held before the restart is in Redis again: node 3 sees the watcher of node 1 online.
    const watcherId = (await watcher.call<{ id: number }>("account.get")).id;
    // (Asked every 250 ms: every 20 ms would run into the connection's message rate limit.)
    await waitFor(
      async () => (await directoryEntry(watcherOn3, watcherId))?.status === "available",
      "the watcher (node 1) online as node 3 sees it",
      { intervalMs: 250, timeoutMs: 15_000 },
    );
  });

  it("shows the users of a node stopped cleanly offline on the others at once, without waiting for its heartbeat to expire", async () => {
    const { users } = await watcher.call<{ users: { id: number; username: string }[] }>("directory.list");
    const carol = users.find((user) => user.username === "carol")!.id;
    const from = watcher.received.length;
    const stoppedAt = Date.now();
    nodes[2]!.child.kill("SIGTERM");
    assert.equal(await nodes[2]!.exited, 0);
    await watcher.waitFor(
      (m) => m.type === "event" && m.event === "presence.changed" && matches(m.data, carol, "offline"),
      "carol (node 3) offline on node 1",
      3000,
      from,
    );
    assert.ok(Date.now() - stoppedAt < 3000);
    assert.equal((await nodeRecords()).length, 1, "only node 1 is left");
  });
});

describe("starting a node of a cluster", { skip: unavailable }, () => {
  it("stops the start with one clear line when --redis comes without PostgreSQL, is malformed or cannot be reached", async () => {
    await assert.rejects(startTestServer({ redis: "redis://127.0.0.1:6379" }), {
      message:
        "--redis (PARLEY_REDIS_URL) needs --database postgres://... (the nodes of a cluster share one PostgreSQL database)",
    });
    const database = await (await sharedPostgres()).createDatabase();
    await assert.rejects(startTestServer({ database, redis: "http://secret@127.0.0.1" }), {
      message: "--redis must be redis://[USER:PASSWORD@]HOST[:PORT] or rediss://..., not 'http://secret@127.0.0.1'",
    });
    await assert.rejects(
      startTestServer({ database, redis: "redis://:hunter22@127.0.0.1:1" }),
      (error: Error) =>
        /^Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1 cannot be reached: .*ECONNREFUSED/.test(error.message) &&
        !error.message.includes("hunter22"),
    );
  });
});

function matches(data: unknown, userId: number, status: string): boolean {
  const d = data as { userId: number; status: string };
  return d.userId === userId && d.status === status;
}
