import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { dominantFrequency, readWav, SAMPLE_RATE, tone, toneLevel, writeWav } from "@parley/audio";
import {
  postgresUnavailable,
  RawClient,
  type Redis,
  redisUnavailable,
  runAdmin,
  runBot,
  type ServerProcess,
  sharedPostgres,
  spawnServer,
  startRedis,
  TEST_PASSWORD,
  tempDir,
  waitFor,
} from "@parley/testkit";
import { answeredCandidates } from "./bot-calls.js";

type Event = { type: "event"; event: string; data: Record<string, unknown> };

/** Logins queue for one password hash at a time on a loaded machine: a minute, not 5 s. */
const LOGIN_TIMEOUT_MS = 60_000;

const unavailable = postgresUnavailable() ?? redisUnavailable();

/** Each node advertises its own media address (all on loopback), so the test can tell them apart. */
const MEDIA = { 1: "127.0.0.11", 2: "127.0.0.12", 3: "127.0.0.13" } as const;

describe("calls between users on different nodes", { skip: unavailable }, () => {
  let redis: Redis;
  const nodes: ServerProcess[] = [];
  const dirs: string[] = [];
  const clients: RawClient[] = [];
  let database: string;
  let dir: string;
  const url = (node: 1 | 2 | 3) => nodes[node - 1]!.url;

  /** A greeted client on `node`, registered as (or logged in as) `username`. */
  async function client(node: 1 | 2 | 3, username: string, register = false) {
    const c = await RawClient.greeted(url(node));
    clients.push(c);
    const reply = await c.request(
      register ? "auth.register" : "auth.login",
      { username, password: TEST_PASSWORD },
      LOGIN_TIMEOUT_MS,
    );
    if (!reply.ok) throw new Error(`${username} on node ${node}: ${reply.error.code}`);
    return { client: c, userId: (reply.result as { user: { id: number } }).user.id };
  }

  /** Waits until `watcher`'s node sees `userId` online with `devices` devices in all. */
  async function devicesSeen(watcher: RawClient, userId: number, devices: number) {
    await waitFor(async () => {
      const { users } = await watcher.call<{ users: { id: number; devices: number }[] }>("directory.list");
      return users.find((user) => user.id === userId)?.devices === devices;
    }, `user ${userId} with ${devices} devices`);
  }

  const incoming = (c: RawClient, from = 0) =>
    c.waitFor(
      (m) => m.type === "event" && m.event === "call.incoming",
      "call.incoming",
      10_000,
      from,
    ) as unknown as Promise<Event>;
  const ended = (c: RawClient, callId: string, timeoutMs = 10_000) =>
    c.waitFor(
      (m) => m.type === "event" && m.event === "call.ended" && (m.data as { callId: string }).callId === callId,
      "call.ended",
      timeoutMs,
    ) as unknown as Promise<Event>;

  const toneFile = (hz: number, amplitude = 0.5) => {
    const file = path.join(dir, `tone-${hz}-${amplitude}.wav`);
    if (!fs.existsSync(file)) writeWav(file, tone(hz, 2, amplitude));
    return file;
  };
  const bot = (node: 1 | 2 | 3, user: string, hz: number, bind: string, amplitude = 0.5) => [
    "--server",
    url(node),
    "--user",
    user,
    "--password",
    TEST_PASSWORD,
    "--register",
    "--play",
    toneFile(hz, amplitude),
    "--record",
    path.join(dir, `${user}.wav`),
    "--bind",
    bind,
    "--trace",
    path.join(dir, `${user}.trace`),
  ];
  /** The recording's steady part (the first half second is skipped: jitter buffer and codec warm-up). */
  const heard = (user: string) => readWav(path.join(dir, `${user}.wav`)).subarray(Math.round(SAMPLE_RATE * 0.5));

  before(async () => {
    let started: Redis;
    [database, started] = await Promise.all([
      sharedPostgres().then((cluster) => cluster.createDatabase()),
      startRedis(),
    ]);
    redis = started;
    dir = tempDir("parley-cluster-calls-");
    const start = async (node: 1 | 2 | 3) => {
      const data = tempDir("parley-node-");
      dirs.push(data);
      return spawnServer(data, [
        "--database",
        database,
        "--redis",
        redis.url,
        "--hash-concurrency",
        "2",
        "--media-ip",
        MEDIA[node],
        // Calls in progress marked alive every second: a dead node's calls are closed in the
        // history by the others within seconds (see the node_lost test).
        "--history-alive-interval",
        "1",
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
    for (const d of [...dirs, dir]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  it("rings the callee on two nodes, stops the other when one answers, carries audio both ways through the caller's node", async () => {
    // The callee's bot on node 2, and the callee's second device (a plain client) on node 3.
    const answer = runBot("answer", [...bot(2, "bea", 440, "127.0.0.3"), "--wait", "90"]);
    await waitFor(() => answer.output().includes("waiting for a call"), "bea waiting", { timeoutMs: LOGIN_TIMEOUT_MS });
    const { client: beaOn3, userId: beaId } = await client(3, "bea");
    const { client: watcher } = await client(1, "watcher-1", true);
    await devicesSeen(watcher, beaId, 2);

    const call = runBot("call", [...bot(1, "cal", 1000, "127.0.0.2"), "--to", "bea", "--duration", "4"]);
    const rung = await incoming(beaOn3);
    const callId = (rung.data.call as { callId: string }).callId;
    // Answered on node 2: the device on node 3 stops ringing.
    const stopped = await ended(beaOn3, callId, 30_000);
    assert.equal(stopped.data.reason, "answered_elsewhere");
    const [callerCode, calleeCode] = await Promise.all([call.exited, answer.exited]);
    assert.equal(callerCode, 0, call.output());
    assert.equal(calleeCode, 0, answer.output());
    assert.match(call.output(), /ended: hangup by cal \(answered\)/);
    assert.match(answer.output(), /hangup/);

    // Two-way audio: each side hears the other's tone, and not its own.
    for (const [user, hz, own] of [
      ["bea", 1000, 440],
      ["cal", 440, 1000],
    ] as const) {
      const samples = heard(user);
      assert.ok(samples.length > SAMPLE_RATE * 1.5, `${user} recorded ${samples.length} samples`);
      const dominant = dominantFrequency(samples);
      assert.ok(Math.abs(dominant - hz) < 15, `${user} hears ${dominant} Hz, expected ${hz} Hz`);
      const level = toneLevel(samples, hz);
      assert.ok(level > 0.05, `${user}: level of ${hz} Hz is ${level}`);
      assert.ok(toneLevel(samples, own) < level / 50, `${user} hears its own tone`);
    }

    // The callee on node 2 only ever learned node 1's media address: not the caller's address,
    // not its own node's or node 3's.
    const trace = fs.readFileSync(path.join(dir, "bea.trace"), "utf8");
    const addresses = new Set(trace.match(/\b\d{1,3}(?:\.\d{1,3}){3}\b/g) ?? []);
    addresses.delete("0.0.0.0");
    assert.deepEqual([...addresses], [MEDIA[1]], `addresses in the callee's signaling: ${[...addresses]}`);
    for (const c of answeredCandidates(trace)) assert.match(c, / 127\.0\.0\.11 \d+ typ host/, c);

    // One history row, written by the caller's node, read from any node.
    await waitFor(async () => {
      const { calls } = await beaOn3.call<{ calls: { callId: string; outcome: string }[] }>("call.history");
      return calls.filter((entry) => entry.callId === callId).length === 1;
    }, "the call in bea's history");
    const { calls } = await beaOn3.call<{ calls: { callId: string; outcome: string; direction: string }[] }>(
      "call.history",
    );
    const rows = calls.filter((entry) => entry.callId === callId);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.outcome, "answered");
    assert.equal(rows[0]!.direction, "incoming");
  });

  it("ends the call on both nodes when the callee on another node hangs up; declines and refusals come back typed", async () => {
    const { client: ann, userId: annId } = await client(1, "ann", true);
    const { client: dan, userId: danId } = await client(2, "dan", true);
    await devicesSeen(ann, danId, 1);
    await devicesSeen(dan, annId, 1);
    // A third node sees dan in-call while he talks in a call held by node 1.
    const { client: onThree } = await client(3, "watcher-3", true);
    await devicesSeen(onThree, danId, 1);
    const statusOf = (status: string, from: number) =>
      onThree.waitFor(
        (m) =>
          m.type === "event" &&
          m.event === "presence.changed" &&
          (m.data as { userId: number }).userId === danId &&
          (m.data as { status: string }).status === status,
        `dan ${status} on node 3`,
        5000,
        from,
      );

    // Declined on node 2: the caller on node 1 is told.
    const first = await ann.call<{ call: { callId: string } }>("call.invite", { to: "dan" });
    await incoming(dan);
    await dan.call("call.decline", { callId: first.call.callId });
    assert.equal((await ended(ann, first.call.callId)).data.reason, "declined");
    // A request about an ended call is refused as on one node.
    const late = await dan.request("call.answer", { callId: first.call.callId });
    assert.equal(late.ok ? "ok" : late.error.code, "CALL_ENDED");

    // Answered, then hung up by the callee on node 2.
    const mark = dan.received.length;
    const second = await ann.call<{ call: { callId: string } }>("call.invite", { to: "dan" });
    await incoming(dan, mark);
    const answered = await dan.call<{ call: { callId: string; state: string } }>("call.answer", {
      callId: second.call.callId,
    });
    assert.equal(answered.call.state, "active");
    await statusOf("in-call", 0);
    const beforeHangup = onThree.received.length;
    // Hold goes through the call's node too.
    const held = await dan.call<{ call: { participants: { userId: number; held: boolean }[] } }>("call.hold", {
      callId: second.call.callId,
    });
    assert.equal(held.call.participants.find((p) => p.userId === danId)?.held, true);
    await dan.call("call.hangup", { callId: second.call.callId });
    const annEnded = await ended(ann, second.call.callId);
    assert.equal(annEnded.data.reason, "hangup");
    assert.equal(annEnded.data.by, danId);
    assert.equal((await ended(dan, second.call.callId)).data.reason, "hangup");
    await statusOf("available", beforeHangup);

    await waitFor(async () => {
      const { calls } = await dan.call<{ calls: { callId: string }[] }>("call.history");
      return calls.some((entry) => entry.callId === second.call.callId);
    }, "the call in dan's history");
    const { calls } = await ann.call<{ calls: { callId: string; outcome: string }[] }>("call.history");
    assert.deepEqual(
      calls
        .filter((entry) => [first.call.callId, second.call.callId].includes(entry.callId))
        .map((entry) => entry.outcome),
      ["answered", "declined"],
    );
  });

  it("tells a participant on another node that the call ended, even when it ended while Redis was restarting", async () => {
    const { client: rhea, userId: rheaId } = await client(1, "rhea", true);
    const { client: saul, userId: saulId } = await client(2, "saul", true);
    await devicesSeen(rhea, saulId, 1);
    await devicesSeen(saul, rheaId, 1);
    const mark = saul.received.length;
    const { call } = await rhea.call<{ call: { callId: string } }>("call.invite", { to: "saul" });
    await incoming(saul, mark);
    await saul.call("call.answer", { callId: call.callId });
    // The call's node ends it while Redis is away: the event for saul's node is kept and goes when
    // Redis is back (published on a channel, it would have been lost, and saul left in the call).
    await redis.restart(async () => {
      await rhea.call("call.hangup", { callId: call.callId });
    });
    const saulEnded = await ended(saul, call.callId, 30_000);
    assert.equal(saulEnded.data.reason, "hangup");
    assert.equal(saulEnded.data.by, rheaId);
  });

  it("mixes a conference with one participant on each node: everyone hears everyone else", async () => {
    const b = runBot("answer", [...bot(2, "conf-b", 700, "127.0.0.1", 0.25), "--wait", "90", "--duration", "12"]);
    const c = runBot("answer", [...bot(3, "conf-c", 1100, "127.0.0.1", 0.25), "--wait", "90", "--duration", "8"]);
    await waitFor(
      () => b.output().includes("waiting for a call") && c.output().includes("waiting for a call"),
      "conf-b and conf-c waiting",
      { timeoutMs: LOGIN_TIMEOUT_MS },
    );
    const { client: watcher } = await client(1, "watcher-conf", true);
    const ids = await watcher.call<{ users: { id: number; username: string }[] }>("directory.list");
    for (const name of ["conf-b", "conf-c"])
      await devicesSeen(watcher, ids.users.find((u) => u.username === name)!.id, 1);
    const a = runBot("call", [
      ...bot(1, "conf-a", 500, "127.0.0.1", 0.25),
      ...["--to", "conf-b", "--add", "conf-c", "--add-at", "2", "--duration", "14"],
    ]);
    // The operator of the call's node (node 1) names each leg by its user, those of other nodes' devices too.
    const listed = await waitFor(
      async () => {
        const { stdout } = await runAdmin(dirs[0]!, ["calls"]);
        const all = ["conf-a", "conf-b", "conf-c"].every((u) => new RegExp(`\\b${u} connected \\d+/\\d+`).test(stdout));
        return all ? stdout : undefined;
      },
      "node 1's operator listing the conference's three legs by user",
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    const codes = await Promise.all([a.exited, b.exited, c.exited]);
    assert.deepEqual(codes, [0, 0, 0], `${a.output()}\n${b.output()}\n${c.output()}`);
    assert.match(a.output(), /inviting conf-c/);
    assert.match(listed, /conf-a conf-b conf-c/, listed);
    const level = (user: string, hz: number) => toneLevel(heard(user), hz);
    const levels = () =>
      JSON.stringify({
        a: [level("conf-a", 700), level("conf-a", 1100)],
        b: [level("conf-b", 500), level("conf-b", 1100)],
        c: [level("conf-c", 500), level("conf-c", 700)],
      });
    assert.ok(
      level("conf-c", 500) > 0.03 && level("conf-c", 700) > 0.03,
      `C (node 3) hears A and B: ${levels()}\n${c.output()}`,
    );
    assert.ok(
      level("conf-a", 700) > 0.03 && level("conf-a", 1100) > 0.02,
      `A (node 1) hears B and C: ${levels()}\n${a.output()}`,
    );
    assert.ok(
      level("conf-b", 500) > 0.03 && level("conf-b", 1100) > 0.02,
      `B (node 2) hears A and C: ${levels()}\n${b.output()}`,
    );
    assert.ok(level("conf-c", 1100) < 0.001, "C does not hear itself");
  });

  it("lets a participant on another node than the call's add a user of a third node (call.add forwarded)", async () => {
    const { client: hal } = await client(1, "hal", true);
    const { client: ida, userId: idaId } = await client(2, "ida", true);
    const { client: gus, userId: gusId } = await client(3, "gus", true);
    await devicesSeen(hal, idaId, 1);
    await devicesSeen(ida, gusId, 1);
    const placed = await hal.call<{ call: { callId: string } }>("call.invite", { to: "ida" });
    await incoming(ida);
    await ida.call("call.answer", { callId: placed.call.callId });
    const grown = await ida.call<{ call: { participants: { username: string }[] } }>("call.add", {
      callId: placed.call.callId,
      to: "gus",
    });
    assert.deepEqual(
      grown.call.participants.map((p) => p.username),
      ["hal", "ida", "gus"],
    );
    await incoming(gus);
    const joined = await gus.call<{ call: { state: string; participants: { state: string }[] } }>("call.answer", {
      callId: placed.call.callId,
    });
    assert.deepEqual(
      joined.call.participants.map((p) => p.state),
      ["connected", "connected", "connected"],
    );
    await hal.call("call.hangup", { callId: placed.call.callId });
    // Two remain (on nodes 2 and 3): the call goes on on node 1 until one of them hangs up.
    await gus.call("call.hangup", { callId: placed.call.callId });
    assert.equal((await ended(ida, placed.call.callId)).data.reason, "hangup");
  });

  it("rings a user talking in a call held by one node as call waiting when a third node calls", async () => {
    const { client: jon } = await client(1, "jon", true);
    const { client: kim, userId: kimId } = await client(2, "kim", true);
    const { client: lee } = await client(3, "lee", true);
    await devicesSeen(jon, kimId, 1);
    const first = await jon.call<{ call: { callId: string } }>("call.invite", { to: "kim" });
    await incoming(kim);
    await kim.call("call.answer", { callId: first.call.callId });
    // Node 3 learns that kim is in a call (node 2 shares it) before it calls.
    await waitFor(async () => {
      const { users } = await lee.call<{ users: { id: number; status: string }[] }>("directory.list");
      return users.find((user) => user.id === kimId)?.status === "in-call";
    }, "kim in-call as node 3 sees it");
    const mark = kim.received.length;
    const second = await lee.call<{ call: { callId: string } }>("call.invite", { to: "kim" });
    const rung = await incoming(kim, mark);
    assert.equal((rung.data.call as { callId: string }).callId, second.call.callId);
    assert.equal(rung.data.waiting, true);
    await lee.call("call.hangup", { callId: second.call.callId });
    await jon.call("call.hangup", { callId: first.call.callId });
    assert.equal((await ended(kim, first.call.callId)).data.reason, "hangup");

    // Every message between the nodes so far arrived, in order, and every forwarded request ran.
    for (const data of dirs) {
      const log = fs.readFileSync(path.join(data, "parley.log"), "utf8");
      assert.doesNotMatch(log, /call messages from a node missed|request of another node's device failed/);
    }
  });

  it("ends a call for the participants on other nodes with node_lost when the caller's node dies", async () => {
    const { client: eve } = await client(3, "eve", true);
    const { client: fay, userId: fayId } = await client(2, "fay", true);
    await devicesSeen(eve, fayId, 1);
    const placed = await eve.call<{ call: { callId: string } }>("call.invite", { to: "fay" });
    await incoming(fay);
    await fay.call("call.answer", { callId: placed.call.callId });
    // Its record in the history has been written and marked alive (every second) before the kill.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    nodes[2]!.child.kill("SIGKILL");
    const started = Date.now();
    const lost = await ended(fay, placed.call.callId, 15_000);
    assert.ok(Date.now() - started < 10_000, `told after ${Date.now() - started} ms`);
    assert.equal(lost.data.reason, "node_lost");
    assert.equal(lost.data.outcome, "answered");
    // Nothing left waiting: a request about the call is answered at once.
    const after = await fay.request("call.hangup", { callId: placed.call.callId });
    assert.equal(after.ok, false);
    // The history row the dead node left open is closed by a live node, as interrupted.
    await waitFor(
      async () => {
        const { calls } = await fay.call<{ calls: { callId: string; outcome: string }[] }>("call.history");
        return calls.find((entry) => entry.callId === placed.call.callId)?.outcome === "interrupted";
      },
      "the lost call closed in the history",
      { timeoutMs: 30_000, intervalMs: 1000 },
    );
  });
});

describe("--max-calls-per-user across nodes", { skip: unavailable }, () => {
  let redis: Redis;
  const nodes: ServerProcess[] = [];
  const dirs: string[] = [];
  const clients: RawClient[] = [];

  /** A greeted client on `node`, registered (first device) or logged in as `username`. */
  async function client(node: 1 | 2, username: string, register = false) {
    const c = await RawClient.greeted(nodes[node - 1]!.url);
    clients.push(c);
    const reply = await c.request(
      register ? "auth.register" : "auth.login",
      { username, password: TEST_PASSWORD },
      LOGIN_TIMEOUT_MS,
    );
    if (!reply.ok) throw new Error(`${username} on node ${node}: ${reply.error.code}`);
    return { client: c, userId: (reply.result as { user: { id: number } }).user.id };
  }

  before(async () => {
    let database: string;
    [database, redis] = await Promise.all([sharedPostgres().then((cluster) => cluster.createDatabase()), startRedis()]);
    const start = (node: 1 | 2) => {
      const data = tempDir("parley-node-");
      dirs.push(data);
      return spawnServer(data, [
        ...["--database", database, "--redis", redis.url, "--hash-concurrency", "2"],
        ...["--media-ip", MEDIA[node], "--max-calls-per-user", "1"],
      ]);
    };
    nodes.push(...(await Promise.all([start(1), start(2)])));
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const node of nodes) {
      if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill("SIGTERM");
      await node.exited;
    }
    await redis?.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it("refuses a user in a call of one node a second call through another (TOO_MANY_CALLS), and is busy to callers of any node", async () => {
    // max has a device on each node; nia is on node 2 only, as is ozzy.
    const { client: maxOn1 } = await client(1, "max", true);
    const { client: maxOn2, userId: maxId } = await client(2, "max");
    const { client: nia, userId: niaId } = await client(2, "nia", true);
    const { client: ozzy } = await client(2, "ozzy", true);
    await waitFor(async () => {
      const { users } = await maxOn1.call<{ users: { id: number; devices: number }[] }>("directory.list");
      return users.find((user) => user.id === niaId)?.devices === 1 && users.find((u) => u.id === maxId)?.devices === 2;
    }, "node 1 sees max's and nia's devices on node 2");

    // max calls nia from node 1: the call is node 1's (nia's device is on node 2).
    const placed = await maxOn1.call<{ call: { callId: string } }>("call.invite", { to: "nia" });
    const rung = (await nia.waitFor(
      (m) => m.type === "event" && m.event === "call.incoming",
      "call.incoming",
      10_000,
    )) as unknown as Event;
    assert.equal((rung.data.call as { callId: string }).callId, placed.call.callId);
    await nia.call("call.answer", { callId: placed.call.callId });

    // Node 2 holds none of max's or nia's calls, yet counts node 1's.
    const again = await maxOn2.request("call.invite", { to: "ozzy" });
    assert.equal(again.ok ? "ok" : again.error.code, "TOO_MANY_CALLS");
    for (const callee of ["max", "nia"]) {
      const refused = await ozzy.request("call.invite", { to: callee });
      assert.equal(refused.ok ? "ok" : refused.error.code, "USER_BUSY", `ozzy calling ${callee} from node 2`);
    }
    assert.ok(
      !ozzy.received.some((m) => m.type === "event" && m.event === "call.incoming"),
      "nobody rang for ozzy's refused calls",
    );

    // Once the call ends, the counts go back down everywhere: max may call again through node 2.
    await maxOn1.call("call.hangup", { callId: placed.call.callId });
    await waitFor(async () => {
      const reply = await maxOn2.request("call.invite", { to: "ozzy" });
      if (!reply.ok) return false;
      await maxOn2.call("call.hangup", { callId: (reply.result as { call: { callId: string } }).call.callId });
      return true;
    }, "max may call again through node 2");
  });
});
