/**
 * A server killed (SIGKILL) during calls and started again on the same data dir: every call it
 * interrupted reaches both users' history once, as `interrupted`, with the duration it really had
 * (less at most one alive interval); a call that only rang is interrupted with no duration and is
 * not a missed call; calls that end normally are written once, as before.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type BotRun,
  loggedIn,
  type RawClient,
  registered,
  runAdmin,
  runBot,
  type ServerProcess,
  spawnServer,
  TEST_PASSWORD,
  waitFor,
} from "@parley/testkit";
import { BOT_PASSWORD, useBotCalls } from "./bot-calls.js";

/** `--history-alive-interval` of the servers here, in seconds. */
const ALIVE_S = 1;
const SERVER_ARGS = ["--history-alive-interval", String(ALIVE_S)];

interface HistoryEntry {
  callId: string;
  direction: "incoming" | "outgoing";
  outcome: string;
  missed: boolean;
  durationMs: number;
  answeredAt: string | null;
  endedAt: string;
  peer: { username: string };
}

const { dir, botArgs } = useBotCalls("parley-server-restart-");

async function historyOf(url: string, username: string, password = TEST_PASSWORD): Promise<HistoryEntry[]> {
  const { client } = await loggedIn(url, username, password);
  try {
    return (await client.call<{ calls: HistoryEntry[] }>("call.history", {})).calls;
  } finally {
    client.close();
  }
}

async function kill(server: ServerProcess): Promise<void> {
  server.child.kill("SIGKILL");
  await server.exited;
}

async function stopBot(bot: BotRun): Promise<void> {
  if (bot.child.exitCode === null && bot.child.signalCode === null) bot.child.kill();
  await bot.exited;
}

/** The server's log lines (JSON) whose message is `msg`. */
function logLines(dataDir: string, msg: string): Record<string, unknown>[] {
  return fs
    .readFileSync(path.join(dataDir, "parley.log"), "utf8")
    .split("\n")
    .filter((line) => line.includes(msg))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("a server restarted after a crash", () => {
  let dataDir = "";
  let server: ServerProcess;
  let answeredForMs = 0;
  const bots: BotRun[] = [];
  const clients: RawClient[] = [];

  before(async () => {
    dataDir = path.join(dir(), "data");
    server = await spawnServer(dataDir, SERVER_ARGS);
    // An answered call between two bots (real media), and a call that only rings between two users.
    const answerer = runBot("answer", [...botArgs(server.url, "ann", 440), "--wait", "60"]);
    bots.push(answerer);
    await waitFor(() => answerer.output().includes("waiting for a call"), "ann waiting", { timeoutMs: 20_000 });
    const placedAt = Date.now();
    const caller = runBot("call", [...botArgs(server.url, "bob", 660), "--to", "ann", "--duration", "60"]);
    bots.push(caller);
    await waitFor(() => answerer.output().includes("answered: talking"), "ann answering", { timeoutMs: 20_000 });
    const carol = await registered(server.url, "carol");
    const dave = await registered(server.url, "dave");
    clients.push(carol.client, dave.client);
    const ringing = await carol.client.call<{ call: { state: string } }>("call.invite", { to: "dave" });
    assert.equal(ringing.call.state, "ringing");
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    await kill(server);
    answeredForMs = Date.now() - placedAt;
    for (const client of clients) client.close();
    for (const bot of bots) await stopBot(bot);
    server = await spawnServer(dataDir, SERVER_ARGS);
  });

  after(async () => {
    for (const bot of bots) await stopBot(bot);
    if (server.child.exitCode === null) await kill(server);
  });

  it("logs how many calls it closed as interrupted before accepting connections", () => {
    const closed = logLines(dataDir, "calls interrupted by the last stop closed in the history");
    assert.equal(closed.length, 1);
    assert.equal(closed[0]!.calls, 2);
  });

  it("shows the answered call once to both users as interrupted, with the duration it had", async () => {
    const ann = await historyOf(server.url, "ann", BOT_PASSWORD);
    const bob = await historyOf(server.url, "bob", BOT_PASSWORD);
    assert.equal(ann.length, 1, JSON.stringify(ann));
    assert.equal(bob.length, 1, JSON.stringify(bob));
    assert.equal(ann[0]!.callId, bob[0]!.callId);
    assert.deepEqual(
      [bob[0]!.direction, bob[0]!.outcome, bob[0]!.missed, ann[0]!.direction, ann[0]!.outcome, ann[0]!.missed],
      ["outgoing", "interrupted", false, "incoming", "interrupted", false],
    );
    for (const entry of [ann[0]!, bob[0]!]) {
      // It talked for more than 3.5 s; a crash loses at most one alive interval (and a write batch).
      assert.ok(entry.durationMs >= 2_000, `duration ${entry.durationMs} ms`);
      assert.ok(entry.durationMs <= answeredForMs, `duration ${entry.durationMs} ms > ${answeredForMs} ms`);
    }
  });

  it("shows a call that only rang as interrupted, with no duration, and not as a missed call", async () => {
    const carol = await historyOf(server.url, "carol");
    const dave = await historyOf(server.url, "dave");
    assert.equal(carol.length, 1, JSON.stringify(carol));
    assert.equal(dave.length, 1, JSON.stringify(dave));
    assert.deepEqual(
      [carol[0]!.outcome, carol[0]!.durationMs, carol[0]!.answeredAt, carol[0]!.peer.username],
      ["interrupted", 0, null, "dave"],
    );
    assert.deepEqual([dave[0]!.outcome, dave[0]!.missed, dave[0]!.durationMs], ["interrupted", false, 0]);
  });

  it("lets the operator find the interrupted calls by their outcome, ended by the server's restart", async () => {
    const added = await runAdmin(dataDir, ["users", "add", "opal", "--password", TEST_PASSWORD, "--operator"]);
    assert.equal(added.code, 0, added.stderr);
    const { client } = await loggedIn(server.url, "opal");
    try {
      const { calls } = await client.call<{ calls: { caller: string; outcome: string; endReason: string }[] }>(
        "operator.callHistory",
        { outcome: "interrupted" },
      );
      assert.deepEqual(calls.map((c) => [c.caller, c.outcome, c.endReason]).sort(), [
        ["bob", "interrupted", "server_restarted"],
        ["carol", "interrupted", "server_restarted"],
      ]);
    } finally {
      client.close();
    }
  });

  it("writes a call that ends normally once per participant, and closes nothing at the next start", async () => {
    const erin = await registered(server.url, "erin");
    const frank = await registered(server.url, "frank");
    try {
      const { call } = await erin.client.call<{ call: { callId: string } }>("call.invite", { to: "frank" });
      await frank.client.call("call.answer", { callId: call.callId });
      // Longer than an alive interval: the open record is marked alive before the call ends.
      await new Promise((resolve) => setTimeout(resolve, (ALIVE_S + 0.5) * 1000));
      await erin.client.call("call.hangup", { callId: call.callId });
    } finally {
      erin.client.close();
      frank.client.close();
    }
    const check = async () => {
      for (const username of ["erin", "frank"]) {
        const entries = await historyOf(server.url, username);
        assert.equal(entries.length, 1, JSON.stringify(entries));
        assert.equal(entries[0]!.outcome, "answered");
        assert.ok(entries[0]!.durationMs >= ALIVE_S * 1000, `duration ${entries[0]!.durationMs} ms`);
      }
    };
    await check();
    await kill(server);
    server = await spawnServer(dataDir, SERVER_ARGS);
    await check();
    assert.equal(logLines(dataDir, "calls interrupted by the last stop closed in the history").length, 1);
  });

  it("leaves the calls in progress alone when a second server fails to start on the same data dir", async () => {
    const gina = await registered(server.url, "gina");
    const hal = await registered(server.url, "hal");
    try {
      const { call } = await gina.client.call<{ call: { callId: string } }>("call.invite", { to: "hal" });
      await hal.client.call("call.answer", { callId: call.callId });
      await assert.rejects(spawnServer(dataDir, SERVER_ARGS), /Another Parley server is running/);
      await gina.client.call("call.hangup", { callId: call.callId });
    } finally {
      gina.client.close();
      hal.client.close();
    }
    for (const username of ["gina", "hal"]) {
      const entries = await historyOf(server.url, username);
      assert.deepEqual(
        entries.map((e) => e.outcome),
        ["answered"],
      );
    }
  });
});
