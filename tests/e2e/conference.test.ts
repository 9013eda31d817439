/**
 * Conference calls in the browser: three headless Chromiums (each with its own fake microphone
 * tone) start a group call from the Contacts page, each verified to hear the two others on its
 * receive slots (and never itself), see the live participant list with speaking indicators, see
 * someone leave while the others go on, and add them back with "Add participant".
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { type BrowserUser, type ReceivedAudio, type TestServer, toneWav, waitForReceivedAudio } from "@parley/testkit";
import type { Page } from "playwright-core";
import {
  button,
  callPanel,
  describeAudio,
  expectAttribute,
  expectEndNotice,
  expectGone,
  expectText,
  expectTimerRunning,
  expectVisible,
  incomingDialog,
  nav,
  type Person,
  registerThroughUi,
  screenshot,
  useBrowserSession,
} from "./helpers.js";

const PEOPLE: Person[] = [
  { username: "ada", displayName: "Ada Lovelace" },
  { username: "brahim", displayName: "Brahim Kaci" },
  { username: "chloe", displayName: "Chloé Durand" },
];
const TONES = [440, 1000, 1500];

let t: TestServer;
let users: BrowserUser[] = [];

useBrowserSession({
  people: PEOPLE,
  microphones: (dir) => TONES.map((hz) => toneWav(dir, hz, 4, 0.3)),
  ready: (session) => {
    ({ t, users } = session);
  },
  dirPrefix: "parley-e2e-conf-",
  timeoutMs: 40_000,
});

const page = (i: number): Page => users[i]!.page;

/** The audio on one receive slot of the call in front (slot 0 is `remote-audio`). */
function slotSelector(slot: number): string {
  return slot === 0 ? '[data-testid="remote-audio"]' : `[data-testid="remote-audio-${slot + 1}"]`;
}

/**
 * Waits until the page's first two receive slots carry the two expected tones (in either order):
 * each slot one tone within ±20 Hz, clearly above silence, and none of them the page's own tone.
 */
async function expectHearsBoth(i: number, tones: number[]): Promise<string> {
  const heard: ReceivedAudio[] = [];
  for (const slot of [0, 1]) {
    heard.push(
      await waitForReceivedAudio(
        page(i),
        (audio) => audio.rms > 0.01 && tones.some((hz) => Math.abs(audio.dominantHz - hz) <= 20),
        `${PEOPLE[i]!.username} hearing one of ${tones.join(" / ")} Hz on slot ${slot}`,
        { seconds: 1, selector: slotSelector(slot), overallTimeoutMs: 20_000 },
      ),
    );
  }
  const found = heard.map((audio) => tones.find((hz) => Math.abs(audio.dominantHz - hz) <= 20));
  assert.deepEqual([...found].sort(), [...tones].sort(), `${PEOPLE[i]!.username} hears both others, one per slot`);
  assert.ok(!found.includes(TONES[i]), "nobody hears themselves");
  return heard.map(describeAudio).join(" + ");
}

function participant(i: number, username: string) {
  return callPanel(page(i)).locator(`[data-testid="participant"][data-username="${username}"]`);
}

describe("browser conference", { timeout: 180_000 }, () => {
  it("three users in a group call each hear the two others, with a live participant list", async () => {
    for (const [i, person] of PEOPLE.entries()) await registerThroughUi(page(i), t.server.httpUrl, person);
    const [ada, brahim, chloe] = PEOPLE as [Person, Person, Person];

    // Ada picks Brahim and Chloé in "Group call" and calls them both.
    await nav(page(0), "Contacts").click();
    const group = page(0).getByRole("region", { name: "Group call" });
    await expectVisible(group.getByRole("checkbox", { name: brahim.displayName }));
    await group.getByRole("checkbox", { name: brahim.displayName }).check();
    await group.getByRole("checkbox", { name: chloe.displayName }).check();
    await button(page(0), "Call 2 people").click();

    for (const i of [1, 2]) {
      const dialog = incomingDialog(page(i));
      await expectVisible(dialog);
      await expectText(dialog, `${ada.displayName} is calling`);
      await expectText(dialog, "group call with");
      await dialog.getByRole("button", { name: "Answer", exact: true }).click();
      await expectGone(dialog);
    }
    await Promise.all([0, 1, 2].map((i) => expectTimerRunning(page(i))));
    for (const [i, me] of PEOPLE.entries()) {
      for (const other of PEOPLE.filter((p) => p !== me)) {
        await expectAttribute(participant(i, other.username), "data-state", "connected");
      }
    }

    const heard = await Promise.all(
      [0, 1, 2].map((i) =>
        expectHearsBoth(
          i,
          TONES.filter((_, j) => j !== i),
        ),
      ),
    );
    for (const [i, line] of heard.entries()) console.log(`${PEOPLE[i]!.username} hears ${line}`);

    // The server sees everyone's steady tone as speech.
    try {
      await expectAttribute(participant(0, brahim.username), "data-speaking", "true", 15_000);
      await expectAttribute(participant(0, chloe.username), "data-speaking", "true", 15_000);
    } catch (error) {
      // What the server knew of each leg (its plane, counters), to tell a leg's state from the page's.
      console.log(JSON.stringify(await t.server.operator.calls(), null, 1));
      const metrics = await (await fetch(`${t.server.httpUrl}/metrics`)).text();
      console.log(
        metrics
          .split("\n")
          .filter((line) => /^parley_media/.test(line))
          .join("\n"),
      );
      const log = fs.readFileSync(path.join(t.dataDir, "parley.log"), "utf8");
      console.log(
        log
          .split("\n")
          .filter((line) => /media leg|speaking|mediaRestart|renew/i.test(line))
          .join("\n"),
      );
      throw error;
    }
    await expectText(callPanel(page(0)), "3 of 16 in the call");
    await screenshot(page(0), "conference");
  });

  it("one participant leaving does not end the call for the two others; Add participant brings them back", async () => {
    const [ada, brahim, chloe] = PEOPLE as [Person, Person, Person];
    await button(page(2), "Hang up").click();
    await expectEndNotice(page(2), "Call ended");
    await expectGone(callPanel(page(2)));
    for (const i of [0, 1]) await expectAttribute(participant(i, chloe.username), "data-state", "left");
    // Ada and Brahim still talk.
    const still = await waitForReceivedAudio(
      page(0),
      (audio) => Math.abs(audio.dominantHz - TONES[1]!) <= 20 && audio.rms > 0.01,
      `Ada still hearing ${brahim.username}`,
      { seconds: 1 },
    );
    console.log(`after Chloé left, Ada hears ${describeAudio(still)}`);

    // Brahim adds Chloé back.
    await button(page(1), "Add participant").click();
    await page(1).getByRole("combobox", { name: "Person to add" }).selectOption(chloe.username);
    await button(page(1), "Invite").click();
    const dialog = incomingDialog(page(2));
    await expectVisible(dialog);
    await expectText(dialog, `${brahim.displayName} is calling`);
    await dialog.getByRole("button", { name: "Answer", exact: true }).click();
    await expectAttribute(participant(0, chloe.username), "data-state", "connected");
    await expectHearsBoth(2, [TONES[0]!, TONES[1]!]);
    await expectHearsBoth(0, [TONES[1]!, TONES[2]!]);

    // Everyone leaves; the last two end together.
    await button(page(0), "Hang up").click();
    await expectAttribute(participant(1, ada.username), "data-state", "left");
    await button(page(1), "Hang up").click();
    for (const i of [0, 1, 2]) await expectGone(callPanel(page(i)));
    const live = await t.server.commands.run(["calls"]);
    assert.match(live.output, /0 live call\(s\)/);
  });
});
