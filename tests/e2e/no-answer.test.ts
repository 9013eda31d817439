/**
 * A call nobody answers, in the browser: with a 2-second ring timeout the caller sees "No answer",
 * the callee's incoming dialog goes away by itself and the call shows as missed in their history.
 */
import { describe, it } from "node:test";
import { type BrowserUser, type TestServer, toneWav } from "@parley/testkit";
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
  useBrowserSession,
} from "./helpers.js";

const CARLA: Person = { username: "carla", displayName: "Carla" };
const DENIS: Person = { username: "denis", displayName: "Denis" };

let t: TestServer;
let carla: BrowserUser;
let denis: BrowserUser;

useBrowserSession({
  people: [CARLA, DENIS],
  microphones: (dir) => [toneWav(dir, 440), toneWav(dir, 1000)],
  ready: (session) => {
    t = session.t;
    [carla, denis] = session.users as [BrowserUser, BrowserUser];
  },
  server: { ringTimeoutMs: 2000 },
});

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
