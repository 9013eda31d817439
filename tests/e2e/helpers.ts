/**
 * Shared steps for the browser end-to-end tests: the server-and-browsers session each file runs
 * against, signing in through the UI, locating contacts, expect-like polling on locators, and the
 * documentation screenshots.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";
import type { StartOptions } from "@parley/server";
import {
  assertNoCspViolations,
  type BrowserUser,
  type LaunchBrowserOptions,
  launchBrowserUsers,
  type ReceivedAudio,
  startTestServer,
  type TestServer,
  tempDir,
  waitFor,
  waitForReceivedAudio,
} from "@parley/testkit";
import type { Locator, Page } from "playwright-core";

/** A password every e2e account uses (8+ characters). */
export const E2E_PASSWORD = "e2e password 1";

/** How long UI expectations wait by default. */
export const UI_TIMEOUT = 10_000;

/**
 * The servers of the browser tests hash passwords at their own priority: at the default nice 10
 * (the relay first) a hash gets a few percent of a core while six Chromiums (this file's and
 * another's) keep both cores of a 2-core machine busy, and three pages registering together then
 * waited over a minute. The priority itself is the security tests' business, not these.
 */
process.env.PARLEY_HASH_NICE ??= "0";

/**
 * How long a sign-in or registration may take to connect: each computes a password hash (scrypt,
 * one at a time on the server), so pages signing in together queue behind each other on a loaded
 * machine.
 */
export const SIGN_IN_TIMEOUT = 60_000;

/**
 * Where screenshots go: docs/screenshots/ with PARLEY_UPDATE_SCREENSHOTS=1 (`npm run screenshots`),
 * else a temporary folder, so `npm test` leaves the working tree as it found it.
 */
export const SCREENSHOT_DIR =
  process.env.PARLEY_UPDATE_SCREENSHOTS === "1"
    ? fileURLToPath(new URL("../../docs/screenshots/", import.meta.url))
    : path.join(os.tmpdir(), "parley-screenshots");

/** Saves a screenshot (NAME.png in SCREENSHOT_DIR) of the page's viewport. */
export async function screenshot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  // Let transitions and the focus ring settle before the picture.
  await page.evaluate(
    () =>
      new Promise((resolve) => {
        const { requestAnimationFrame: frame } = globalThis as unknown as {
          requestAnimationFrame(f: () => void): void;
        };
        frame(() => frame(() => resolve(undefined)));
      }),
  );
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), animations: "disabled" });
}

/** Polls `read` until it satisfies `accept`; on timeout the error names `what` and the last value read. */
export async function expectEventually<T>(
  read: () => Promise<T>,
  accept: (value: T) => boolean,
  what: string,
  timeoutMs = UI_TIMEOUT,
): Promise<T> {
  let last: T | undefined;
  try {
    return (
      await waitFor(
        async () => {
          last = await read();
          return accept(last) ? { value: last } : undefined;
        },
        what,
        { timeoutMs, intervalMs: 50 },
      )
    ).value;
  } catch (error) {
    throw new Error(`${(error as Error).message}; last read: ${JSON.stringify(last)}`);
  }
}

export async function expectVisible(locator: Locator, timeoutMs = UI_TIMEOUT): Promise<void> {
  await locator.first().waitFor({ state: "visible", timeout: timeoutMs });
}

/** Waits until no element matches the locator (or none is visible). */
export async function expectGone(locator: Locator, timeoutMs = UI_TIMEOUT): Promise<void> {
  await expectEventually(
    async () => {
      const count = await locator.count();
      for (let i = 0; i < count; i++) if (await locator.nth(i).isVisible()) return false;
      return true;
    },
    (gone) => gone,
    `${locator} to disappear`,
    timeoutMs,
  );
}

export async function expectAttribute(
  locator: Locator,
  name: string,
  value: string | RegExp,
  timeoutMs = UI_TIMEOUT,
): Promise<void> {
  await expectEventually(
    () => locator.getAttribute(name, { timeout: 1000 }).catch(() => null),
    (actual) => (typeof value === "string" ? actual === value : actual !== null && value.test(actual)),
    `${locator} to have ${name}=${value}`,
    timeoutMs,
  );
}

export async function expectText(locator: Locator, text: string | RegExp, timeoutMs = UI_TIMEOUT): Promise<string> {
  return expectEventually(
    () => locator.innerText({ timeout: 1000 }).catch(() => ""),
    (actual) => (typeof text === "string" ? actual.includes(text) : text.test(actual)),
    `${locator} to contain ${text}`,
    timeoutMs,
  );
}

export async function expectValue(locator: Locator, value: string, timeoutMs = UI_TIMEOUT): Promise<void> {
  await expectEventually(
    () => locator.inputValue({ timeout: 1000 }).catch(() => ""),
    (actual) => actual === value,
    `${locator} to have the value ${value}`,
    timeoutMs,
  );
}

export interface Person {
  username: string;
  displayName: string;
}

/** What a browser test file runs against: a real server and one Chromium per person. */
export interface BrowserSession {
  t: TestServer;
  /** One per person, in order; a browser a test pushes here is closed and checked with them. */
  users: BrowserUser[];
  /** The session's temporary folder (microphone WAVs). */
  dir: string;
}

/**
 * Registers the file's `before` and `after` hooks: a real server (`server` options), a temporary
 * directory for the microphones' WAV files, one headless Chromium per person with its own fake
 * microphone (`microphones(dir)`, in order), then `ready`. After the tests: what each browser
 * reported, then the browsers closed, the server stopped and the directory removed; the file fails
 * if any browser saw a Content-Security-Policy violation (the server's CSP must let the app work).
 */
export function useBrowserSession(options: {
  people: Person[];
  microphones: (dir: string) => string[];
  ready: (session: BrowserSession) => void;
  server?: StartOptions;
  /** How every browser is launched (e.g. a phone-sized viewport). */
  browser?: LaunchBrowserOptions;
  dirPrefix?: string;
  timeoutMs?: number;
}): void {
  let t: TestServer | undefined;
  let dir: string | undefined;
  let users: BrowserUser[] = [];
  before(
    async () => {
      t = await startTestServer(options.server);
      dir = tempDir(options.dirPrefix ?? "parley-e2e-");
      users = await launchBrowserUsers(options.microphones(dir), options.browser);
      options.ready({ t, users, dir });
    },
    { timeout: options.timeoutMs ?? 30_000 },
  );
  after(
    async () => {
      const name = (i: number) => options.people[i]?.username ?? `browser ${i + 1}`;
      for (const [i, user] of users.entries()) {
        if (user.problems.length) console.log(`${name(i)}'s browser reported:\n  ${user.problems.join("\n  ")}`);
      }
      await Promise.all(users.map((user) => user.close()));
      await t?.stop();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      for (const [i, user] of users.entries()) assertNoCspViolations(user, `${name(i)}'s browser`);
    },
    { timeout: 30_000 },
  );
}

/** Opens the app and registers `person` through the sign-in form; resolves once connected. */
export async function registerThroughUi(page: Page, httpUrl: string, person: Person, serverUrl?: string) {
  await page.goto(httpUrl);
  await fillSignIn(page, person, serverUrl);
  await page.getByLabel("Display name (optional)").fill(person.displayName);
  await page.getByRole("button", { name: "Register", exact: true }).click();
  await expectConnected(page, SIGN_IN_TIMEOUT).catch(async (error: Error) => {
    // Say what the form shows instead (an error, or a button still waiting) rather than only "not connected".
    const alerts = await page
      .getByRole("alert")
      .allInnerTexts()
      .catch(() => []);
    const busy = await page
      .getByRole("button", { name: /Register|Sign in|…/ })
      .allInnerTexts()
      .catch(() => []);
    throw new Error(
      `${error.message}; the page shows alerts ${JSON.stringify(alerts)}, buttons ${JSON.stringify(busy)}`,
    );
  });
}

/** Fills the sign-in form (the server address only when given: it defaults to the page's server). */
export async function fillSignIn(page: Page, person: Person, serverUrl?: string) {
  await expectVisible(page.getByLabel("Username", { exact: true }));
  if (serverUrl) await page.getByLabel("Server address").fill(serverUrl);
  await page.getByLabel("Username", { exact: true }).fill(person.username);
  await page.getByLabel("Password", { exact: true }).fill(E2E_PASSWORD);
}

export async function expectConnected(page: Page, timeoutMs = UI_TIMEOUT) {
  await expectText(connection(page), "Connected", timeoutMs);
}

/** The header's connection indicator. */
export function connection(page: Page): Locator {
  return page.getByRole("status").filter({ hasText: /^(Connecting…|Connected|Reconnecting…|Disconnected)$/ });
}

/** A main navigation entry ("Contacts", "History", "Account"; the name may carry a missed-call count). */
export function nav(page: Page, name: string | RegExp): Locator {
  const bar = page.getByRole("navigation");
  return bar
    .getByRole("link", { name })
    .or(bar.getByRole("tab", { name }))
    .or(bar.getByRole("button", { name }))
    .first();
}

/** The contact row (an element with data-status) holding the "Call <displayName>" button. */
export function contactRow(page: Page, displayName: string): Locator {
  return page
    .locator("[data-status]")
    .filter({ has: callButton(page, displayName) })
    .last();
}

export function callButton(page: Page, displayName: string): Locator {
  return page.getByRole("button", { name: `Call ${displayName}`, exact: true });
}

/** Waits until `displayName`'s contact row shows `status` (data-status and the visible status text). */
export async function expectContactStatus(page: Page, displayName: string, status: string, text: string) {
  const row = contactRow(page, displayName);
  await expectAttribute(row, "data-status", status);
  await expectText(row, text);
}

export function statusSelect(page: Page): Locator {
  return page.getByRole("combobox", { name: "Status", exact: true });
}

export function incomingDialog(page: Page): Locator {
  return page.getByRole("dialog", { name: "Incoming call", exact: true });
}

/** The prompt for a call that rings while I am in another call. */
export function waitingDialog(page: Page): Locator {
  return page.getByRole("dialog", { name: "Call waiting", exact: true });
}

/** The call panel (outgoing, incoming or in progress). */
export function callPanel(page: Page): Locator {
  return page.getByRole("region", { name: "Call", exact: true });
}

/** The message telling why the last call ended ("Call ended", "<name> declined", "No answer"...). */
export async function expectEndNotice(page: Page, text: string, timeoutMs = UI_TIMEOUT): Promise<void> {
  await expectVisible(page.getByText(text, { exact: true }), timeoutMs);
}

export function callTimer(page: Page): Locator {
  return page.getByRole("timer", { name: "Call duration" });
}

export function button(page: Page, name: string): Locator {
  return page.getByRole("button", { name, exact: true });
}

/** Parses a duration like "0:07" or "1:02:03" into seconds. */
export function seconds(text: string): number {
  const match = /(\d+(?::\d\d)+)/.exec(text);
  assert.ok(match, `"${text}" holds a duration`);
  return match[1]!.split(":").reduce((sum, part) => sum * 60 + Number(part), 0);
}

/** Waits until the call timer shows at least `atLeast` seconds. */
export async function expectTimerAtLeast(page: Page, atLeast: number, timeoutMs = UI_TIMEOUT): Promise<void> {
  await expectEventually(
    async () => seconds(await callTimer(page).innerText({ timeout: 1000 })),
    (now) => now >= atLeast,
    `the call timer to reach ${atLeast} s`,
    timeoutMs,
  );
}

/** The call timer is shown and ticking. */
export async function expectTimerRunning(page: Page) {
  const timer = callTimer(page);
  await expectVisible(timer);
  const first = seconds(await expectText(timer, /\d+:\d\d/));
  await expectEventually(
    async () => seconds(await timer.innerText()),
    (now) => now > first,
    "the call timer to advance",
    4000,
  );
}

/** Dominant frequency within ±20 Hz of `hz` and a level clearly above silence. */
export function isTone(hz: number, floor = 0.01): (audio: ReceivedAudio) => boolean {
  return (audio) => Math.abs(audio.dominantHz - hz) <= 20 && audio.rms > floor;
}

/** Describes a measurement for logs and assertion messages. */
export function describeAudio(audio: ReceivedAudio): string {
  return `rms ${audio.rms.toFixed(4)}, dominant ${audio.dominantHz.toFixed(1)} Hz`;
}

/**
 * Answers the ringing `dialog` on the callee's page, waits for both call timers to run, and
 * checks by FFT that each side hears the other's tone (`callerHz` from the caller, `calleeHz`
 * from the callee); logs what each heard.
 */
export async function answerAndHearEachOther(
  dialog: Locator,
  caller: { page: Page; name: string; hz: number },
  callee: { page: Page; name: string; hz: number },
): Promise<void> {
  await dialog.getByRole("button", { name: "Answer", exact: true }).click();
  await expectGone(dialog);
  await Promise.all([expectTimerRunning(caller.page), expectTimerRunning(callee.page)]);
  const [atCaller, atCallee] = await Promise.all([
    waitForReceivedAudio(caller.page, isTone(callee.hz), `${caller.name} hearing ${callee.hz} Hz`, { seconds: 1 }),
    waitForReceivedAudio(callee.page, isTone(caller.hz), `${callee.name} hearing ${caller.hz} Hz`, { seconds: 1 }),
  ]);
  console.log(`${caller.name} hears ${describeAudio(atCaller)}; ${callee.name} hears ${describeAudio(atCallee)}`);
}
