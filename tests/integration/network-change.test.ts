/**
 * Media recovers from a network change: mid-call, the bot on another machine (a network namespace)
 * moves to a new address. Its signaling connection goes silent (the SDK's liveness ping notices),
 * it reconnects from the new address and takes the call back, the server sees its leg hears
 * nothing and asks for a new one, and the bot renews its media from the new address. Both
 * recordings get the other's tone back; the call then hangs up normally and the history holds
 * one call. The time from the change to the tone's return is printed for docs/performance.md.
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

const { dir, botArgs } = useBotCalls("parley-network-change-");
/** The recording as 0.25 s windows: "T" where `hz` is clearly there, "." where not. */
function timeline(user: string, hz: number): string {
  return toneTimeline(path.join(dir(), `${user}.wav`), hz, 0.25);
}

/** Seconds of the longest run of windows without the tone between the first and the last tone. */
function longestGap(line: string): number {
  const inner = line.slice(line.indexOf("T"), line.lastIndexOf("T") + 1);
  const gaps = inner.split("T").map((run) => run.length);
  return Math.max(0, ...gaps) / 4;
}

describe("a call whose client moves to a new network address", { skip: networkLabUnavailable() }, () => {
  let lab: NetworkLab;
  let roaming: LabHost;
  let t: TestServer;

  before(async () => {
    lab = await createNetworkLab();
    roaming = await lab.addHost("roaming");
    t = await startTestServer({
      host: lab.hostAddress,
      media: { ip: lab.hostAddress, portMin: 40000, portMax: 49999 },
      heartbeatMs: 2000,
    });
  });
  after(async () => {
    await t?.stop();
    await lab?.close();
  });

  it("gets two-way audio back on the new address, and the call goes on to a normal hang up", async () => {
    const url = `${lab.hostAddress}:${t.server.port}`;
    const answer = runBot("answer", [...botArgs(url, "office", 440), "--wait", "60"]);
    await waitFor(() => answer.output().includes("waiting for a call"), "office waiting", { timeoutMs: 20_000 });
    const caller = runBot("call", [...botArgs(url, "laptop", 1000), "--to", "office", "--duration", "24"], {
      wrap: roaming.wrap,
    });
    await waitFor(() => answer.output().includes("media connected"), "media connected", { timeoutMs: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const before = roaming.address;
    const after = await roaming.changeAddress();
    assert.notEqual(after, before);
    const outputs = () => `${caller.output()}\n${answer.output()}`;
    assert.equal(await caller.exited, BotExit.COMPLETED, outputs());
    assert.equal(await answer.exited, BotExit.COMPLETED, outputs());
    assert.match(caller.output(), /media renewed/, outputs());
    assert.match(caller.output(), new RegExp(`media from ${after.replaceAll(".", "\\.")} now`), outputs());
    for (const [user, hz] of [
      ["laptop", 440],
      ["office", 1000],
    ] as const) {
      const line = timeline(user, hz);
      const gap = longestGap(line);
      console.log(`${user} hears ${hz} Hz (0.25 s windows, longest gap ${gap} s): ${line}`);
      // The tone is back and stays for the last part of the call.
      assert.match(line, /T{16}\.{0,4}$/, `${user} hears ${hz} Hz again after the change: ${line}`);
    }
    const { client } = await loggedIn(t.url, "laptop", BOT_PASSWORD);
    const { calls } = await client.call<{ calls: { peer: { username: string }; outcome: string }[] }>("call.history");
    client.close();
    assert.deepEqual(
      calls.map((c) => [c.peer.username, c.outcome]),
      [["office", "answered"]],
    );
  });
});
