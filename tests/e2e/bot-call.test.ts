/**
 * Interoperability: a browser calls a `parley answer` bot (werift in Node). The bot records what it
 * hears, which must be the browser's tone; the browser must hear the bot's tone.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { dominantFrequency, readWav, rms, SAMPLE_RATE } from "@parley/audio";
import {
  assertNoCspViolations,
  type BotRun,
  type BrowserUser,
  launchBrowserUser,
  runBot,
  startTestServer,
  type TestServer,
  tempDir,
  toneWav,
  waitFor,
  waitForReceivedAudio,
} from "@parley/testkit";
import {
  button,
  callButton,
  callTimer,
  describeAudio,
  E2E_PASSWORD,
  expectContactStatus,
  expectGone,
  expectTimerAtLeast,
  expectTimerRunning,
  isTone,
  type Person,
  registerThroughUi,
  SIGN_IN_TIMEOUT,
} from "./helpers.js";

const EVE: Person = { username: "eve", displayName: "Eve" };
const BOT = "answer-bot";
const BROWSER_HZ = 440;
const BOT_HZ = 700;

let t: TestServer;
let dir: string;
let eve: BrowserUser;
let bot: BotRun | undefined;

before(
  async () => {
    t = await startTestServer();
    dir = tempDir("parley-e2e-bot-");
    eve = await launchBrowserUser(toneWav(dir, BROWSER_HZ));
  },
  { timeout: 30_000 },
);

after(
  async () => {
    if (eve?.problems.length) console.log(`browser reported:\n  ${eve.problems.join("\n  ")}`);
    if (bot && bot.child.exitCode === null) bot.child.kill();
    await eve?.close();
    await t?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    if (eve) assertNoCspViolations(eve, "eve's browser");
  },
  { timeout: 30_000 },
);

describe("browser to bot", { timeout: 60_000 }, () => {
  it("a browser calls a `parley answer` bot: each side hears the other's tone", async () => {
    const recording = path.join(dir, "bot-heard.wav");
    bot = runBot("answer", [
      "--server",
      t.url,
      "--user",
      BOT,
      "--password",
      E2E_PASSWORD,
      "--register",
      "--play",
      toneWav(dir, BOT_HZ),
      "--record",
      recording,
      "--wait",
      "60",
    ]);
    const registering = registerThroughUi(eve.page, t.server.httpUrl, EVE);
    // The bot registers beside the page (each a password hash, queued on a loaded machine).
    await waitFor(() => bot!.output().includes("waiting for a call"), "the bot waiting", {
      timeoutMs: SIGN_IN_TIMEOUT,
    });
    await registering;
    await expectContactStatus(eve.page, BOT, "available", "Available");

    await callButton(eve.page, BOT).click();
    await waitFor(() => bot!.output().includes("answered"), "the bot answering", { timeoutMs: 10_000 });
    await expectTimerRunning(eve.page);
    const heard = await waitForReceivedAudio(eve.page, isTone(BOT_HZ), `the browser hearing ${BOT_HZ} Hz`, {
      seconds: 1,
    });
    console.log(`browser hears ${describeAudio(heard)}`);
    // Let the bot record a few seconds of the browser's microphone, then hang up from the browser.
    await expectTimerAtLeast(eve.page, 4);
    await button(eve.page, "Hang up").click();
    await expectGone(callTimer(eve.page));
    assert.equal(await bot.exited, 0, bot.output());

    const samples = readWav(recording);
    assert.ok(samples.length > SAMPLE_RATE * 2, `the bot recorded ${samples.length} samples`);
    const steady = samples.subarray(Math.round(SAMPLE_RATE * 0.5));
    const hz = dominantFrequency(steady);
    console.log(`bot heard rms ${rms(steady).toFixed(4)}, dominant ${hz.toFixed(1)} Hz`);
    assert.ok(Math.abs(hz - BROWSER_HZ) <= 20, `the bot heard ${hz} Hz, expected ${BROWSER_HZ}`);
    assert.ok(rms(steady) > 0.01, `the bot's recording is too quiet: ${rms(steady)}`);
  });
});
