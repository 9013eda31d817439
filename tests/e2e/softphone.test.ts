/**
 * The browser softphone end to end: two headless Chromiums (one per user, each with its own fake
 * microphone tone) drive the real web client served by a real server. The tests run in order and
 * share the two signed-in users: register, call with two-way audio, mute, hang up, decline, cancel.
 * They also write the documentation screenshots (docs/screenshots/).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type BrowserUser, type TestServer, toneWav, waitForReceivedAudio } from "@parley/testkit";
import {
  answerAndHearEachOther,
  button,
  callButton,
  callPanel,
  callTimer,
  describeAudio,
  expectAttribute,
  expectConnected,
  expectContactStatus,
  expectEndNotice,
  expectGone,
  expectText,
  expectValue,
  expectVisible,
  fillSignIn,
  incomingDialog,
  isTone,
  nav,
  type Person,
  registerThroughUi,
  SIGN_IN_TIMEOUT,
  screenshot,
  statusSelect,
  useBrowserSession,
} from "./helpers.js";

const ALICE: Person = { username: "alice", displayName: "Alice Martin" };
const BRUNO: Person = { username: "bruno", displayName: "Bruno Le Gall" };
const ALICE_HZ = 440;
const BRUNO_HZ = 1000;

let t: TestServer;
let alice: BrowserUser;
let bruno: BrowserUser;

useBrowserSession({
  people: [ALICE, BRUNO],
  microphones: (dir) => [toneWav(dir, ALICE_HZ), toneWav(dir, BRUNO_HZ)],
  ready: (session) => {
    t = session.t;
    [alice, bruno] = session.users as [BrowserUser, BrowserUser];
  },
});

describe("browser softphone", { timeout: 120_000 }, () => {
  it("registers two users through the UI, and each sees the other come online in Contacts", async () => {
    const page = alice.page;
    await page.goto(t.server.httpUrl);
    await expectVisible(page.getByRole("button", { name: "Sign in", exact: true }));
    await expectVisible(page.getByRole("button", { name: "Register", exact: true }));
    // The server address defaults to the server that served the page.
    await expectValue(page.getByLabel("Server address"), t.url);
    await screenshot(page, "sign-in");

    await registerThroughUi(alice.page, t.server.httpUrl, ALICE);
    await registerThroughUi(bruno.page, t.server.httpUrl, BRUNO);

    for (const [user, other] of [
      [alice, BRUNO],
      [bruno, ALICE],
    ] as const) {
      await expectVisible(nav(user.page, "Contacts"));
      await expectContactStatus(user.page, other.displayName, "available", "Available");
      await expectValue(statusSelect(user.page), "available");
    }
    // Bruno logs out: Alice sees him go offline; he signs in again: she sees him come back online.
    await nav(bruno.page, "Account").click();
    await button(bruno.page, "Log out").click();
    await expectVisible(button(bruno.page, "Sign in"));
    await expectContactStatus(alice.page, BRUNO.displayName, "offline", "Offline");
    await fillSignIn(bruno.page, BRUNO);
    await button(bruno.page, "Sign in").click();
    await expectConnected(bruno.page, SIGN_IN_TIMEOUT);
    await expectContactStatus(alice.page, BRUNO.displayName, "available", "Available");
    await nav(bruno.page, "Contacts").click();
    await expectContactStatus(bruno.page, ALICE.displayName, "available", "Available");

    await expectText(alice.page.getByRole("banner"), ALICE.displayName);
    await expectVisible(alice.page.getByRole("combobox", { name: "Language", exact: true }));
    await expectVisible(alice.page.getByRole("searchbox", { name: "Search contacts" }));
    await screenshot(alice.page, "contacts");
  });

  it("places a call: ringing, answer, both timers run, and each side hears the other's tone", async () => {
    await callButton(alice.page, BRUNO.displayName).click();
    await expectText(callPanel(alice.page), `Calling ${BRUNO.displayName}…`);
    const dialog = incomingDialog(bruno.page);
    await expectVisible(dialog);
    await expectText(dialog, `${ALICE.displayName} is calling`);
    await expectVisible(dialog.getByRole("button", { name: "Decline", exact: true }));
    await expectText(callPanel(alice.page), "Ringing…");
    await screenshot(bruno.page, "incoming-call");

    await answerAndHearEachOther(
      dialog,
      { page: alice.page, name: "Alice", hz: ALICE_HZ },
      { page: bruno.page, name: "Bruno", hz: BRUNO_HZ },
    );

    for (const [user, other] of [
      [alice, BRUNO],
      [bruno, ALICE],
    ] as const) {
      // The in-call controls, by their accessible names.
      const page = user.page;
      await expectAttribute(button(page, "Mute microphone"), "aria-pressed", "false");
      await expectAttribute(button(page, "Mute speaker"), "aria-pressed", "false");
      await expectVisible(page.getByRole("slider", { name: "Speaker volume", exact: true }));
      await expectVisible(page.getByRole("combobox", { name: "Microphone", exact: true }));
      await expectVisible(page.getByRole("combobox", { name: "Speaker", exact: true }));
      // Each sees the other as in a call.
      await expectContactStatus(page, other.displayName, "in-call", "In a call");
    }
    await screenshot(alice.page, "in-call");
  });

  it("muting the microphone silences what the other side hears; unmuting restores it", async () => {
    const mute = alice.page.getByRole("button", { name: "Mute microphone", exact: true });
    await expectAttribute(mute, "aria-pressed", "false");
    await mute.click();
    await expectAttribute(mute, "aria-pressed", "true");
    const muted = await waitForReceivedAudio(bruno.page, (audio) => audio.rms < 0.003, "Bruno hearing silence");
    // Bruno's microphone is untouched: Alice still hears him.
    const stillHearing = await waitForReceivedAudio(alice.page, isTone(BRUNO_HZ), `Alice still hearing ${BRUNO_HZ} Hz`);
    console.log(`muted: Bruno hears ${describeAudio(muted)}; Alice hears ${describeAudio(stillHearing)}`);

    await mute.click();
    await expectAttribute(mute, "aria-pressed", "false");
    const restored = await waitForReceivedAudio(bruno.page, isTone(ALICE_HZ), `Bruno hearing ${ALICE_HZ} Hz again`, {
      seconds: 1,
    });
    console.log(`unmuted: Bruno hears ${describeAudio(restored)}`);
  });

  it("hanging up returns both sides to idle and available", async () => {
    await button(alice.page, "Hang up").click();
    // The end message shows for a few seconds only: look for it first.
    await Promise.all([expectEndNotice(alice.page, "Call ended"), expectEndNotice(bruno.page, "Call ended")]);
    for (const user of [alice, bruno]) {
      await expectGone(callPanel(user.page));
      await expectGone(callTimer(user.page));
      await expectGone(button(user.page, "Hang up"));
      await expectGone(user.page.getByTestId("remote-audio"));
      await expectValue(statusSelect(user.page), "available");
    }
    await expectContactStatus(alice.page, BRUNO.displayName, "available", "Available");
    await expectContactStatus(bruno.page, ALICE.displayName, "available", "Available");
    const live = await t.server.commands.run(["calls"]);
    assert.match(live.output, /0 live call\(s\)/);
  });

  it("a declined call tells the caller who declined", async () => {
    await callButton(alice.page, BRUNO.displayName).click();
    const dialog = incomingDialog(bruno.page);
    await expectVisible(dialog);
    await dialog.getByRole("button", { name: "Decline", exact: true }).click();
    await expectEndNotice(alice.page, `${BRUNO.displayName} declined`);
    await expectGone(dialog);
    await expectGone(callPanel(alice.page));
    await expectGone(callPanel(bruno.page));
    await expectValue(statusSelect(alice.page), "available");
    await expectValue(statusSelect(bruno.page), "available");
  });

  it("a call cancelled by the caller stops ringing and shows as missed, with a badge, in the callee's history", async () => {
    await callButton(alice.page, BRUNO.displayName).click();
    await expectText(callPanel(alice.page), `Calling ${BRUNO.displayName}…`);
    const dialog = incomingDialog(bruno.page);
    await expectVisible(dialog);
    await callPanel(alice.page).getByRole("button", { name: "Cancel", exact: true }).click();
    await expectEndNotice(alice.page, "Call cancelled");
    await expectGone(dialog);
    await expectValue(statusSelect(bruno.page), "available");

    // The History tab announces the missed call in its name and shows a badge.
    await expectVisible(nav(bruno.page, /^History, 1 missed$/));
    await expectText(bruno.page.getByTestId("missed-badge"), /^1$/);
    await expectVisible(bruno.page.getByText("1 missed call", { exact: true }));
    await nav(bruno.page, "History").click();
    const missed = bruno.page
      .getByRole("listitem")
      .filter({ hasText: "Missed" })
      .filter({ hasText: ALICE.displayName });
    await expectVisible(missed);
    // Caller's side: an outgoing, cancelled call.
    await nav(alice.page, "History").click();
    await expectVisible(
      alice.page.getByRole("listitem").filter({ hasText: "Cancelled" }).filter({ hasText: BRUNO.displayName }),
    );
    await expectConnected(alice.page);
  });
});
