/**
 * The call grace period across the nodes of a cluster: a device connected to one node, in a call
 * another node owns, loses its signaling connection without a close. The owner keeps its part in
 * the call for --call-grace (the others see it reconnecting), and the device takes the call back
 * with auth.resume through any node: a third one (a bot behind a test load balancer that sends its
 * new connection elsewhere; two-way audio checked by FFT), the owner itself, or its first node
 * again. Past the grace period it leaves as connection_lost, as on one node.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { BotExit } from "@parley/cli";
import {
  postgresUnavailable,
  RawClient,
  type Redis,
  redisUnavailable,
  runBot,
  type ServerProcess,
  sharedPostgres,
  spawnServer,
  startRedis,
  TEST_PASSWORD,
  tempDir,
  waitFor,
} from "@parley/testkit";
import { toneTimeline, useBotCalls } from "./bot-calls.js";

type Event = { type: "event"; event: string; data: Record<string, unknown> };
type Participant = { username: string; state: string; reconnecting?: boolean };

/** Logins queue for one password hash at a time on a loaded machine: a minute, not 5 s. */
const LOGIN_TIMEOUT_MS = 60_000;
/** The nodes' --call-grace: long enough for a bot's backed-off reconnection, short for the test that waits it out. */
const GRACE_S = 20;
/** Each node advertises its own media address (all on loopback), so the test can tell them apart. */
const MEDIA = { 1: "127.0.0.11", 2: "127.0.0.12", 3: "127.0.0.13" } as const;

/**
 * A TCP load balancer for the test: each new connection goes to the node chosen at that moment
 * (`route`). `cut` makes it a black hole: the connections it carries stay open on both sides but
 * nothing passes any more (no close, no reset: a lost network, as the server and the client see
 * it), and new connections are refused until the next `route`.
 */
class Balancer {
  readonly #server = net.createServer((socket) => this.#accept(socket));
  readonly #pairs: { client: net.Socket; upstream: net.Socket; live: boolean }[] = [];
  #target: number | undefined;
  /** The node each accepted connection was sent to, in order. */
  readonly routed: number[] = [];

  static async start(target: number): Promise<Balancer> {
    const balancer = new Balancer();
    balancer.#target = target;
    await new Promise<void>((resolve) => balancer.#server.listen(0, "127.0.0.1", resolve));
    return balancer;
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.#server.address() as net.AddressInfo).port}/ws`;
  }

  route(port: number): void {
    this.#target = port;
  }

  cut(): void {
    this.#target = undefined;
    for (const pair of this.#pairs) pair.live = false;
  }

  close(): void {
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.#server.close();
  }

  #accept(client: net.Socket): void {
    const target = this.#target;
    if (target === undefined) {
      client.destroy();
      return;
    }
    this.routed.push(target);
    const upstream = net.connect(target, "127.0.0.1");
    const pair = { client, upstream, live: true };
    this.#pairs.push(pair);
    client.on("data", (data) => pair.live && upstream.write(data));
    upstream.on("data", (data) => pair.live && client.write(data));
    for (const [socket, other] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      socket.on("error", () => undefined);
      socket.on("close", () => pair.live && other.destroy());
    }
  }
}

describe("call grace across nodes", { skip: postgresUnavailable() ?? redisUnavailable() }, () => {
  const { dir, botArgs } = useBotCalls("parley-cluster-grace-");
  let redis: Redis;
  const nodes: ServerProcess[] = [];
  const dirs: string[] = [];
  const clients: RawClient[] = [];
  const port = (node: 1 | 2 | 3) => Number(new URL(nodes[node - 1]!.url).port);
  const log = (node: 1 | 2 | 3) => fs.readFileSync(path.join(dirs[node - 1]!, "parley.log"), "utf8");

  /** A greeted client on `node`, registered as `username`; with its session token. */
  async function client(node: 1 | 2 | 3, username: string) {
    const c = await RawClient.greeted(nodes[node - 1]!.url);
    clients.push(c);
    const reply = await c.request("auth.register", { username, password: TEST_PASSWORD }, LOGIN_TIMEOUT_MS);
    if (!reply.ok) throw new Error(`${username} on node ${node}: ${reply.error.code}`);
    const result = reply.result as { token: string; user: { id: number } };
    return { client: c, userId: result.user.id, token: result.token };
  }

  /** The next call.info `c` receives (from `from`) in which `username` is (or is no longer) reconnecting. */
  const infoWith = (c: RawClient, username: string, reconnecting: boolean, from: number, timeoutMs = 20_000) =>
    c.waitFor(
      (m) =>
        m.type === "event" &&
        m.event === "call.info" &&
        ((m.data as { call: { participants: Participant[] } }).call.participants.find((p) => p.username === username)
          ?.reconnecting ?? false) === reconnecting,
      `${username} ${reconnecting ? "reconnecting" : "back"}`,
      timeoutMs,
      from,
    ) as unknown as Promise<Event>;

  /** `caller` on node 1 calls `callee`, who answers on `calleeClient`; returns the call id. */
  async function answeredCall(caller: RawClient, callee: RawClient, to: string): Promise<string> {
    const mark = callee.received.length;
    const placed = await caller.call<{ call: { callId: string } }>("call.invite", { to });
    await callee.waitFor((m) => m.type === "event" && m.event === "call.incoming", "call.incoming", 10_000, mark);
    await callee.call("call.answer", { callId: placed.call.callId });
    return placed.call.callId;
  }

  before(async () => {
    let database: string;
    [database, redis] = await Promise.all([sharedPostgres().then((c) => c.createDatabase()), startRedis()]);
    const start = (node: 1 | 2 | 3) => {
      const data = tempDir("parley-node-");
      dirs[node - 1] = data;
      return spawnServer(data, [
        ...["--database", database, "--redis", redis.url, "--hash-concurrency", "2"],
        ...["--media-ip", MEDIA[node], "--call-grace", String(GRACE_S)],
      ]);
    };
    nodes.push(await start(1));
    nodes.push(...(await Promise.all([start(2), start(3)])));
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const node of nodes) {
      if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill("SIGTERM");
      await node.exited;
    }
    await redis?.stop();
    for (const d of dirs) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  it("keeps a bot's call through a lost connection to its node and hands it back through a third node, audio both ways", async () => {
    // rio answers through the balancer, on node 2; sam calls from node 1, which owns the call.
    const balancer = await Balancer.start(port(2));
    try {
      const trace = (user: string) => path.join(dir(), `${user}.trace`);
      const answer = runBot("answer", [
        ...botArgs(balancer.url, "rio", 440, ["--bind", "127.0.0.3", "--trace", trace("rio")]),
        "--wait",
        "90",
      ]);
      await waitFor(() => answer.output().includes("waiting for a call"), "rio waiting", {
        timeoutMs: LOGIN_TIMEOUT_MS,
      });
      const call = runBot("call", [
        ...botArgs(nodes[0]!.url, "sam", 1000, ["--bind", "127.0.0.2", "--trace", trace("sam")]),
        ...["--to", "rio", "--duration", "34"],
      ]);
      const outputs = () => `${call.output()}\n${answer.output()}`;
      await waitFor(() => answer.output().includes("media connected"), "the call's media connected", {
        timeoutMs: 40_000,
      }).catch((error: Error) => {
        throw new Error(`${error.message}\n${outputs()}`);
      });
      await new Promise((resolve) => setTimeout(resolve, 3000));

      // rio's network to node 2 goes silent. Node 2 notices (its heartbeat), tells node 1, which
      // keeps rio in the call and tells sam rio is reconnecting.
      balancer.cut();
      const cutAt = Date.now();
      const reconnecting = (line: string) => {
        const m = JSON.parse(line) as Event;
        if (m.type !== "event" || m.event !== "call.info") return false;
        const participants = (m.data.call as { participants: Participant[] }).participants;
        return participants.some((p) => p.username === "rio" && p.reconnecting === true);
      };
      await waitFor(
        () => fs.readFileSync(trace("sam"), "utf8").split("\n").filter(Boolean).some(reconnecting),
        "sam told that rio is reconnecting",
        { timeoutMs: 25_000 },
      ).catch((error: Error) => {
        throw new Error(`${error.message}\n${outputs()}`);
      });
      const seenAt = Date.now();
      assert.match(log(1), /participant reconnecting/);

      // The balancer now sends rio's next connection to node 3, where it resumes the call.
      balancer.route(port(3));
      await waitFor(() => answer.output().includes("signaling connection back"), "rio back", {
        timeoutMs: 30_000,
      }).catch((error: Error) => {
        throw new Error(`${error.message}\n${outputs()}`);
      });
      console.log(
        `cut: sam told rio is reconnecting after ${seenAt - cutAt} ms, rio back through node 3 ${Date.now() - seenAt} ms later`,
      );
      assert.equal(balancer.routed.at(-1), port(3), `connections went to ${balancer.routed}`);
      assert.match(log(1), /participant reconnected/);

      assert.equal(await call.exited, BotExit.COMPLETED, outputs());
      assert.equal(await answer.exited, BotExit.COMPLETED, outputs());
      assert.match(answer.output(), /signaling connection lost: reconnecting/, outputs());
      assert.match(call.output(), /ended: hangup by sam \(answered\)/, outputs());
      assert.match(answer.output(), /ended: hangup by sam \(answered\)/, outputs());

      // Two-way audio second by second, through the cut and after the resume (the media went to
      // node 1's relay all along). Three nodes and two bots share two busy cores: a lone second
      // without the tone is the machine; a dropped leg would silence several in a row.
      for (const [user, hz] of [
        ["rio", 1000],
        ["sam", 440],
      ] as const) {
        const timeline = toneTimeline(path.join(dir(), `${user}.wav`), hz, 1).slice(1, -1);
        const share = [...timeline].filter((c) => c === "T").length / Math.max(1, timeline.length);
        console.log(`${user} hears ${hz} Hz in ${(share * 100).toFixed(0)} % of seconds: ${timeline}`);
        assert.ok(timeline.length >= 25, `${user}: ${timeline.length} s recorded\n${outputs()}`);
        assert.ok(share >= 0.8, `${user} heard ${hz} Hz in ${(share * 100).toFixed(0)} % of seconds: ${timeline}`);
        assert.ok(!timeline.includes("..."), `${user} lost ${hz} Hz for 3 s or more: ${timeline}`);
        const end = [...timeline.slice(-5)].filter((c) => c === "T").length;
        assert.ok(end >= 4, `${user} hears ${hz} Hz at the end (after the resume): ${timeline}`);
      }
      // rio only ever learned node 1's media address, whichever node it was connected to.
      const addresses = new Set(fs.readFileSync(trace("rio"), "utf8").match(/\b\d{1,3}(?:\.\d{1,3}){3}\b/g) ?? []);
      addresses.delete("0.0.0.0");
      assert.deepEqual([...addresses], [MEDIA[1]], `addresses in rio's signaling: ${[...addresses]}`);
    } finally {
      balancer.close();
    }
  });

  it("hands the call back on the owner's node and on the device's first node again", async () => {
    const { client: wes } = await client(1, "wes");
    let { client: vic, token } = await client(2, "vic");
    await waitFor(async () => {
      const { users } = await wes.call<{ users: { username: string; devices: number }[] }>("directory.list");
      return users.find((user) => user.username === "vic")?.devices === 1;
    }, "node 1 sees vic");
    const callId = await answeredCall(wes, vic, "vic");
    for (const node of [1, 2] as const) {
      // vic's connection drops without a close; wes sees vic reconnecting.
      const mark = wes.received.length;
      vic.ws.terminate();
      await infoWith(wes, "vic", true, mark);
      // vic comes back on `node` and takes the call back.
      const back = wes.received.length;
      vic = await RawClient.greeted(nodes[node - 1]!.url);
      clients.push(vic);
      const resumed = await vic.call<{ token: string; calls?: { callId: string; state: string }[] }>("auth.resume", {
        token,
        calls: [callId],
      });
      token = resumed.token;
      assert.deepEqual(
        resumed.calls?.map((c) => [c.callId, c.state]),
        [[callId, "active"]],
        `vic takes the call back on node ${node}`,
      );
      await infoWith(wes, "vic", false, back);
    }
    // The call goes on with vic's request from node 2: hold, then hang up.
    const held = await vic.call<{ call: { participants: { username: string; held: boolean }[] } }>("call.hold", {
      callId,
    });
    assert.equal(held.call.participants.find((p) => p.username === "vic")?.held, true);
    await vic.call("call.hangup", { callId });
    const ended = (await wes.waitFor(
      (m) => m.type === "event" && m.event === "call.ended",
      "call.ended",
      10_000,
    )) as unknown as Event;
    assert.equal(ended.data.reason, "hangup");
  });

  it("ends the call as connection_lost once the grace period passes without the device", async () => {
    const { client: tia } = await client(1, "tia");
    const { client: ugo, token } = await client(2, "ugo");
    await waitFor(async () => {
      const { users } = await tia.call<{ users: { username: string; devices: number }[] }>("directory.list");
      return users.find((user) => user.username === "ugo")?.devices === 1;
    }, "node 1 sees ugo");
    const callId = await answeredCall(tia, ugo, "ugo");
    const mark = tia.received.length;
    ugo.ws.terminate();
    await infoWith(tia, "ugo", true, mark);
    const since = Date.now();
    const ended = (await tia.waitFor(
      (m) => m.type === "event" && m.event === "call.ended" && (m.data as { callId: string }).callId === callId,
      "call.ended",
      (GRACE_S + 10) * 1000,
    )) as unknown as Event;
    const waited = Date.now() - since;
    assert.equal(ended.data.reason, "connection_lost");
    assert.equal(ended.data.outcome, "answered");
    assert.ok(waited > (GRACE_S - 2) * 1000, `ended ${waited} ms after ugo was seen reconnecting`);
    // Coming back now is too late: the session resumes (through node 3), the call does not.
    const late = await RawClient.greeted(nodes[2]!.url);
    clients.push(late);
    const resumed = await late.call<{ calls?: unknown[] }>("auth.resume", { token, calls: [callId] });
    assert.deepEqual(resumed.calls ?? [], []);
  });

  // Last: node 2 dies here.
  it("keeps a call for the devices of a node that dies, and hands it back through another node", async () => {
    const { client: xia } = await client(1, "xia");
    const { client: yul, token } = await client(2, "yul");
    await waitFor(async () => {
      const { users } = await xia.call<{ users: { username: string; devices: number }[] }>("directory.list");
      return users.find((user) => user.username === "yul")?.devices === 1;
    }, "node 1 sees yul");
    const callId = await answeredCall(xia, yul, "yul");
    const mark = xia.received.length;
    nodes[1]!.child.kill("SIGKILL");
    // Node 1 declares node 2 dead (within 7 s) and waits for yul rather than ending the call.
    await infoWith(xia, "yul", true, mark, 15_000);
    const back = xia.received.length;
    const again = await RawClient.greeted(nodes[2]!.url);
    clients.push(again);
    const resumed = await again.call<{ calls?: { callId: string }[] }>("auth.resume", { token, calls: [callId] });
    assert.deepEqual(
      resumed.calls?.map((c) => c.callId),
      [callId],
    );
    await infoWith(xia, "yul", false, back);
    await again.call("call.hangup", { callId });
    const ended = (await xia.waitFor(
      (m) => m.type === "event" && m.event === "call.ended",
      "call.ended",
      10_000,
    )) as unknown as Event;
    assert.equal(ended.data.reason, "hangup");
  });
});
