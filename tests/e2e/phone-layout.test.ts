/**
 * The softphone on a phone: two Chromiums with a 390x844 viewport register, call each other and hear
 * each other's tone, and on every main page (sign-in, contacts with the phone book and directory,
 * in-call, history, account) nothing overflows the screen sideways and the controls lie within it.
 * Then a page opened over plain HTTP under a host name that is not a secure context says that the
 * microphone needs HTTPS and links to the server's HTTPS address.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type BrowserUser, launchBrowserUser, type TestServer, toneWav } from "@parley/testkit";
import type { Locator, Page } from "playwright-core";
import {
  answerAndHearEachOther,
  button,
  callButton,
  callPanel,
  expectEndNotice,
  expectText,
  expectVisible,
  incomingDialog,
  nav,
  type Person,
  registerThroughUi,
  useBrowserSession,
} from "./helpers.js";

const WIDTH = 390;
const PHONE = { width: WIDTH, height: 844 };
const ALICE: Person = { username: "alice", displayName: "Alice Martin" };
const BRUNO: Person = { username: "bruno", displayName: "Bruno Le Gall" };
const ALICE_HZ = 440;
const BRUNO_HZ = 1000;

let t: TestServer;
let dir: string;
let users: BrowserUser[];
let alice: BrowserUser;
let bruno: BrowserUser;

useBrowserSession({
  people: [ALICE, BRUNO],
  microphones: (folder) => [toneWav(folder, ALICE_HZ), toneWav(folder, BRUNO_HZ)],
  browser: { viewport: PHONE },
  dirPrefix: "parley-phone-",
  ready: (session) => {
    ({ t, dir, users } = session);
    [alice, bruno] = session.users as [BrowserUser, BrowserUser];
  },
});

/** The few DOM types the in-page check uses (the tests compile without the DOM lib). */
interface PhoneElement {
  tagName: string;
  textContent: string | null;
  getAttribute(name: string): string | null;
  scrollWidth: number;
  clientWidth: number;
  getBoundingClientRect(): { left: number; right: number; width: number; height: number };
  closest(selector: string): PhoneElement | null;
}
interface PhoneDocument {
  documentElement: { scrollWidth: number };
  querySelectorAll(selector: string): Iterable<PhoneElement>;
}

/** Fails naming the page and every visible control that sticks out of the 390 px screen sideways. */
async function expectFitsPhone(page: Page, where: string): Promise<void> {
  const report = await page.evaluate((width) => {
    const d = (globalThis as unknown as { document: PhoneDocument }).document;
    const outside: string[] = [];
    for (const el of d.querySelectorAll("button, input, select, textarea, a, [role=status], h1, h2")) {
      const box = el.getBoundingClientRect();
      if (box.width === 0 || box.height === 0) continue;
      const name = `${el.tagName.toLowerCase()} "${el.getAttribute("aria-label") ?? el.textContent?.trim().slice(0, 40) ?? ""}"`;
      if (box.left < -0.5 || box.right > width + 0.5) {
        outside.push(`${name} at ${Math.round(box.left)}..${Math.round(box.right)}`);
      }
      // Text cut off inside the control.
      if (el.tagName === "BUTTON" && el.scrollWidth > el.clientWidth + 1) {
        outside.push(`${name} shows ${el.clientWidth} of its ${el.scrollWidth} px`);
      }
      // Sticking out of the card, panel or dialog that holds it.
      const holder = el.closest("section, [role=region], [role=dialog], .card");
      const frame = holder?.getBoundingClientRect();
      if (frame && (box.left < frame.left - 0.5 || box.right > frame.right + 0.5)) {
        outside.push(
          `${name} at ${Math.round(box.left)}..${Math.round(box.right)} outside its box ${Math.round(frame.left)}..${Math.round(frame.right)}`,
        );
      }
    }
    return { scrollWidth: d.documentElement.scrollWidth, outside };
  }, WIDTH);
  assert.ok(report.scrollWidth <= WIDTH, `${where}: the page is ${report.scrollWidth} px wide on a ${WIDTH} px screen`);
  assert.deepEqual(report.outside, [], `${where}: controls clipped or outside the screen`);
  await page.screenshot({ path: `/tmp/phone-${where.replace(/\W+/g, "-")}.png`, fullPage: true });
}

/** The control is visible and lies entirely within the screen's width. */
async function expectOnScreen(locator: Locator, what: string): Promise<void> {
  await expectVisible(locator);
  const box = await locator.first().boundingBox();
  assert.ok(box, `${what} has a box`);
  assert.ok(box.x >= 0 && box.x + box.width <= WIDTH, `${what} lies at ${box.x}..${box.x + box.width}, off the screen`);
}

describe("the softphone on a 390x844 phone screen", { timeout: 90_000 }, () => {
  it("signs in, lists contacts, calls with two-way audio, and shows history and account without clipping", async () => {
    await alice.page.goto(t.server.httpUrl);
    await expectVisible(button(alice.page, "Register"));
    await expectOnScreen(button(alice.page, "Sign in"), "Sign in");
    await expectOnScreen(button(alice.page, "Register"), "Register");
    await expectFitsPhone(alice.page, "sign-in");

    await registerThroughUi(alice.page, t.server.httpUrl, ALICE);
    await registerThroughUi(bruno.page, t.server.httpUrl, BRUNO);

    for (const [user, other] of [
      [alice, BRUNO],
      [bruno, ALICE],
    ] as const) {
      await expectVisible(callButton(user.page, other.displayName));
      await expectOnScreen(button(user.page, "Add to phone book"), "Add to phone book");
      await expectOnScreen(callButton(user.page, other.displayName), `Call ${other.displayName}`);
      await expectOnScreen(
        button(user.page, `Add ${other.displayName} to phone book`),
        "Add to phone book (directory)",
      );
      await expectFitsPhone(user.page, "contacts");
    }

    await callButton(alice.page, BRUNO.displayName).click();
    const dialog = incomingDialog(bruno.page);
    await expectVisible(dialog);
    await expectOnScreen(dialog.getByRole("button", { name: "Answer", exact: true }), "Answer");
    await expectOnScreen(dialog.getByRole("button", { name: "Decline", exact: true }), "Decline");
    await expectFitsPhone(bruno.page, "incoming call");
    await answerAndHearEachOther(
      dialog,
      { page: alice.page, name: "Alice", hz: ALICE_HZ },
      { page: bruno.page, name: "Bruno", hz: BRUNO_HZ },
    );
    for (const user of [alice, bruno]) {
      await expectText(callPanel(user.page), /\d+:\d\d/);
      for (const name of ["Mute microphone", "Mute speaker", "Hang up"]) {
        await expectOnScreen(button(user.page, name), name);
      }
      await expectFitsPhone(user.page, "in call");
    }
    await button(alice.page, "Hang up").click();
    await expectEndNotice(alice.page, "Call ended");

    for (const user of [alice, bruno]) {
      await nav(user.page, "History").click();
      await expectVisible(
        user.page
          .getByRole("listitem")
          .filter({ hasText: "Alice" })
          .or(user.page.getByRole("listitem").filter({ hasText: "Bruno" })),
      );
      await expectFitsPhone(user.page, "history");
      await nav(user.page, "Account").click();
      await expectOnScreen(button(user.page, "Log out"), "Log out");
      await expectFitsPhone(user.page, "account");
    }
  });

  it("opened over plain HTTP under a host name that is not a secure context, the page asks for HTTPS and links to it", async () => {
    const port = new URL(t.server.httpUrl).port;
    const visitor = await launchBrowserUser(toneWav(dir, ALICE_HZ), {
      viewport: PHONE,
      args: ["--host-resolver-rules=MAP parley.test 127.0.0.1"],
    });
    users.push(visitor);
    const page = visitor.page;
    await page.goto(`http://parley.test:${port}/`);
    assert.equal(
      await page.evaluate(() => (globalThis as unknown as { isSecureContext: boolean }).isSecureContext),
      false,
      "http://parley.test is not a secure context",
    );
    const notice = page.getByRole("alert").filter({ hasText: "HTTPS" });
    await expectText(notice, "needs HTTPS");
    const link = notice.getByRole("link", { name: `https://parley.test:${port}/` });
    await expectVisible(link);
    assert.equal(await link.getAttribute("href"), `https://parley.test:${port}/`);
    await expectOnScreen(link, "the HTTPS link");
    await expectFitsPhone(page, "sign-in over plain HTTP");
    // The same in French.
    await page.getByLabel("Language").selectOption("fr");
    await expectText(page.getByRole("alert").filter({ hasText: "HTTPS" }), "Cette page a besoin de HTTPS");
    await expectVisible(page.getByRole("link", { name: `https://parley.test:${port}/` }));
    await page.getByLabel("Langue").selectOption("en");

    // Signed in, the softphone says the same where the microphone problem shows, never "check the permission".
    await registerThroughUi(page, `http://parley.test:${port}/`, { username: "carla", displayName: "Carla Roux" });
    await expectText(page.getByRole("alert").filter({ hasText: "HTTPS" }), "needs HTTPS");
    await expectVisible(page.getByRole("link", { name: `https://parley.test:${port}/` }));
    assert.equal(await page.getByText(/check the browser/i).count(), 0, "no advice to check the browser's permission");
    await expectFitsPhone(page, "contacts over plain HTTP");
  });
});
