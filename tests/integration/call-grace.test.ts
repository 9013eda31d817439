/**
 * A call outlives its signaling connection: a bot on another machine (a network namespace) loses
 * its TCP to the server for 10 s mid-call (nft drops it; media is UDP and goes on). The server keeps
 * the call for its grace period, the bot reconnects and takes the call back with auth.resume, and
 * both recordings hold the other's tone through the outage, second by second; the call then hangs
 * up normally. A cut longer than the grace period ends the call as connection_lost for both.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { BotExit } from "@parley/cli";
import {
  createNetworkLab,
  type LabHost,
  loggedIn,
  type NetworkLab,
  networkLabUnavailable,
  runBot,
  startTestServer,
  type TestServer,
  waitFor,
} from "@parley/testkit";
import { BOT_PASSWORD, toneTimeline, useBotCalls } from "./bot-calls.js";

const { dir, botArgs } = useBotCalls("parley-call-grace-");

/** Share of whole seconds of `user`'s recording (first and last second skipped) that hold `hz`. */
function secondsWithTone(user: string, hz: number): { share: number; timeline: string } {
  const timeline = toneTimeline(path.join(dir(), `${user}.wav`), hz, 1).slice(1, -1);
  const share = timeline.length ? [...timeline].filter((c) => c === "T").length / timeline.length : 0;
  return { share, timeline };
}

describe("a call whose signaling connection drops", { skip: networkLabUnavailable() }, () => {
  let lab: NetworkLab;
  let remote: LabHost;
  let t: TestServer | undefined;

  before(async () => {
    lab = await createNetworkLab();
    remote = await lab.addHost("roaming");
  });
  after(async () => {
    await t?.stop();
    await lab?.close();
  });

  /** Starts a call from the namespace to a bot on this machine; resolves once it is answered. */
  async function call(server: TestServer, caller: string, callee: string, seconds: number) {
    const url = `${lab.hostAddress}:${server.server.port}`;
    const answer = runBot("answer", [...botArgs(url, callee, 440), "--wait", "60"]);
    await waitFor(() => answer.output().includes("waiting for a call"), `${callee} waiting`, { timeoutMs: 60_000 });
    const placed = runBot("call", [...botArgs(url, caller, 1000), "--to", callee, "--duration", String(seconds)], {
      wrap: remote.wrap,
    });
    await waitFor(() => answer.output().includes("media connected"), "the call's media connected", {
      timeoutMs: 40_000,
    }).catch((error: Error) => {
      throw new Error(`${error.message}\n${placed.output()}\n${answer.output()}`);
    });
    return { placed, answer };
  }

  /**
   * A server on the lab's address with a 2 s heartbeat, so that it sees the connection gone during a
   * cut (5 s by default) while a pong a second late on a busy machine is not taken for one, and the
   * given call grace period.
   */
  function labServer(callGraceMs: number): Promise<TestServer> {
    return startTestServer({
      host: lab.hostAddress,
      media: { ip: lab.hostAddress, portMin: 40000, portMax: 49999 },
      heartbeatMs: 2000,
      callGraceMs,
    });
  }

  async function cutSignaling(ms: number): Promise<void> {
    await remote.block({ tcp: true });
    await new Promise((resolve) => setTimeout(resolve, ms));
    await remote.unblock();
  }

  it("keeps the call and its audio through a 10 s cut, then hangs up normally", async () => {
    t = await labServer(30_000);
    const { placed, answer } = await call(t, "roamer", "desk", 22);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await cutSignaling(10_000);
    const outputs = () => `${placed.output()}\n${answer.output()}`;
    // The server noticed (2 s heartbeat) and the others saw the participant reconnecting.
    assert.equal(await placed.exited, BotExit.COMPLETED, outputs());
    assert.equal(await answer.exited, BotExit.COMPLETED, outputs());
    assert.match(placed.output(), /signaling connection lost: reconnecting/);
    assert.match(placed.output(), /signaling connection back/);
    assert.match(placed.output(), /ended: hangup by roamer \(answered\)/);
    const { client } = await loggedIn(t.url, "roamer", BOT_PASSWORD);
    const { calls } = await client.call<{ calls: { peer: { username: string }; outcome: string }[] }>("call.history");
    client.close();
    assert.deepEqual(
      calls.map((c) => [c.peer.username, c.outcome]),
      [["desk", "answered"]],
      "one call in the history",
    );
    for (const [user, hz] of [
      ["roamer", 440],
      ["desk", 1000],
    ] as const) {
      const { share, timeline } = secondsWithTone(user, hz);
      console.log(`${user} hears ${hz} Hz in ${(share * 100).toFixed(0)} % of seconds: ${timeline}`);
      assert.ok(
        share >= 0.95,
        `${user} heard ${hz} Hz in only ${(share * 100).toFixed(0)} % of seconds: ${timeline}\n${outputs()}`,
      );
    }
    await t.stop();
    t = undefined;
  });

  it("tells a participant who comes back after the other hung up during the cut how the call ended", async () => {
    t = await labServer(30_000);
    const url = `${lab.hostAddress}:${t.server.port}`;
    // The roaming bot answers; the one on this machine calls and hangs up 8 s after the answer.
    const roamer = runBot("answer", [...botArgs(url, "roamer3", 440), "--wait", "60"], { wrap: remote.wrap });
    await waitFor(() => roamer.output().includes("waiting for a call"), "roamer3 waiting", { timeoutMs: 60_000 });
    const desk = runBot("call", [...botArgs(url, "desk3", 1000), "--to", "roamer3", "--duration", "8"]);
    await waitFor(() => desk.output().includes("media connected"), "the call's media connected", { timeoutMs: 40_000 });
    await cutSignaling(12_000);
    const outputs = () => `${desk.output()}\n${roamer.output()}`;
    assert.equal(await desk.exited, BotExit.COMPLETED, outputs());
    assert.equal(await roamer.exited, BotExit.COMPLETED, outputs());
    // It learned it on its way back (the server told it before handing back no call).
    assert.match(roamer.output(), /signaling connection lost: reconnecting/, outputs());
    assert.match(roamer.output(), /ended: hangup by desk3 \(answered\)/, outputs());
    await t.stop();
    t = undefined;
  });

  it("ends the call as connection_lost for both when the cut outlasts the grace period", async () => {
    t = await labServer(3000);
    const { placed, answer } = await call(t, "roamer2", "desk2", 40);
    await cutSignaling(9000);
    const outputs = () => `${placed.output()}\n${answer.output()}`;
    assert.equal(await answer.exited, BotExit.FAILED, outputs());
    assert.match(answer.output(), /ended: connection_lost \(answered\)/);
    assert.equal(await placed.exited, BotExit.FAILED, outputs());
    assert.match(placed.output(), /ended: connection_lost/);
    await t.stop();
    t = undefined;
  });
});
