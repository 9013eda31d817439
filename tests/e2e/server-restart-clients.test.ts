/**
 * Clients after a server crash: a softphone in Chromium and a bot are in a call when the server is
 * killed (SIGKILL) and started again on the same port and data dir. Both reconnect by themselves,
 * resume their sessions, learn from the new server instance that the call is gone, and say why:
 * the page shows "The call was lost: the server restarted", the bot ends as server_restarted
 * (interrupted). The page is then usable again (connected, the call history shows the call as
 * interrupted).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { BotExit } from "@parley/cli";
import {
  type BotRun,
  type BrowserUser,
  freeTcpPort,
  launchBrowserUser,
  runBot,
  type ServerProcess,
  spawnServer,
  tempDir,
  toneWav,
  waitFor,
  waitForReceivedAudio,
} from "@parley/testkit";
import { useBotCalls } from "../integration/bot-calls.js";
import {
  callButton,
  expectConnected,
  expectEndNotice,
  isTone,
  nav,
  type Person,
  registerThroughUi,
} from "./helpers.js";

const ANN: Person = { username: "ann", displayName: "Ann Restart" };
const { botArgs } = useBotCalls("parley-restart-clients-");

describe("a softphone and a bot in a call when the server crashes and comes back", { timeout: 120_000 }, () => {
  let dir: string;
  let dataDir: string;
  let port: number;
  let server: ServerProcess | undefined;
  let ann: BrowserUser;
  let bot: BotRun | undefined;

  before(async () => {
    dir = tempDir("parley-restart-e2e-");
    dataDir = path.join(dir, "data");
    port = await freeTcpPort();
    server = await spawnServer(dataDir, ["--port", String(port)]);
    ann = await launchBrowserUser(toneWav(dir, 440));
  });
  after(async () => {
    await ann?.close();
    if (bot && bot.child.exitCode === null) bot.child.kill();
    if (server && server.child.exitCode === null) server.child.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("both reconnect by themselves and say the call was lost because the server restarted", async () => {
    const page = ann.page;
    await registerThroughUi(page, server!.httpUrl, ANN);
    bot = runBot("answer", [...botArgs(`127.0.0.1:${port}`, "desk", 1000), "--wait", "60"]);
    await waitFor(() => bot!.output().includes("waiting for a call"), "desk waiting", { timeoutMs: 20_000 });
    await callButton(page, "desk").click();
    await waitForReceivedAudio(page, isTone(1000), "Ann hearing the bot", { seconds: 1 });

    server!.child.kill("SIGKILL");
    await server!.exited;
    server = await spawnServer(dataDir, ["--port", String(port)]);

    await expectEndNotice(page, "The call was lost: the server restarted", 30_000);
    assert.equal(await bot.exited, BotExit.FAILED, bot.output());
    assert.match(bot.output(), /signaling connection lost: reconnecting/);
    assert.match(bot.output(), /ended: server_restarted \(interrupted\)/);
    await expectConnected(page, 30_000);
    await nav(page, "History").click();
    await waitFor(
      async () => (await page.getByText("Interrupted (server restart)").count()) > 0,
      "the history shows the call as interrupted",
      { timeoutMs: 10_000 },
    );
  });
});
