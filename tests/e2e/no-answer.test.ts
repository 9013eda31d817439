/**
 * A call nobody answers, in the browser: with a 2-second ring timeout the caller sees "No answer",
 * the callee's incoming dialog goes away by itself and the call shows as missed in their history.
 */
import fs from "node:fs";
import { after, before, describe, it } from "node:test";
import {
  type BrowserUser,
  launchBrowserUsers,
  startTestServer,
  type TestServer,
  tempDir,
  toneWav,
} from "@parley/testkit";
import {
  callButton,
  expectContactStatus,
  expectGone,
  expectText,
  expectValue,
  expectVisible,
  incomingDialog,
  nav,
  type Person,
  registerThroughUi,
  statusSelect,
} from "./helpers.js";

const CARLA: Person = { username: "carla", displayName: "Carla" };
const DENIS: Person = { username: "denis", displayName: "Denis" };

let t: TestServer;
let dir: string;
let carla: BrowserUser;
let denis: BrowserUser;

before(
  async () => {
    t = await startTestServer({ ringTimeoutMs: 2000 });
    dir = tempDir("parley-e2e-");
    [carla, denis] = (await launchBrowserUsers([toneWav(dir, 440), toneWav(dir, 1000)])) as [BrowserUser, BrowserUser];
  },
  { timeout: 30_000 },
);

after(
  async () => {
    for (const user of [carla, denis]) {
      if (user?.problems.length) console.log(`browser reported:\n  ${user.problems.join("\n  ")}`);
    }
    await Promise.all([carla?.close(), denis?.close()]);
    await t?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  },
  { timeout: 30_000 },
);

describe("browser softphone, unanswered call", { timeout: 60_000 }, () => {
  it("tells the caller 'No answer' when the ring timeout passes, and the callee sees a missed call", async () => {
    await registerThroughUi(carla.page, t.server.httpUrl, CARLA);
    await registerThroughUi(denis.page, t.server.httpUrl, DENIS);
    await expectContactStatus(carla.page, DENIS.displayName, "available", "Available");

    await callButton(carla.page, DENIS.displayName).click();
    await expectText(carla.page.locator("body"), `Calling ${DENIS.displayName}…`);
    const dialog = incomingDialog(denis.page);
    await expectVisible(dialog);
    // Nobody answers: the server gives up after 2 s.
    await expectText(carla.page.locator("body"), "No answer", 8000);
    await expectGone(dialog, 8000);
    await expectValue(statusSelect(carla.page), "available");
    await expectValue(statusSelect(denis.page), "available");
    await expectVisible(nav(denis.page, /^History, 1 missed$/));
    await expectVisible(denis.page.getByText("1 missed call", { exact: true }));
  });
});
