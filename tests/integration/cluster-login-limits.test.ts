import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { ParleyError } from "@parley/protocol";
import { DEFAULT_CONFIG, LoginLimiter, SharedLoginCounts } from "@parley/server";
import {
  postgresUnavailable,
  RawClient,
  type Redis,
  redisUnavailable,
  registered,
  sharedPostgres,
  startRedis,
  startTestServer,
  TEST_PASSWORD,
  type TestServer,
} from "@parley/testkit";
import { Redis as IORedis } from "ioredis";
import { pino } from "pino";

const unavailable = postgresUnavailable() ?? redisUnavailable();

/** Low limits: three failures per (account, address), eight per address, slowdown past three per account. */
const LIMITS = { perAccountAddress: 3, perAccount: 3, perAddress: 8, windowMs: 60_000, maxDelayMs: 2_000 };

let attempts = 0;
/** One login on a fresh connection to `url` from `localAddress`: "ok" or the error's code. */
async function attempt(url: string, username: string, password: string, localAddress: string): Promise<string> {
  const client = await RawClient.greeted(url, { localAddress });
  try {
    // Parallel attempts queue for the password hash and may be slowed: longer than a request's usual 5 s.
    const requestId = `attempt-${++attempts}`;
    client.send({ type: "auth.login", requestId, params: { username, password } });
    const reply = await client.waitFor(
      (m): m is Extract<typeof m, { type: "response" }> => m.type === "response" && m.requestId === requestId,
      "login answer",
      60_000,
    );
    return reply.ok ? "ok" : reply.error.code;
  } finally {
    client.close();
  }
}

describe("failed-login limits shared by two nodes", { skip: unavailable }, () => {
  let redis: Redis;
  const nodes: TestServer[] = [];
  /** The node an attempt numbered `i` goes to: every other one to each node. */
  const node = (i: number) => nodes[i % 2]!.url;

  before(async () => {
    let database: string;
    [database, redis] = await Promise.all([sharedPostgres().then((cluster) => cluster.createDatabase()), startRedis()]);
    const start = () =>
      startTestServer({
        database,
        redis: redis.url,
        loginLimits: LIMITS,
        workLimits: { ...DEFAULT_CONFIG.workLimits, registrationsPerAddress: 100_000, hashConcurrency: 2 },
      });
    nodes.push(await start());
    nodes.push(await start());
    for (const name of ["victim", "forgiven", "burst", "target", "bystander", "keyed", "guarded"]) {
      (await registered(nodes[0]!.url, name)).client.close();
    }
  });
  after(async () => {
    for (const started of nodes) await started.stop();
    await redis?.stop();
  });

  it("refuses the pair after the same number of failures spread over both nodes as on one, on both nodes", async () => {
    const from = "127.0.0.2";
    for (let i = 0; i < LIMITS.perAccountAddress; i++) {
      assert.equal(await attempt(node(i), "victim", `guess-${i}-xx`, from), "INVALID_CREDENTIALS");
    }
    // Even the right password, on either node.
    assert.equal(await attempt(node(0), "victim", TEST_PASSWORD, from), "TOO_MANY_ATTEMPTS");
    assert.equal(await attempt(node(1), "victim", TEST_PASSWORD, from), "TOO_MANY_ATTEMPTS");
    // The guesser shut out only himself: the owner, elsewhere, logs in on either node.
    assert.equal(await attempt(node(1), "victim", TEST_PASSWORD, "127.0.0.3"), "ok");
    const audit = await nodes[1]!.server.commands.run(["logs", "50", "--action", "login_failed"]);
    assert.match(audit.output, /rate_limited/);
  });

  it("counts a burst of parallel attempts over both nodes in one step with the check: none slips past the limit", async () => {
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => attempt(node(i), "burst", `wrong-${i}-guess`, "127.0.0.4")),
    );
    assert.equal(results.filter((r) => r === "INVALID_CREDENTIALS").length, LIMITS.perAccountAddress);
    assert.equal(results.filter((r) => r === "TOO_MANY_ATTEMPTS").length, 12 - LIMITS.perAccountAddress);
  });

  it("forgives the pair on every node after a success on one", async () => {
    const from = "127.0.0.5";
    for (let i = 0; i < LIMITS.perAccountAddress - 1; i++) {
      assert.equal(await attempt(node(0), "forgiven", `typo-${i}-xx`, from), "INVALID_CREDENTIALS");
    }
    assert.equal(await attempt(node(1), "forgiven", TEST_PASSWORD, from), "ok");
    // Forgiven: a full allowance again on node 1, where the failures were.
    for (let i = 0; i < LIMITS.perAccountAddress; i++) {
      assert.equal(await attempt(node(0), "forgiven", `typo-again-${i}`, from), "INVALID_CREDENTIALS");
    }
    assert.equal(await attempt(node(0), "forgiven", TEST_PASSWORD, from), "TOO_MANY_ATTEMPTS");
  });

  it("refuses an address after failures across accounts spread over both nodes", async () => {
    const from = "127.0.0.6";
    for (let i = 0; i < LIMITS.perAddress; i++) {
      assert.equal(await attempt(node(i), `ghost${i}`, "whatever123", from), "INVALID_CREDENTIALS");
    }
    assert.equal(await attempt(node(0), "bystander", TEST_PASSWORD, from), "TOO_MANY_ATTEMPTS");
    assert.equal(await attempt(node(1), "bystander", TEST_PASSWORD, from), "TOO_MANY_ATTEMPTS");
    assert.equal(await attempt(node(1), "bystander", TEST_PASSWORD, "127.0.0.7"), "ok");
  });

  it("slows an account down after failures from many addresses over both nodes, never refusing the owner", async () => {
    for (const [i, from] of ["127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.4"].entries()) {
      assert.equal(await attempt(node(i), "target", "wrong guess!", from), "INVALID_CREDENTIALS");
    }
    // Four failures, one past the threshold: the next attempt, on either node, waits 250 ms * 2.
    const started = Date.now();
    assert.equal(await attempt(node(1), "target", TEST_PASSWORD, "127.0.1.5"), "ok");
    assert.ok(Date.now() - started >= 500, "the attempt was slowed down");
  });

  it("keeps the counts under parley:login: keys that expire with the window", async () => {
    assert.equal(await attempt(node(0), "keyed", "not it at all", "127.0.0.8"), "INVALID_CREDENTIALS");
    const keys = (await redis.command("KEYS", "parley:login:*keyed*")).split("\n").filter((key) => key !== "");
    assert.deepEqual(keys.sort(), ["parley:login:p:keyed|127.0.0.8", "parley:login:u:keyed"]);
    for (const key of keys) {
      const ttl = Number(await redis.command("PTTL", key));
      assert.ok(ttl > 0 && ttl <= LIMITS.windowMs, `${key} expires in ${ttl} ms`);
    }
  });

  it("refuses a login with CLUSTER_UNAVAILABLE, uncounted and unchecked, when Redis will not count it", async () => {
    // Redis up, the node in the cluster, but the counting script refused: no login gets through.
    await redis.command("ACL", "SETUSER", "default", "-eval");
    try {
      for (const i of [0, 1]) {
        assert.equal(await attempt(node(i), "guarded", TEST_PASSWORD, "127.0.0.9"), "CLUSTER_UNAVAILABLE");
      }
    } finally {
      await redis.command("ACL", "SETUSER", "default", "+eval");
    }
    assert.equal(await attempt(node(1), "guarded", TEST_PASSWORD, "127.0.0.9"), "ok");
  });
});

describe("login counts in a Redis that does not answer", () => {
  const logger = pino({ level: "silent" });
  const limiterOn = (redis: IORedis) =>
    new LoginLimiter(LIMITS, new SharedLoginCounts({ redis, windowMs: LIMITS.windowMs, logger, timeoutMs: 500 }));
  const unavailableError = (error: unknown) => error instanceof ParleyError && error.code === "CLUSTER_UNAVAILABLE";

  it("refuses with CLUSTER_UNAVAILABLE when the connection is gone", async () => {
    const redis = new IORedis("redis://127.0.0.1:1", { lazyConnect: true, enableOfflineQueue: false });
    try {
      await assert.rejects(limiterOn(redis).begin("alice", "127.0.0.1"), unavailableError);
    } finally {
      redis.disconnect();
    }
  });

  it("refuses with CLUSTER_UNAVAILABLE once the timeout passes when Redis takes the command and never answers", async () => {
    const silent = net.createServer((socket) => socket.on("data", () => {}));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as net.AddressInfo).port;
    const redis = new IORedis(port, "127.0.0.1", { enableOfflineQueue: true, maxRetriesPerRequest: 1 });
    try {
      const started = Date.now();
      await assert.rejects(limiterOn(redis).begin("alice", "127.0.0.1"), unavailableError);
      assert.ok(Date.now() - started < 2_000, "refused within the timeout");
    } finally {
      redis.disconnect();
      silent.close();
    }
  });
});
