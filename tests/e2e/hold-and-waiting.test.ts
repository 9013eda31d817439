/**
 * Hold and call waiting in the browser softphone, end to end: three headless Chromiums (one per
 * user, each with its own fake microphone tone) drive the real web client served by a real server.
 * The tests run in order and share the three signed-in users:
 *
 * - Alice holds her call with Bruno through the Hold toggle: both pages say so and neither hears
 *   the other; she resumes and both hear each other's tone again.
 * - Carol calls Alice while Alice talks with Bruno: Alice sees the call-waiting prompt, answers it
 *   (Bruno goes on hold), switches back to Bruno from the held-call row, ends the held call with
 *   Carol; then declines a second waiting call and keeps talking with Bruno.
 *
 * Audio is measured on the page's `remote-audio` element (the call in front), as in softphone.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type BrowserUser, type ReceivedAudio, type TestServer, toneWav, waitForReceivedAudio } from "@parley/testkit";
import type { Locator, Page } from "playwright-core";
import {
  button,
  callButton,
  callPanel,
  describeAudio,
  expectAttribute,
  expectContactStatus,
  expectEndNotice,
  expectEventually,
  expectGone,
  expectText,
  expectTimerRunning,
  expectValue,
  expectVisible,
  incomingDialog,
  isTone,
  type Person,
  registerThroughUi,
  statusSelect,
  useBrowserSession,
  waitingDialog,
} from "./helpers.js";

const ALICE: Person = { username: "alice", displayName: "Alice Martin" };
const BRUNO: Person = { username: "bruno", displayName: "Bruno Le Gall" };
const CAROL: Person = { username: "carol", displayName: "Carol Nguyen" };
const ALICE_HZ = 440;
const BRUNO_HZ = 1000;
const CAROL_HZ = 700;

/** Audio waits: generous, the machine is shared. */
const AUDIO_WAIT = { overallTimeoutMs: 30_000, timeoutMs: 20_000 };

let t: TestServer;
let alice: BrowserUser;
let bruno: BrowserUser;
let carol: BrowserUser;

useBrowserSession({
  people: [ALICE, BRUNO, CAROL],
  microphones: (dir) => [toneWav(dir, ALICE_HZ), toneWav(dir, BRUNO_HZ), toneWav(dir, CAROL_HZ)],
  ready: (session) => {
    t = session.t;
    [alice, bruno, carol] = session.users as [BrowserUser, BrowserUser, BrowserUser];
  },
  dirPrefix: "parley-e2e-hold-",
  timeoutMs: 60_000,
});

/** Received audio at `page` is the tone `hz` (±20 Hz, clearly above silence). */
function hears(page: Page, hz: number, what: string): Promise<ReceivedAudio> {
  return waitForReceivedAudio(page, isTone(hz), what, { seconds: 1, ...AUDIO_WAIT });
}

const SILENT = (audio: ReceivedAudio) => audio.rms < 0.003;

/**
 * Received audio at `page` becomes silence (the same threshold as the mute test) and stays so for
 * the next window too, so a window caught while the tone fades out does not count.
 */
async function hearsSilence(page: Page, what: string): Promise<ReceivedAudio> {
  await waitForReceivedAudio(page, SILENT, what, AUDIO_WAIT);
  return waitForReceivedAudio(page, SILENT, `${what} (still)`, { ...AUDIO_WAIT, overallTimeoutMs: 0 });
}

/** `caller` calls `callee` from Contacts and `callee` answers; resolves once both hear each other. */
async function connect(caller: BrowserUser, callerHz: number, callee: BrowserUser, calleeHz: number, name: string) {
  await callButton(caller.page, name).click();
  const dialog = incomingDialog(callee.page);
  await expectVisible(dialog);
  await expectText(dialog, "is calling");
  // A plain incoming call, not call waiting.
  assert.equal(await waitingDialog(callee.page).count(), 0);
  assert.equal(await dialog.getByText("Call waiting", { exact: true }).count(), 0);
  await dialog.getByRole("button", { name: "Answer", exact: true }).click();
  await expectGone(dialog);
  await Promise.all([expectTimerRunning(caller.page), expectTimerRunning(callee.page)]);
  await Promise.all([
    hears(caller.page, calleeHz, `the caller hearing ${calleeHz} Hz`),
    hears(callee.page, callerHz, `the callee hearing ${callerHz} Hz`),
  ]);
}

/** The row of a call held behind the one in front, by the peer's display name. */
function heldRow(page: Page, name: string) {
  return page.getByTestId("held-call").filter({ hasText: name });
}

/**
 * The note a page shows when the peer holds the call: a polite live region (role="status"), so a
 * screen reader says why the line went quiet.
 */
function heldByPeerNote(page: Page, name: string) {
  return callPanel(page)
    .getByRole("status")
    .filter({ hasText: `${name} put the call on hold` });
}

/** The accessible description of `locator`: the texts of its aria-describedby elements, joined by spaces. */
async function description(locator: Locator): Promise<string> {
  const ids = ((await locator.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter(Boolean);
  const page = locator.page();
  const texts = await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).textContent()));
  return texts.map((text) => text?.trim() ?? "").join(" ");
}

describe("hold and call waiting in the browser", { timeout: 300_000 }, () => {
  it("three users sign in and see each other online", async () => {
    await Promise.all([
      registerThroughUi(alice.page, t.server.httpUrl, ALICE),
      registerThroughUi(bruno.page, t.server.httpUrl, BRUNO),
      registerThroughUi(carol.page, t.server.httpUrl, CAROL),
    ]);
    await expectContactStatus(alice.page, BRUNO.displayName, "available", "Available");
    await expectContactStatus(bruno.page, ALICE.displayName, "available", "Available");
    await expectContactStatus(carol.page, ALICE.displayName, "available", "Available");
  });

  it("Hold silences the call both ways and says so on both pages; resuming restores both tones", async () => {
    await connect(alice, ALICE_HZ, bruno, BRUNO_HZ, BRUNO.displayName);

    const hold = button(alice.page, "Hold");
    await expectAttribute(hold, "aria-pressed", "false");
    await hold.click();
    await expectAttribute(hold, "aria-pressed", "true");
    // Alice's card is marked on hold; Bruno is told Alice holds the call.
    await expectVisible(callPanel(alice.page).getByText("On hold", { exact: true }));
    await expectVisible(heldByPeerNote(bruno.page, ALICE.displayName));
    // Bruno's own Hold toggle is not pressed: he did not hold the call.
    await expectAttribute(button(bruno.page, "Hold"), "aria-pressed", "false");
    const [atAlice, atBruno] = await Promise.all([
      hearsSilence(alice.page, "Alice hearing silence while she holds"),
      hearsSilence(bruno.page, "Bruno hearing silence while held"),
    ]);
    console.log(`held: Alice hears ${describeAudio(atAlice)}; Bruno hears ${describeAudio(atBruno)}`);
    // A held call keeps the call going: still one live call on the server.
    assert.match((await t.server.commands.run(["calls"])).output, /1 live call\(s\)/);

    await hold.click();
    await expectAttribute(hold, "aria-pressed", "false");
    await expectGone(heldByPeerNote(bruno.page, ALICE.displayName));
    await expectGone(callPanel(alice.page).getByText("On hold", { exact: true }));
    const [backAtAlice, backAtBruno] = await Promise.all([
      hears(alice.page, BRUNO_HZ, `Alice hearing ${BRUNO_HZ} Hz again`),
      hears(bruno.page, ALICE_HZ, `Bruno hearing ${ALICE_HZ} Hz again`),
    ]);
    console.log(`resumed: Alice hears ${describeAudio(backAtAlice)}; Bruno hears ${describeAudio(backAtBruno)}`);
  });

  it("with the call on hold a new call can be placed; the held call cannot be resumed while it rings out", async () => {
    // Alice and Bruno are talking (previous test). Alice holds Bruno and calls Carol.
    const hold = button(alice.page, "Hold");
    await hold.click();
    await expectAttribute(hold, "aria-pressed", "true");
    await expectVisible(heldByPeerNote(bruno.page, ALICE.displayName));
    await callButton(alice.page, CAROL.displayName).click();
    await expectText(callPanel(alice.page), `Calling ${CAROL.displayName}…`);
    const bruno_ = heldRow(alice.page, BRUNO.displayName);
    await expectVisible(bruno_);
    // Resuming now would have Alice talk to Bruno while Carol's phone rings, and when Carol
    // answered, both calls would be live (the row would still say "On hold"). So it waits.
    const resume = bruno_.getByRole("button", { name: `Resume call with ${BRUNO.displayName}`, exact: true });
    await expectEventually(() => resume.isDisabled(), Boolean, "Resume to be disabled while ringing out");
    await expectText(callPanel(alice.page), "Ringing…");

    const dialog = incomingDialog(carol.page);
    await expectVisible(dialog);
    await dialog.getByRole("button", { name: "Answer", exact: true }).click();
    await expectText(alice.page.getByTestId("call-peer"), CAROL.displayName);
    await expectEventually(() => resume.isEnabled(), Boolean, "Resume to be enabled once Carol answered");
    await Promise.all([
      hears(alice.page, CAROL_HZ, `Alice hearing Carol's ${CAROL_HZ} Hz`),
      hears(carol.page, ALICE_HZ, `Carol hearing Alice's ${ALICE_HZ} Hz`),
      hearsSilence(bruno.page, "Bruno hearing silence while held"),
    ]);

    // Alice hangs up on Carol: Bruno's held call comes to the front, still held, until she resumes it.
    await button(alice.page, "Hang up").click();
    await expectEndNotice(carol.page, "Call ended");
    await expectText(alice.page.getByTestId("call-peer"), BRUNO.displayName);
    await expectAttribute(hold, "aria-pressed", "true");
    await hold.click();
    await expectAttribute(hold, "aria-pressed", "false");
    await expectGone(heldByPeerNote(bruno.page, ALICE.displayName));
    await Promise.all([
      hears(alice.page, BRUNO_HZ, `Alice hearing ${BRUNO_HZ} Hz again`),
      hears(bruno.page, ALICE_HZ, `Bruno hearing ${ALICE_HZ} Hz again`),
    ]);
  });

  it("a call to a user in a call shows as call waiting; answering it holds the first call", async () => {
    // Alice and Bruno are still talking (previous test).
    await callButton(carol.page, ALICE.displayName).click();
    await expectText(callPanel(carol.page), "Ringing…");

    // The call-waiting prompt, distinct from a plain incoming call: a dialog named "Call waiting",
    // naming the caller and, in its description too, the call that answering would hold.
    const dialog = waitingDialog(alice.page);
    await expectVisible(dialog);
    assert.equal(await incomingDialog(alice.page).count(), 0);
    await expectVisible(dialog.getByText("Call waiting", { exact: true }));
    await expectText(dialog, `${CAROL.displayName} is calling`);
    await expectText(dialog, `Answering puts ${BRUNO.displayName} on hold.`);
    assert.equal(
      await description(dialog),
      `${CAROL.displayName} is calling Answering puts ${BRUNO.displayName} on hold.`,
    );
    // The call with Bruno stays in front and keeps talking while Carol waits.
    await expectText(alice.page.getByTestId("call-peer"), BRUNO.displayName);
    await hears(alice.page, BRUNO_HZ, `Alice still hearing ${BRUNO_HZ} Hz while Carol waits`);

    await dialog.getByRole("button", { name: "Answer", exact: true }).click();
    await expectGone(dialog);
    // Carol's call is in front; Bruno's is held behind it, on both pages.
    await expectText(alice.page.getByTestId("call-peer"), CAROL.displayName);
    const bruno_ = heldRow(alice.page, BRUNO.displayName);
    await expectVisible(bruno_);
    await expectText(bruno_, "On hold");
    await expectVisible(bruno_.getByRole("button", { name: `Resume call with ${BRUNO.displayName}`, exact: true }));
    await expectVisible(bruno_.getByRole("button", { name: `End call with ${BRUNO.displayName}`, exact: true }));
    await expectVisible(heldByPeerNote(bruno.page, ALICE.displayName));
    await expectTimerRunning(carol.page);

    const [aliceHearsCarol, carolHearsAlice, brunoHears] = await Promise.all([
      hears(alice.page, CAROL_HZ, `Alice hearing Carol's ${CAROL_HZ} Hz`),
      hears(carol.page, ALICE_HZ, `Carol hearing Alice's ${ALICE_HZ} Hz`),
      hearsSilence(bruno.page, "Bruno hearing silence while held"),
    ]);
    console.log(
      `waiting answered: Alice hears ${describeAudio(aliceHearsCarol)}; Carol hears ${describeAudio(carolHearsAlice)}; Bruno hears ${describeAudio(brunoHears)}`,
    );
  });

  it("holding the call in front while another is held keeps it in front, and Hold again resumes it", async () => {
    // Carol's call is in front, Bruno's held behind it (previous test). Alice holds Carol too.
    const hold = button(alice.page, "Hold");
    await expectAttribute(hold, "aria-pressed", "false");
    await hold.click();
    // The card she acted on stays in front, now on hold; Bruno stays in the held-call row.
    await expectAttribute(hold, "aria-pressed", "true");
    await expectText(alice.page.getByTestId("call-peer"), CAROL.displayName);
    await expectVisible(heldRow(alice.page, BRUNO.displayName));
    await expectGone(heldRow(alice.page, CAROL.displayName));
    await expectVisible(heldByPeerNote(carol.page, ALICE.displayName));
    await expectVisible(heldByPeerNote(bruno.page, ALICE.displayName));
    await Promise.all([
      hearsSilence(alice.page, "Alice hearing silence with both calls held"),
      hearsSilence(carol.page, "Carol hearing silence while held"),
      hearsSilence(bruno.page, "Bruno hearing silence while held"),
    ]);

    // Pressing Hold again resumes the call in front (Carol's), not the other held one.
    await hold.click();
    await expectAttribute(hold, "aria-pressed", "false");
    await expectText(alice.page.getByTestId("call-peer"), CAROL.displayName);
    await expectVisible(heldRow(alice.page, BRUNO.displayName));
    await expectGone(heldByPeerNote(carol.page, ALICE.displayName));
    await expectVisible(heldByPeerNote(bruno.page, ALICE.displayName));
    await Promise.all([
      hears(alice.page, CAROL_HZ, `Alice hearing Carol's ${CAROL_HZ} Hz again`),
      hears(carol.page, ALICE_HZ, `Carol hearing Alice's ${ALICE_HZ} Hz again`),
      hearsSilence(bruno.page, "Bruno still hearing silence"),
    ]);
  });

  it("resuming the held call from its row switches back: Bruno talks again, Carol is held", async () => {
    await heldRow(alice.page, BRUNO.displayName)
      .getByRole("button", { name: `Resume call with ${BRUNO.displayName}`, exact: true })
      .click();
    await expectText(alice.page.getByTestId("call-peer"), BRUNO.displayName);
    await expectVisible(heldRow(alice.page, CAROL.displayName));
    await expectGone(heldRow(alice.page, BRUNO.displayName));
    await expectGone(heldByPeerNote(bruno.page, ALICE.displayName));
    await expectVisible(heldByPeerNote(carol.page, ALICE.displayName));

    const [aliceHearsBruno, brunoHearsAlice, carolHears] = await Promise.all([
      hears(alice.page, BRUNO_HZ, `Alice hearing Bruno's ${BRUNO_HZ} Hz again`),
      hears(bruno.page, ALICE_HZ, `Bruno hearing Alice's ${ALICE_HZ} Hz again`),
      hearsSilence(carol.page, "Carol hearing silence while held"),
    ]);
    console.log(
      `switched back: Alice hears ${describeAudio(aliceHearsBruno)}; Bruno hears ${describeAudio(brunoHearsAlice)}; Carol hears ${describeAudio(carolHears)}`,
    );
  });

  it("ending the held call from its row returns the held caller to idle and keeps the call in front", async () => {
    await heldRow(alice.page, CAROL.displayName)
      .getByRole("button", { name: `End call with ${CAROL.displayName}`, exact: true })
      .click();
    await expectEndNotice(carol.page, "Call ended");
    await expectGone(callPanel(carol.page));
    await expectValue(statusSelect(carol.page), "available");
    await expectGone(heldRow(alice.page, CAROL.displayName));
    await expectText(alice.page.getByTestId("call-peer"), BRUNO.displayName);
    await expectAttribute(button(alice.page, "Hold"), "aria-pressed", "false");
    await Promise.all([
      hears(alice.page, BRUNO_HZ, `Alice still hearing ${BRUNO_HZ} Hz`),
      hears(bruno.page, ALICE_HZ, `Bruno still hearing ${ALICE_HZ} Hz`),
    ]);
    assert.match((await t.server.commands.run(["calls"])).output, /1 live call\(s\)/);
  });

  it("declining a waiting call leaves the current call talking", async () => {
    await expectContactStatus(carol.page, ALICE.displayName, "in-call", "In a call");
    await callButton(carol.page, ALICE.displayName).click();
    const dialog = waitingDialog(alice.page);
    await expectVisible(dialog);
    await dialog.getByRole("button", { name: "Decline", exact: true }).click();
    await expectEndNotice(carol.page, `${ALICE.displayName} declined`);
    await expectGone(dialog);
    await expectGone(callPanel(carol.page));
    // Alice and Bruno: still in front, nobody held, audio both ways.
    await expectText(alice.page.getByTestId("call-peer"), BRUNO.displayName);
    await expectGone(alice.page.getByTestId("held-call"));
    await expectAttribute(button(alice.page, "Hold"), "aria-pressed", "false");
    await expectGone(heldByPeerNote(bruno.page, ALICE.displayName));
    await Promise.all([
      hears(alice.page, BRUNO_HZ, `Alice hearing ${BRUNO_HZ} Hz after declining`),
      hears(bruno.page, ALICE_HZ, `Bruno hearing ${ALICE_HZ} Hz after Alice declined`),
    ]);

    await button(alice.page, "Hang up").click();
    await Promise.all([expectEndNotice(alice.page, "Call ended"), expectEndNotice(bruno.page, "Call ended")]);
    for (const user of [alice, bruno, carol]) await expectGone(callPanel(user.page));
    assert.match((await t.server.commands.run(["calls"])).output, /0 live call\(s\)/);
  });
});
