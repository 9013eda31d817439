import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, describe, it } from "node:test";
import type { OperatorSnapshot } from "@parley/protocol";
import {
  loggedIn,
  postgresUnavailable,
  type RawClient,
  type Redis,
  redisUnavailable,
  registered,
  runAdmin,
  type ServerProcess,
  sharedPostgres,
  spawnServer,
  startRedis,
  TEST_PASSWORD,
  tempDir,
  waitFor,
} from "@parley/testkit";

const unavailable = postgresUnavailable() ?? redisUnavailable();

/** `GET /metrics` of a node (its exposure is `local`: the test runs on the loopback address). */
async function metricsOf(node: ServerProcess): Promise<string> {
  const response = await fetch(`${node.httpUrl}/metrics`);
  assert.equal(response.status, 200);
  return response.text();
}

describe("the operator's view of a cluster of three nodes", { skip: unavailable }, () => {
  let redis: Redis;
  const nodes: ServerProcess[] = [];
  const dirs: string[] = [];
  const clients: RawClient[] = [];
  const url = (node: 1 | 2 | 3) => nodes[node - 1]!.url;
  const admin = async (node: 1 | 2 | 3, words: string[]) => {
    const result = await runAdmin(dirs[node - 1]!, words);
    assert.equal(result.code, 0, `parley admin ${words.join(" ")}: ${result.stdout}${result.stderr}`);
    return result.stdout;
  };
  let operator: RawClient;
  /** Node ids as node 1's operator sees them (the `self` entry is node 1). */
  let snapshot: OperatorSnapshot;

  /** The node id of a node, as its `/metrics` labels it. */
  const idOf = async (node: 1 | 2 | 3) => {
    const id = /parley_cluster_nodes\{node="([^"]+)"\}/.exec(await metricsOf(nodes[node - 1]!))?.[1];
    assert.ok(id, `node ${node}'s id in its /metrics`);
    return id;
  };

  /**
   * An answered call from `caller` (registered on node `from`, so the call is that node's) to
   * `callee` (registered on node `to`), without media: signaling is enough for the operator.
   */
  async function answeredCall(from: 1 | 2 | 3, caller: string, to: 1 | 2 | 3, callee: string) {
    const a = await registered(url(from), caller);
    const b = await registered(url(to), callee);
    clients.push(a.client, b.client);
    // The caller's node has to know the callee online before it can ring them.
    await waitFor(async () => {
      const { users } = await a.client.call<{ users: { id: number; devices: number }[] }>("directory.list");
      return (users.find((user) => user.id === b.userId)?.devices ?? 0) > 0;
    }, `${callee} online as ${caller}'s node sees them`);
    const placed = await a.client.call<{ call: { callId: string } }>("call.invite", { to: callee });
    const callId = placed.call.callId;
    await b.client.waitFor(
      (m) =>
        m.type === "event" &&
        m.event === "call.incoming" &&
        (m.data as { call?: { callId?: string } }).call?.callId === callId,
      "call.incoming",
      10_000,
    );
    await b.client.call("call.answer", { callId });
    return { callId, caller: a.client, callee: b.client };
  }

  /** The `call.ended` event of `callId` on `client`. */
  const ended = (client: RawClient, callId: string) =>
    client.waitFor(
      (m) => m.type === "event" && m.event === "call.ended" && (m.data as { callId?: string }).callId === callId,
      `call.ended of ${callId}`,
      10_000,
    ) as Promise<{ data: { reason: string; by: number | null } }>;

  before(async () => {
    let database: string;
    [database, redis] = await Promise.all([sharedPostgres().then((cluster) => cluster.createDatabase()), startRedis()]);
    const start = async () => {
      const dir = tempDir("parley-node-");
      dirs.push(dir);
      return spawnServer(dir, ["--database", database, "--redis", redis.url, "--hash-concurrency", "2"]);
    };
    // Started one after the other: dirs[i] is the data dir of nodes[i].
    for (let i = 0; i < 3; i++) nodes.push(await start());
    await admin(1, ["users", "add", "oper", "--password", TEST_PASSWORD, "--operator"]);
    ({ client: operator } = await loggedIn(url(1), "oper"));
    clients.push(operator);
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

  it("shows node 1's operator the three nodes with their loads and a user logged in on node 3, marked with that node", async () => {
    const { client: carol, userId: carolId } = await registered(url(3), "carol");
    clients.push(carol);
    await waitFor(
      async () => {
        snapshot = await operator.call<OperatorSnapshot>("operator.snapshot");
        const carolOn = snapshot.users.find((user) => user.id === carolId)?.nodes?.[0]?.node;
        // Presence shows her at once, her node's load with its next heartbeat (every 2 s).
        return snapshot.nodes?.length === 3 && snapshot.nodes.some((n) => n.id === carolOn && n.load.users === 1);
      },
      "three nodes and carol on one of them in node 1's snapshot",
      { timeoutMs: 10_000 },
    );
    const nodes = snapshot.nodes!;
    assert.equal(nodes[0]!.self, true, "the answering node first");
    assert.equal(nodes.filter((n) => n.self).length, 1);
    for (const node of nodes) {
      assert.equal(node.alive, true);
      assert.equal(node.mediaAddress, "127.0.0.1");
      assert.deepEqual(Object.keys(node.load).sort(), ["calls", "legs", "users"]);
    }
    const carolNode = snapshot.users.find((user) => user.id === carolId)!;
    assert.equal(carolNode.status, "available");
    assert.equal(carolNode.devices.length, 0, "no device (nor address) of hers on node 1");
    const where = carolNode.nodes![0]!;
    assert.equal(where.devices, 1);
    assert.notEqual(where.node, nodes[0]!.id, "carol is on another node than node 1");
    assert.equal(nodes.find((n) => n.id === where.node)?.load.users, 1, "her node's load counts her");
    // The operator (on node 1) is on node 1.
    assert.deepEqual(snapshot.users.find((user) => user.username === "oper")?.nodes, [
      { node: nodes[0]!.id, devices: 1 },
    ]);

    // The same through `parley admin` on node 1.
    const listed = await admin(1, ["nodes"]);
    assert.match(listed, /3 live node\(s\)/);
    for (const node of nodes) assert.ok(listed.includes(node.id), `${node.id} in:\n${listed}`);
    const users = await admin(1, ["users"]);
    assert.match(users, new RegExp(`carol .*available .*${where.node.slice(0, 8)}:1`));
    assert.match(await admin(1, ["user", "carol"]), new RegExp(`nodes: +${where.node} \\(1 device`));
  });

  it("kicks from node 1 a user logged in on node 3: their connection on node 3 closes", async () => {
    const { client: dave } = await registered(url(3), "dave");
    clients.push(dave);
    // Node 1 has to know where dave is before it can reach him.
    await waitFor(
      async () =>
        (await operator.call<OperatorSnapshot>("operator.snapshot")).users.find((u) => u.username === "dave")?.nodes
          ?.length === 1,
      "dave online on node 3 as node 1 sees him",
    );
    const { devices } = await operator.call<{ devices: number }>("operator.kick", { username: "dave" });
    assert.equal(devices, 1);
    assert.deepEqual(await dave.closed, { code: 4001, reason: "KICKED" });
    // And through `parley admin` on node 1: a second device on node 2.
    const { client: daveOn2 } = await loggedIn(url(2), "dave");
    clients.push(daveOn2);
    await waitFor(
      async () => (await admin(1, ["user", "dave"])).includes("(1 device(s))"),
      "dave online on node 2 as node 1 sees him",
    );
    assert.match(await admin(1, ["kick", "dave"]), /kicked dave \(1 device\(s\)\)/);
    assert.deepEqual(await daveOn2.closed, { code: 4001, reason: "KICKED" });
    const entries = (await admin(1, ["logs", "5", "--action", "admin.kick"])).split("\n");
    assert.equal(entries.filter((line) => line.includes("dave")).length, 2);
  });

  it("disables from node 1 a user logged in on node 3: their connection on node 3 closes", async () => {
    const { client: erin } = await registered(url(3), "erin");
    clients.push(erin);
    await operator.call("operator.setDisabled", { username: "erin", disabled: true });
    assert.deepEqual(await erin.closed, { code: 4002, reason: "ACCOUNT_DISABLED" });
  });

  it("labels every series of each node's /metrics with its node id, and counts the live nodes", async () => {
    const ids = snapshot.nodes!.map((n) => n.id);
    const seen = new Set<string>();
    for (const node of nodes) {
      const text = await metricsOf(node);
      const series = text.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
      const id = /parley_cluster_nodes\{node="([^"]+)"\} 3/.exec(text)?.[1];
      assert.ok(id && ids.includes(id), `parley_cluster_nodes of a known node in:\n${text.slice(0, 2000)}`);
      seen.add(id);
      const unlabelled = series.filter((line) => !line.includes(`node="${id}"`));
      assert.deepEqual(unlabelled, [], "every series carries the node label");
    }
    assert.equal(seen.size, 3, "each node its own label");
  });

  it("lists for node 1's operator a call node 2 owns, with its node, and ends it there for both participants", async () => {
    const node2 = await idOf(2);
    const { callId, caller, callee } = await answeredCall(2, "gina", 3, "hugo");
    const listed = await operator.call<OperatorSnapshot>("operator.snapshot");
    const call = listed.calls.find((c) => c.callId === callId);
    assert.ok(call, `call ${callId} in node 1's snapshot: ${JSON.stringify(listed.calls)}`);
    assert.equal(call.node, node2, "the call is node 2's");
    assert.deepEqual(call.participants, ["gina", "hugo"]);
    assert.equal(call.state, "active");
    assert.equal(listed.unansweredNodes, undefined, "every node answered");
    assert.equal(listed.users.find((u) => u.username === "hugo")?.callId, callId, "hugo (node 3) in node 2's call");
    // The same through `parley admin calls` on node 1, with the node's short id.
    assert.match(await admin(1, ["calls"]), new RegExp(`${callId} +${node2.slice(0, 8)} +active +gina hugo`));

    const callerEnded = ended(caller, callId);
    const calleeEnded = ended(callee, callId);
    await operator.call("operator.endCall", { callId });
    for (const event of await Promise.all([callerEnded, calleeEnded])) {
      assert.equal(event.data.reason, "operator");
      assert.equal(event.data.by, null);
    }
    const after = await operator.call<OperatorSnapshot>("operator.snapshot");
    assert.equal(
      after.calls.find((c) => c.callId === callId),
      undefined,
      "the call is gone from the list",
    );
    // `parley admin hangup` on node 1 with a prefix of a call node 3 owns.
    const second = await answeredCall(3, "ivan", 2, "jade");
    const callerEndedToo = ended(second.caller, second.callId);
    const calleeEndedToo = ended(second.callee, second.callId);
    assert.match(
      await admin(1, ["hangup", second.callId.slice(0, 13)]),
      new RegExp(`ended call ${second.callId} \\(ivan, jade\\)`),
    );
    assert.equal((await callerEndedToo).data.reason, "operator");
    assert.equal((await calleeEndedToo).data.reason, "operator");
    // Each audited once, by the node that ended it (in its next batch), with who ended it and,
    // for the web operator, from which address.
    let actors: [string, string | null][][] = [];
    await waitFor(
      async () => {
        const { entries } = await operator.call<{
          entries: { actor: string; address: string | null; detail: { callId?: string } }[];
        }>("operator.audit", { action: "admin.hangup" });
        actors = [callId, second.callId].map((id) =>
          entries.filter((e) => e.detail.callId === id).map((e) => [e.actor, e.address]),
        );
        return actors.every((list) => list.length > 0);
      },
      "both hang-ups in the audit log",
      { timeoutMs: 10_000 },
    );
    assert.deepEqual(actors, [[["oper", "127.0.0.1"]], [["operator", null]]]);

    // A call no node has: the not-found error, once every node answered.
    const unknown = await operator.request("operator.endCall", { callId: "00000000-0000-4000-8000-000000000000" });
    assert.ok(!unknown.ok && unknown.error.code === "CALL_NOT_FOUND", JSON.stringify(unknown));
  });

  it("fails a kick with NODE_UNREACHABLE naming the node when the user's node does not answer", async () => {
    const { client: frank } = await registered(url(2), "frank");
    clients.push(frank);
    let on: string | undefined;
    await waitFor(async () => {
      const users = (await operator.call<OperatorSnapshot>("operator.snapshot")).users;
      on = users.find((u) => u.username === "frank")?.nodes?.[0]?.node;
      return on !== undefined;
    }, "frank online on node 2 as node 1 sees him");
    // Node 2 frozen: still live for the others (its record lasts 6 s), but it answers nothing.
    nodes[1]!.child.kill("SIGSTOP");
    try {
      const reply = await operator.request("operator.kick", { username: "frank" }, 10_000);
      assert.equal(reply.ok, false);
      assert.ok(!reply.ok && reply.error.code === "NODE_UNREACHABLE", JSON.stringify(reply));
      assert.ok(!reply.ok && reply.error.message.includes(on!), reply.ok ? "" : reply.error.message);
    } finally {
      nodes[1]!.child.kill("SIGCONT");
    }
  });

  it("fails the hang-up of a call on a killed node with NODE_UNREACHABLE, and reports the node missing from the list", async () => {
    const node3 = await idOf(3);
    const { callId } = await answeredCall(3, "kurt", 3, "lena");
    await waitFor(
      async () =>
        (await operator.call<OperatorSnapshot>("operator.snapshot")).calls.some(
          (c) => c.callId === callId && c.node === node3,
        ),
      "node 3's call in node 1's list",
    );
    // Killed: still live for the others until its record expires (6 s after its last heartbeat).
    nodes[2]!.child.kill("SIGKILL");
    await nodes[2]!.exited;
    const [hangup, listed] = await Promise.all([
      operator.request("operator.endCall", { callId }, 10_000),
      operator.call<OperatorSnapshot>("operator.snapshot"),
    ]);
    assert.ok(!hangup.ok && hangup.error.code === "NODE_UNREACHABLE", JSON.stringify(hangup));
    assert.ok(!hangup.ok && hangup.error.message.includes(node3), hangup.ok ? "" : hangup.error.message);
    assert.deepEqual(listed.unansweredNodes, [node3]);
    assert.equal(
      listed.calls.find((c) => c.callId === callId),
      undefined,
    );
  });
});
